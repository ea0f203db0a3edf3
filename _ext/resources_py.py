"""Resource accounting: the pure-Python twin of `_resources.pyx`.

Resources are plain dicts of name -> float amount ({"CPU": 1.0, "GPU": 0.5,
"memory": 1e9, "custom": 2.0}). Amounts compare with a tolerance of EPS so
that fractional requests (0.1 + 0.2) add up as a user expects. Zero amounts
in a request are ignored (a request for {"GPU": 0} fits anywhere).

>>> avail = {"CPU": 2.0}
>>> fits(avail, {"CPU": 1.5}), fits(avail, {"CPU": 2.5}), fits(avail, {"GPU": 0.0})
(True, False, True)
>>> subtract(avail, {"CPU": 1.5}); avail
{'CPU': 0.5}
>>> grant_in_order([("a", {"CPU": 1.0}), ("b", {"CPU": 0.5})], avail)
['b']
"""

EPS = 1e-9


def fits(available, request):
    """True if every amount of `request` is available."""
    for k, v in request.items():
        if v > EPS and available.get(k, 0.0) + EPS < v:
            return False
    return True


def subtract(available, request):
    """Take `request` out of `available` (in place)."""
    for k, v in request.items():
        if v:
            available[k] = float(available.get(k, 0.0)) - v


def add(available, request):
    """Put `request` back into `available` (in place)."""
    for k, v in request.items():
        if v:
            available[k] = float(available.get(k, 0.0)) + v


def total(requests):
    """The sum of a list of requests, as one dict."""
    need = {}
    for r in requests:
        add(need, r)
    return need


def grant_in_order(requests, available):
    """Charge each `(key, resources)` request that fits, in order; return the keys.

    A request that does not fit is skipped, not waited for: later, smaller
    requests may still be granted (first fit, as the node manager's queue does).
    """
    granted = []
    for key, request in requests:
        if fits(available, request):
            subtract(available, request)
            granted.append(key)
    return granted
