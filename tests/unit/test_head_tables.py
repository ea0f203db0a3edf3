"""The head's tables (head/tables.py), shared by the node manager and local mode."""
import pytest

from minray._private.head.tables import Claim, KVStore, NamedActorTable, not_found_error

# ------------------------------------------------------------------------- KV
# Each row: a sequence of (operation, arguments, expected result).
KV_ROWS = [
    ("put then get", [("put", ("k", b"v"), True), ("get", ("k",), b"v")]),
    ("get of a missing key", [("get", ("nope",), None)]),
    ("overwrite by default", [("put", ("k", b"1"), True), ("put", ("k", b"2"), True),
                              ("get", ("k",), b"2")]),
    ("no overwrite keeps the old value", [("put", ("k", b"1"), True),
                                          ("put", ("k", b"2", False), False),
                                          ("get", ("k",), b"1")]),
    ("no overwrite of a new key stores it", [("put", ("k", b"1", False), True),
                                             ("get", ("k",), b"1")]),
    ("delete", [("put", ("k", b"v"), True), ("delete", ("k",), True),
                ("delete", ("k",), False), ("get", ("k",), None)]),
    ("prefix list in insertion order",
     [("put", ("a/2", 1), True), ("put", ("b/1", 1), True), ("put", ("a/1", 1), True),
      ("keys", ("a/",), ["a/2", "a/1"]), ("keys", ("",), ["a/2", "b/1", "a/1"]),
      ("keys", ("c",), [])]),
    ("namespaces are apart",
     [("put", ("k", b"x", True, "ns1"), True), ("get", ("k",), None),
      ("get", ("k", "ns1"), b"x"), ("keys", ("", "ns1"), ["k"]), ("keys", ("",), []),
      ("put", ("k", b"y"), True), ("delete", ("k", "ns1"), True), ("get", ("k",), b"y")]),
    ("items of one namespace",
     [("put", ("a", 1), True), ("put", ("b", 2, True, "ns1"), True),
      ("items", (), [("a", 1)]), ("items", ("ns1",), [("b", 2)])]),
]


@pytest.mark.parametrize("steps", [r[1] for r in KV_ROWS], ids=[r[0] for r in KV_ROWS])
def test_kv_table(steps):
    kv = KVStore()
    for op, args, expected in steps:
        assert getattr(kv, op)(*args) == expected, (op, args)


# ---------------------------------------------------------------- named actors
ALIVE = {b"a1", b"a2", b"b1"}


def alive(actor_id):
    return actor_id in ALIVE


NAMED_ROWS = [
    ("a free name is claimed", [("claim", ("ns", "n", b"a1", False), Claim(True, b"a1")),
                                ("lookup", ("ns", "n"), b"a1")]),
    ("get_if_exists returns the holder",
     [("claim", ("ns", "n", b"a1", False), Claim(True, b"a1")),
      ("claim", ("ns", "n", b"a2", True), Claim(False, b"a1"))]),
    ("a taken name fails", [("claim", ("ns", "n", b"a1", False), Claim(True, b"a1")),
                            ("claim", ("ns", "n", b"a2", False), ValueError)]),
    ("the same name in another namespace is free",
     [("claim", ("ns", "n", b"a1", False), Claim(True, b"a1")),
      ("claim", ("other", "n", b"a2", False), Claim(True, b"a2")),
      ("lookup", ("other", "n"), b"a2"), ("lookup", ("ns", "n"), b"a1")]),
    ("a dead holder's name is free",
     [("claim", ("ns", "n", b"dead", False), Claim(True, b"dead")),
      ("lookup", ("ns", "n"), None),
      ("claim", ("ns", "n", b"a1", False), Claim(True, b"a1"))]),
    ("release frees the name", [("claim", ("ns", "n", b"a1", False), Claim(True, b"a1")),
                                ("release", ("ns", "n", b"a1"), None),
                                ("lookup", ("ns", "n"), None)]),
    ("release by a former holder keeps the new one",
     [("claim", ("ns", "n", b"dead", False), Claim(True, b"dead")),
      ("claim", ("ns", "n", b"a1", False), Claim(True, b"a1")),
      ("release", ("ns", "n", b"dead"), None), ("lookup", ("ns", "n"), b"a1")]),
    ("release of an unnamed actor is a no-op", [("release", ("ns", None, b"a1"), None)]),
    ("list: this namespace's live names, or all",
     [("claim", ("ns", "x", b"a1", False), Claim(True, b"a1")),
      ("claim", ("ns", "gone", b"dead", False), Claim(True, b"dead")),
      ("claim", ("other", "y", b"b1", False), Claim(True, b"b1")),
      ("names", ("ns", False), ["x"]), ("names", ("other", False), ["y"]),
      ("names", ("ns", True), [{"name": "x", "namespace": "ns"},
                               {"name": "y", "namespace": "other"}])]),
]


@pytest.mark.parametrize("steps", [r[1] for r in NAMED_ROWS], ids=[r[0] for r in NAMED_ROWS])
def test_named_actor_table(steps):
    table = NamedActorTable()
    for op, args, expected in steps:
        fn = getattr(table, op)
        if op in ("claim", "lookup", "names"):
            args = args + (alive,)
        if expected is ValueError:
            with pytest.raises(ValueError, match="already taken.*get_if_exists=True"):
                fn(*args)
        else:
            assert fn(*args) == expected, (op, args)


def test_not_found_error_names_the_name_and_namespace():
    err = not_found_error("counter", "ns")
    assert isinstance(err, ValueError)
    assert "'counter'" in str(err) and "'ns'" in str(err)
