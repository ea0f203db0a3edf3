# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Numeric CSV records to columns, compiled: one pass over the bytes, each field
parsed and stored as it is met, digits eight at a time.  What is read, what is
refused and the values given are documented in the twin, `csvnum_py.py` (same
names and results)."""

from collections import namedtuple

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_Resize
from libc.math cimport NAN
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset


cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil     # gcc and clang

cdef extern from "<float.h>":
    int LDBL_MANT_DIG

cdef extern from "Python.h":
    # Python's own correctly rounded, locale-independent converter (float() uses it)
    double PyOS_string_to_double(const char* s, char** endptr, void* overflow) noexcept
    void* PyErr_Occurred() noexcept
    void PyErr_Clear() noexcept

Parsed = namedtuple("Parsed", "rows kinds columns", module=__name__)

cdef enum:
    _INT_DIGITS = 18       # an int of this many digits always fits an int64
    _FLOAT_DIGITS = 19     # digits of a decimal that always fit a uint64
    _EXP10 = 280           # |decimal exponent| that keeps 19 digits a normal double
    _TOKEN = 47            # bytes of a number token
    _EXACT_DIGITS = 15     # every integer of 15 digits is a double
    _EXACT_EXP10 = 22      # 1e22: the largest power of ten that is a double
    _X87_EXP10 = 27        # 1e27: the largest one an x87 long double holds exactly

MAX_INT_DIGITS = _INT_DIGITS
MAX_FLOAT_DIGITS = _FLOAT_DIGITS
MAX_EXP10 = _EXP10
MAX_TOKEN = _TOKEN

cdef double P10[_EXACT_EXP10 + 1]
cdef int _k
for _k in range(_EXACT_EXP10 + 1):
    P10[_k] = 10.0 ** _k            # exact: every power up to 1e22 is a double

# x86's 80-bit long double: a 64-bit significand, so powers of ten up to 1e27 and
# every 19-digit mantissa are exact in it (elsewhere the extended path is off).
cdef bint EXTENDED = LDBL_MANT_DIG == 64
cdef long double P10L[_X87_EXP10 + 1]
P10L[0] = 1
for _k in range(1, _X87_EXP10 + 1):
    P10L[_k] = P10L[_k - 1] * 10


cdef inline bint _extended_float(uint64_t mant, int exp10, bint neg, double* out) noexcept nogil:
    """digits * 10**exp10 correctly rounded, for 16-19 digits or exponents to 27: one
    rounding to 64 bits, then one to 53, which is the correct rounding unless the
    64-bit value is exactly halfway between two doubles (its 11 extra bits are
    10000000000): then False, and Python's converter decides."""
    cdef long double x = <long double>mant
    cdef uint64_t bits
    if exp10 < 0:
        x = x / P10L[-exp10]
    else:
        x = x * P10L[exp10]
    memcpy(&bits, &x, 8)                # the x87 format's explicit significand
    if (bits & 0x7FF) == 0x400:
        return False
    out[0] = -<double>x if neg else <double>x
    return True


cdef inline void _put_i(char* col, Py_ssize_t row, int64_t v) noexcept nogil:
    memcpy(col + 8 * row, &v, 8)


cdef inline void _put_d(char* col, Py_ssize_t row, double v) noexcept nogil:
    memcpy(col + 8 * row, &v, 8)


cdef inline bint _to_float(char* col, Py_ssize_t rows, char negz) noexcept nogil:
    """Turn a column's int64 slots [0, rows) into float64 in place (an int64 to
    double conversion rounds correctly); False where an int there was a -0."""
    cdef Py_ssize_t i
    cdef int64_t v
    cdef double d
    if negz:
        return False
    for i in range(rows):
        memcpy(&v, col + 8 * i, 8)
        d = <double>v
        memcpy(col + 8 * i, &d, 8)
    return True


cdef inline bint _digit(unsigned char c) noexcept nogil:
    return <unsigned char>(c - 48) < 10


cdef uint64_t POW10U[9]
POW10U[0] = 1
for _k in range(1, 9):
    POW10U[_k] = POW10U[_k - 1] * 10


cdef inline Py_ssize_t _run(const unsigned char* s, Py_ssize_t p, Py_ssize_t n,
                            uint64_t* mant, int* count) noexcept nogil:
    """Read the digits at ``p``, eight at a time where eight bytes remain (SWAR:
    no branch per digit); add them to ``mant`` (wrapping past 19 digits: such a
    number is refused anyway) and ``count``; the offset after them."""
    cdef uint64_t x, hi, hi6, nd, z, d
    cdef int k
    while p + 8 <= n:
        memcpy(&x, s + p, 8)
        hi = x & 0xF0F0F0F0F0F0F0F0ULL
        hi6 = (x + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL
        nd = (hi ^ 0x3030303030303030ULL) | (hi6 ^ 0x3030303030303030ULL)
        z = (((nd & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL) | nd) & 0x8080808080808080ULL
        k = 8 if z == 0 else (__builtin_ctzll(z) >> 3)
        if k == 0:
            return p
        d = (x - 0x3030303030303030ULL) << (8 * (8 - k)) if k < 8 else x - 0x3030303030303030ULL
        d = ((d * 10) + (d >> 8)) & 0x00FF00FF00FF00FFULL
        d = ((d * 100) + (d >> 16)) & 0x0000FFFF0000FFFFULL
        d = ((d * 10000) + (d >> 32)) & 0xFFFFFFFFULL
        mant[0] = mant[0] * POW10U[k] + d
        count[0] += k
        p += k
        if k < 8:
            return p
    while p < n and _digit(s[p]):
        mant[0] = mant[0] * 10 + (s[p] - 48)
        count[0] += 1
        p += 1
    return p


cdef bint _slow_float(const unsigned char* start, Py_ssize_t size, double* out) noexcept:
    """The correctly rounded value of the number token [start, start + size), by
    Python's converter: for what the one-rounding fast path cannot do exactly."""
    cdef char buf[_TOKEN + 1]
    cdef char* end
    if size > _TOKEN:
        return False
    memcpy(buf, start, size)
    buf[size] = 0
    out[0] = PyOS_string_to_double(buf, &end, NULL)
    if PyErr_Occurred() != NULL:
        PyErr_Clear()
        return False
    return end == buf + size


cdef Py_ssize_t _parse(const unsigned char* s, Py_ssize_t n, Py_ssize_t ncols,
                       Py_ssize_t cap, char** cols, char* isf, char* negz) noexcept:
    """Records read, or -1 where ``s`` holds something refused.  Runs with the GIL
    held (the slow float path calls into Python's converter); it touches no object."""
    cdef Py_ssize_t p = 0, row = 0, col, start, end
    cdef unsigned char c
    cdef bint neg, signed_, is_int, eneg
    cdef uint64_t mant
    cdef int digits, zeros, frac, e, exp10
    cdef double v
    while p < n:
        c = s[p]
        if c == 10:                                     # an empty line
            p += 1
            continue
        if c == 13:
            if p + 1 < n and s[p + 1] == 10:
                p += 2
                continue
            return -1
        if row >= cap:
            return -1
        for col in range(ncols):
            start = p
            neg = False
            signed_ = False
            if p < n and (s[p] == 45 or s[p] == 43):   # - +
                neg = s[p] == 45
                signed_ = True
                p += 1
            mant = 0
            digits = 0                              # significant: after leading zeros
            zeros = 0
            frac = 0
            exp10 = 0
            is_int = True
            while p < n and s[p] == 48:             # leading zeros
                zeros += 1
                p += 1
            p = _run(s, p, n, &mant, &digits)
            if p < n and s[p] == 46:                  # .
                is_int = False
                p += 1
                if digits == 0:                       # 0.000ddd: zeros shift, not count
                    while p < n and s[p] == 48:
                        zeros += 1
                        frac += 1
                        p += 1
                e = digits
                p = _run(s, p, n, &mant, &digits)
                frac += digits - e
            if digits + zeros == 0:
                if signed_ or not is_int:
                    return -1
            elif p < n and (s[p] == 101 or s[p] == 69):   # e E
                is_int = False
                p += 1
                eneg = False
                if p < n and (s[p] == 45 or s[p] == 43):
                    eneg = s[p] == 45
                    p += 1
                if not (p < n and _digit(s[p])):
                    return -1
                e = 0
                while p < n and _digit(s[p]):
                    if e < 100000:
                        e = e * 10 + (s[p] - 48)
                    p += 1
                exp10 = -e if eneg else e
            exp10 -= frac
            end = p
            if end - start > _TOKEN:
                return -1
            # the field ends here: a comma, or the record's end for the last field
            if col < ncols - 1:
                if p < n and s[p] == 44:
                    p += 1
                else:
                    return -1
            elif p < n:
                if s[p] == 10:
                    p += 1
                elif s[p] == 13 and p + 1 < n and s[p + 1] == 10:
                    p += 2
                else:
                    return -1
            # store it
            if digits + zeros == 0:                       # an empty field: NaN
                if not isf[col]:
                    if not _to_float(cols[col], row, negz[col]):
                        return -1
                    isf[col] = 1
                _put_d(cols[col], row, NAN)
            elif is_int:
                if digits > _INT_DIGITS:
                    return -1
                if neg and mant == 0:
                    negz[col] = 1
                if isf[col]:
                    if negz[col]:
                        return -1
                    v = <double>(-<int64_t>mant if neg else <int64_t>mant)
                    _put_d(cols[col], row, v)
                else:
                    _put_i(cols[col], row, -<int64_t>mant if neg else <int64_t>mant)
            else:
                if digits > _FLOAT_DIGITS or exp10 < -_EXP10 or exp10 > _EXP10:
                    return -1
                if digits <= _EXACT_DIGITS and -_EXACT_EXP10 <= exp10 <= _EXACT_EXP10:
                    v = <double>mant
                    if exp10 < 0:
                        v = v / P10[-exp10]
                    else:
                        v = v * P10[exp10]
                    if neg:
                        v = -v
                elif not (EXTENDED and -_X87_EXP10 <= exp10 <= _X87_EXP10
                          and _extended_float(mant, exp10, neg, &v)):
                    if not _slow_float(s + start, end - start, &v):
                        return -1
                if not isf[col]:
                    if not _to_float(cols[col], row, negz[col]):
                        return -1
                    isf[col] = 1
                _put_d(cols[col], row, v)
        row += 1
    return row


def parse(data, Py_ssize_t ncols):
    """The columns of ``data`` (the CSV records after the header line, ``ncols``
    fields each), or None where pandas must read it (see the twin's docstring)."""
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    cdef const unsigned char[::1] view = data
    cdef Py_ssize_t n = view.shape[0], i, lines = 1, cap, rows
    if n == 0:
        return None
    cdef const unsigned char* s = &view[0]
    with nogil:
        for i in range(n):
            lines += s[i] == 10
    # a record takes at least ncols bytes with its line end (ncols - 1 commas)
    cap = min(lines, (n + 1) // ncols + 1)
    columns = [PyByteArray_FromStringAndSize(NULL, 8 * cap) for _ in range(ncols)]
    cdef char** cols = <char**>malloc(ncols * sizeof(char*))
    cdef char* isf = <char*>malloc(ncols)
    cdef char* negz = <char*>malloc(ncols)
    if cols == NULL or isf == NULL or negz == NULL:
        free(cols); free(isf); free(negz)
        raise MemoryError()
    try:
        for i in range(ncols):
            cols[i] = PyByteArray_AS_STRING(columns[i])
        memset(isf, 0, ncols)
        memset(negz, 0, ncols)
        rows = _parse(s, n, ncols, cap, cols, isf, negz)
        if rows <= 0:
            return None
        kinds = ["float64" if isf[i] else "int64" for i in range(ncols)]
    finally:
        free(cols); free(isf); free(negz)
    for col in columns:
        PyByteArray_Resize(col, 8 * rows)
    return Parsed(rows, kinds, columns)
