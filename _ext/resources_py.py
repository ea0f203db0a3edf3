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

