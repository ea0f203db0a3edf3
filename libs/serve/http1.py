"""A lean HTTP/1.1 server protocol for the proxy: whole requests in, responses out.

    client bytes --data_received--> parse_head / body (Content-Length or chunked)
                 --one request at a time--> dispatch(request, connection)
    connection.full(status, headers, body)                       a whole response
    connection.start(status, headers); await connection.write(chunk); connection.end()

The proxy's hot path is one parse, one frame to the replica and one write back,
with no task and no future per request (aiohttp's web stack cost more than the
rest of the request's path together).  What it implements of RFC 9112:
keep-alive (HTTP/1.1 by default, HTTP/1.0 on ``Connection: keep-alive``),
pipelining (requests answered one at a time, in order), ``Content-Length`` and
chunked request bodies, ``Expect: 100-continue``, HEAD, and chunked or
length-delimited streamed responses.  Malformed requests get a 400 (an
oversized head a 431, a body over ``MAX_BODY`` a 413) and the connection is
closed.

    >>> req = parse_head(b"GET /a?x=1 HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n", 0)
    >>> req.method, req.path, req.query, req.headers, req.keep_alive
    ('GET', '/a', b'x=1', [(b'Host', b'h')], True)
"""

import asyncio
import logging
import re
import time
from http import HTTPStatus
from urllib.parse import unquote

from .wire import WriteFlowControl

logger = logging.getLogger("minray.serve")

MAX_LINE = 8190            # one request or header line, as aiohttp's default
MAX_HEAD = 64 << 10        # the request line and every header together
MAX_BODY = 1 << 20         # aiohttp's client_max_size, which the proxy had before
IDLE_TIMEOUT_S = 75.0      # a keep-alive connection with no request open is closed

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
# One header line, (name, value); possessive: linear time on any input.  A value
# ending in blanks is left to _check_header_lines, which strips it.
_HEADER_RE = rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*+([^\x00-\x08\x0a-\x1f\x7f]*+)\r\n"
_HEADER = re.compile(_HEADER_RE)
_HEADERS = re.compile(rb"(?:%s)*+" % _HEADER_RE)      # a whole block of them
_LONG_LINE = re.compile(rb"[^\n]{%d}" % (MAX_LINE + 1))


class BadRequest(Exception):
    """A request this server refuses: ``status`` and a message for the body."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Head:
    """A parsed request head (``parse_head``); ``body`` is set once it is read."""
    __slots__ = ("method", "path", "query", "version", "headers", "keep_alive", "length",
                 "chunked", "expect_continue", "end", "body")

    def __init__(self, method, path, query, version, headers, keep_alive, length, chunked,
                 expect_continue, end):
        self.method, self.path, self.query, self.version = method, path, query, version
        self.headers, self.keep_alive, self.length = headers, keep_alive, length
        self.chunked, self.expect_continue, self.end = chunked, expect_continue, end
        self.body = b""


def parse_head(buf, start):
    """The request head at ``buf[start:]``: a Head, None while incomplete, or BadRequest.

    ``Head.end`` is where the body begins.  Empty lines before a request line are
    skipped (RFC 9112 2.2).
    """
    n = len(buf)
    while buf[start:start + 2] == b"\r\n":
        start += 2
    idx = buf.find(b"\r\n\r\n", start, start + MAX_HEAD + 4)
    if idx < 0:
        if n - start > MAX_HEAD:
            raise BadRequest(431, "Request header fields too large (more than "
                                  f"{MAX_HEAD} bytes).")
        line_end = buf.find(b"\r\n", start)
        if (line_end < 0 and n - start > MAX_LINE) or line_end - start > MAX_LINE:
            raise BadRequest(431 if line_end > 0 else 414, "Request line or header line "
                                                           f"longer than {MAX_LINE} bytes.")
        return None
    line_end = buf.find(b"\r\n", start)
    request_line = bytes(buf[start:line_end])
    parts = request_line.split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise BadRequest(400, f"Malformed request line {request_line[:100]!r}: expected "
                              f"'METHOD /path HTTP/1.1'.")
    method, target, version = parts
    if version == b"HTTP/1.1":
        version, keep_alive = "1.1", True
    elif version == b"HTTP/1.0":
        version, keep_alive = "1.0", False
    else:
        raise BadRequest(505 if version.startswith(b"HTTP/") else 400,
                         f"Unsupported HTTP version {version[:20]!r}: HTTP/1.1 or 1.0.")
    if len(request_line) > MAX_LINE:
        raise BadRequest(414, f"Request line longer than {MAX_LINE} bytes.")
    block = buf[line_end + 2:idx + 2]        # every header line, each with its CRLF
    if (_HEADERS.fullmatch(block) and b" \r\n" not in block and b"\t\r\n" not in block
            and (len(block) <= MAX_LINE or not _LONG_LINE.search(block))):
        headers = _HEADER.findall(block)     # one pass in C for a well-formed head
    else:
        headers = _check_header_lines(bytes(buf[line_end + 2:idx]).split(b"\r\n"))
    length = None
    chunked = expect = False
    for name, value in headers:
        if len(name) in (10, 14, 17, 6):
            low = name.lower()
            if low == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise BadRequest(400, f"Invalid Content-Length {value[:40]!r}.")
                length = int(value)
            elif low == b"transfer-encoding":
                if value.lower() != b"chunked" or version == "1.0":
                    raise BadRequest(501 if version == "1.1" else 400,
                                     f"Transfer-Encoding {value[:40]!r} is not supported: "
                                     f"send a Content-Length or 'chunked'.")
                chunked = True
            elif low == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
            elif low == b"expect":
                if value.lower() != b"100-continue":
                    raise BadRequest(417, f"Expectation {value[:40]!r} not supported.")
                expect = version == "1.1"
    if chunked and length is not None:
        raise BadRequest(400, "Both Content-Length and Transfer-Encoding: chunked sent.")
    if length is not None and length > MAX_BODY:
        raise BadRequest(413, f"Request body of {length} bytes exceeds the {MAX_BODY} byte "
                              f"limit.")
    path, _, query = target.partition(b"?")
    if not path.startswith(b"/"):
        if path.startswith((b"http://", b"https://")):      # absolute-form
            slash = path.find(b"/", path.find(b"//") + 2)
            path = path[slash:] if slash > 0 else b"/"
        elif not (path == b"*" and method == b"OPTIONS"):
            raise BadRequest(400, f"Malformed request target {target[:100]!r}.")
    path = path.partition(b"#")[0].decode("latin-1")
    if "%" in path:
        path = unquote(path, "utf-8", "surrogateescape")
    return Head(method.decode("ascii"), path, query.partition(b"#")[0], version, headers,
                keep_alive, length or 0, chunked, expect, idx + 4)


def _check_header_lines(lines):
    """The (name, value) pairs of header lines that _HEADERS did not match, or the
    BadRequest that says which line is wrong."""
    headers = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise BadRequest(400, f"Malformed header line {line[:100]!r}.")
        if len(line) > MAX_LINE:
            raise BadRequest(431, f"A header line is longer than {MAX_LINE} bytes.")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise BadRequest(400, f"Invalid character in the value of header {name!r}.")
        headers.append((name, value))
    return headers


def dechunk(buf, pos):
    """A chunked body starting at ``buf[pos]``: (body, end), None while incomplete."""
    out = []
    size = 0
    n = len(buf)
    while True:
        eol = buf.find(b"\r\n", pos, pos + 1024)
        if eol < 0:
            if n - pos > 1024:
                raise BadRequest(400, "Malformed chunk size line in a chunked body.")
            return None
        hexlen = bytes(buf[pos:eol]).partition(b";")[0].strip(b" \t")
        if not _HEX.fullmatch(hexlen):
            raise BadRequest(400, f"Malformed chunk size {hexlen[:20]!r} in a chunked body.")
        length = int(hexlen, 16)
        pos = eol + 2
        if length == 0:
            while True:                 # trailers, ignored, up to the empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > MAX_LINE:
                        raise BadRequest(431, "Chunked body trailers too large.")
                    return None
                if eol == pos:
                    return b"".join(out), eol + 2
                pos = eol + 2
        size += length
        if size > MAX_BODY:
            raise BadRequest(413, f"Chunked request body exceeds the {MAX_BODY} byte limit.")
        if n < pos + length + 2:
            return None
        if buf[pos + length:pos + length + 2] != b"\r\n":
            raise BadRequest(400, "A chunk of a chunked body does not end with CRLF.")
        out.append(bytes(buf[pos:pos + length]))
        pos += length + 2


_reasons = {s.value: s.phrase for s in HTTPStatus}
_date = [0, b""]


def _date_line():
    now = int(time.time())
    if now != _date[0]:
        _date[0] = now
        _date[1] = b"Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                             time.gmtime(now)).encode() + b"\r\n"
    return _date[1]


def _status_line(status):
    return f"HTTP/1.1 {status} {_reasons.get(status, 'Unknown')}\r\n".encode()


def encode_headers(headers):
    """``[(str|bytes, str|bytes)]`` as header lines; refuses CR/LF (header injection)."""
    lines = []
    for k, v in headers:
        k = k.decode("latin-1") if isinstance(k, bytes) else k
        v = v.decode("latin-1") if isinstance(v, bytes) else str(v)
        lines.append(f"{k}: {v}\r\n")
    block = "".join(lines)
    if block.count("\n") != len(lines) or block.count("\r") != len(lines):
        raise ValueError("A response header name or value contains CR or LF.")
    return block.encode("latin-1")


class HttpConnection(WriteFlowControl):
    """One client connection.  ``dispatch(head, self)`` must answer each request with
    ``full`` or ``start``/``write``/``end`` (possibly later); the next request is
    parsed only then."""

    def __init__(self, dispatch, connections):
        self._dispatch = dispatch
        self._connections = connections     # the server's set of open connections
        self.transport = None
        self.peer = None
        self._buf = bytearray()
        self._head = None                   # a Head waiting for its body
        self._continued = False             # 100 Continue sent for self._head
        self._busy = None                   # the Head being answered
        self._in_next = False
        self._streaming = None              # (chunked, head_only) while streaming
        self._reading_paused = False
        self.idle_since = 0.0
        self.closed = False

    # -- asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        self._connections.add(self)
        self.idle_since = asyncio.get_running_loop().time()

    def connection_lost(self, exc):
        self.closed = True
        self._connections.discard(self)
        self._release_writers()

    def data_received(self, data):
        self._buf += data
        if self._busy is None:
            self._next()
        elif len(self._buf) > MAX_HEAD + MAX_BODY and not self._reading_paused:
            self._reading_paused = True      # a pipelining client far ahead of us
            self.transport.pause_reading()

    # -- requests
    def _next(self):
        if self._in_next:
            return
        self._in_next = True
        try:
            while self._busy is None and self._buf and not self.closed:
                head = self._read_request()
                if head is None:
                    break
                self._busy = head
                try:
                    self._dispatch(head, self)
                except Exception:
                    logger.exception("proxy: dispatching %s %s failed", head.method, head.path)
                    if self._busy is head and self._streaming is None:
                        self.full(500, [("Content-Type", "text/plain; charset=utf-8")],
                                  b"Internal Server Error in the Serve proxy.")
            if self._reading_paused and self._busy is None and not self.closed:
                self._reading_paused = False
                self.transport.resume_reading()
        finally:
            self._in_next = False

    def _read_request(self):
        """The next whole request (a Head with its body) cut from the buffer, or None."""
        buf = self._buf
        try:
            head = self._head
            if head is None:
                head = parse_head(buf, 0)
                if head is None:
                    return None
                self._head, self._continued = head, False
            if head.chunked:
                got = dechunk(buf, head.end)
                if got is None:
                    self._maybe_continue(head)
                    return None
                head.body, end = got
            else:
                end = head.end + head.length
                if len(buf) < end:
                    self._maybe_continue(head)
                    return None
                if head.length:
                    head.body = bytes(buf[head.end:end])
        except BadRequest as exc:
            self._refuse(exc.status, str(exc))
            return None
        del buf[:end]
        self._head = None
        return head

    def _maybe_continue(self, head):
        if head.expect_continue and not self._continued:
            self._continued = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _refuse(self, status, message):
        body = message.encode()
        self.transport.write(_status_line(status) + _date_line() +
                             b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n" % len(body) + body)
        self._buf.clear()
        self.closed = True
        self.transport.close()

    def _done(self, keep_alive):
        self._busy = None
        self._streaming = None
        if not keep_alive:
            self.closed = True
            self.transport.close()
            return
        self.idle_since = asyncio.get_running_loop().time()
        if self._buf:
            self._next()

    # -- answers
    def full(self, status, headers, body):
        """Answer the request being served with a whole response (headers: name, value)."""
        head = self._busy
        if self.closed:
            self._busy = None
            return
        keep = head.keep_alive
        try:
            block = encode_headers(headers)
        except ValueError as exc:
            status, block = 500, b"Content-Type: text/plain; charset=utf-8\r\n"
            body = f"Internal Server Error: {exc}".encode()
        conn = b"" if keep and head.version == "1.1" else (
            b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n")
        if status < 200 or status in (204, 304):
            data = _status_line(status) + _date_line() + block + conn + b"\r\n"
        else:
            data = b"%s%s%sContent-Length: %d\r\n%s\r\n" % (
                _status_line(status), _date_line(), block, len(body), conn)
            if head.method != "HEAD":
                data += body
        self.transport.write(data)
        self._done(keep)

    def start(self, status, headers):
        """Begin a streamed response; ``headers`` as ASGI gives them (bytes pairs).

        With a Content-Length among them the body goes as is, else chunked (or
        delimited by closing the connection for an HTTP/1.0 client)."""
        head = self._busy
        length = None
        kept = []
        for k, v in headers:
            low = k.lower() if isinstance(k, bytes) else k.lower().encode()
            if low == b"transfer-encoding" or low == b"connection":
                continue
            if low == b"content-length":
                length = v
            kept.append((k, v))
        no_body = status < 200 or status in (204, 304)
        chunked = length is None and head.version == "1.1" and not no_body
        if length is None and not chunked and not no_body:
            head.keep_alive = False          # the body ends when the connection does
        block = encode_headers(kept)
        extra = b"Transfer-Encoding: chunked\r\n" if chunked else b""
        if not head.keep_alive:
            extra += b"Connection: close\r\n"
        elif head.version == "1.0":
            extra += b"Connection: keep-alive\r\n"
        self._streaming = (chunked, head.method == "HEAD" or no_body)
        if not self.closed:
            self.transport.write(_status_line(status) + _date_line() + block + extra + b"\r\n")

    async def write(self, chunk):
        """One piece of a streamed body; waits while the client reads slowly."""
        if self.closed:
            raise ConnectionResetError("the HTTP client closed the connection")
        chunked, head_only = self._streaming
        if chunk and not head_only:
            self.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        await self.writable()   # the client reads slowly: wait

    def end(self):
        """The streamed response is complete."""
        chunked, head_only = self._streaming
        if chunked and not head_only and not self.closed:
            self.transport.write(b"0\r\n\r\n")
        self._done(self._busy.keep_alive and not self.closed)

    def abort(self):
        """The response cannot be completed: close, so the client sees it cut short."""
        self._busy = None
        self._streaming = None
        if not self.closed:
            self.closed = True
            self.transport.close()

    @property
    def busy(self):
        """A request is being answered."""
        return self._busy is not None

    @property
    def streaming(self):
        """A streamed response has begun (``start`` was called)."""
        return self._streaming is not None


async def close_idle(connections, timeout_s=IDLE_TIMEOUT_S, period_s=15.0):
    """Forever: close keep-alive connections idle for more than ``timeout_s``."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(period_s)
        now = loop.time()
        for conn in list(connections):
            if not conn.busy and not conn._buf and now - conn.idle_since > timeout_s:
                conn.abort()
