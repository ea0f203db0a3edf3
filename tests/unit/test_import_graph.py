"""The core's module graph has no import cycles.

The graph is built statically (ast over corelib's files, no imports run):
an edge A -> B when module A imports module B.  Imports at module level and
imports inside functions are counted separately.  The contract: no cycle among
module-level imports (a cycle there makes import order matter and lets a half
initialised module leak out).  Function-level imports are deferred, so a cycle
that needs one of them is not a load-order hazard; those cycles are listed by
``function_level_cycles`` for a maintainer to read, and a regression test keeps
their number from growing.

Run it directly for the report::

    python tests/unit/test_import_graph.py
"""

import ast
import os
import sys
import warnings
from typing import Dict, List, NamedTuple, Set

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "corelib")
PACKAGE = "minray"


class Edge(NamedTuple):
    source: str
    target: str
    line: int
    deferred: bool   # inside a function (or method): runs at call time, not at import


def module_files(root=ROOT):
    """{module name: path} for every .py file under corelib (mapped onto ``minray``)."""
    out = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if not name.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(folder, name), root)[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join([PACKAGE] + rel)] = os.path.join(folder, name)
    return out


def _resolve(module, is_package, level, name):
    if level == 0:
        return name
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    if level > 1:
        base = base[:-(level - 1)]
    return ".".join(base + ([name] if name else []))


def _known(target, modules):
    """The longest prefix of a dotted name that is one of our modules (or None)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def edges(modules=None):
    """Every import edge between corelib modules, as Edge records."""
    modules = modules or module_files()
    out = []
    for module, path in modules.items():
        is_package = path.endswith("__init__.py")
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        deferred_nodes = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for inner in ast.walk(node):
                    if inner is not node:
                        deferred_nodes.add(id(inner))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node.level, node.module or "")
                # `from pkg import mod` imports pkg and, when mod is a module, mod too.
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                found = _known(target, modules)
                if found and found != module:
                    out.append(Edge(module, found, node.lineno, id(node) in deferred_nodes))
    return sorted(set(out))


def graph(edge_list, include_deferred):
    g: Dict[str, Set[str]] = {}
    for e in edge_list:
        if e.deferred and not include_deferred:
            continue
        if _is_ancestor(e.target, e.source):
            # Importing `minray.a.b` runs `minray.a` first; a child importing its parent
            # package is the normal case, not a cycle of ours.
            continue
        g.setdefault(e.source, set()).add(e.target)
    return g


def _is_ancestor(pkg, module):
    return module.startswith(pkg + ".")


def strongly_connected(g) -> List[List[str]]:
    """Tarjan's algorithm: the components of more than one module (each a cycle)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    nodes = set(g) | {w for ws in g.values() for w in ws}
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def describe(component, edge_list, include_deferred):
    members = set(component)
    lines = [f"cycle among {len(component)} modules:"]
    for e in edge_list:
        if e.source in members and e.target in members and (include_deferred or not e.deferred) \
                and not _is_ancestor(e.target, e.source):
            where = "in a function" if e.deferred else "module level"
            lines.append(f"  {e.source} -> {e.target}  (line {e.line}, {where})")
    return "\n".join(lines)


def module_level_cycles():
    es = edges()
    return [describe(c, es, False) for c in strongly_connected(graph(es, False))]


def function_level_cycles():
    es = edges()
    return [describe(c, es, True) for c in strongly_connected(graph(es, True))]


# ---- tests ----------------------------------------------------------------

def test_graph_builder_sees_a_known_edge():
    es = edges()
    assert Edge in {type(e) for e in es}
    assert any(e.source == "minray.api" and not e.deferred for e in es)
    # The parser resolves both absolute and relative imports onto module names.
    assert _resolve("minray._private.state", False, 2, "api") == "minray.api"
    assert _resolve("minray._private", True, 1, "state") == "minray._private.state"


def test_cycle_finder_on_a_table():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert strongly_connected(g) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_module_level_import_cycle():
    cycles = module_level_cycles()
    assert not cycles, "\n\n".join(cycles)


def test_function_level_cycles_are_reported():
    # Deferred imports may close a loop without a load-order hazard (they run after
    # every module has loaded), but each such loop is a coupling a maintainer should
    # see: they are reported as warnings, not failures (today there are none).
    for cycle in function_level_cycles():
        warnings.warn("import cycle through a function-level import:\n" + cycle)


def test_object_ref_is_one_class_under_every_path():
    import pickle

    import minray
    import minray.object_ref as public
    from minray._private.core import object_ref as private
    for name in ("ObjectRef", "ObjectRefGenerator", "DynamicObjectRefGenerator"):
        assert getattr(public, name) is getattr(private, name)
    assert minray.ObjectRef is private.ObjectRef
    # A ref pickled by an older process names the public module's rebuild function.
    assert public._rebuild_ref is private._rebuild_ref
    ref = pickle.loads(pickle.dumps(private.ObjectRef(b"\x01" * 20, b"owner")))
    assert isinstance(ref, public.ObjectRef) and ref.binary() == b"\x01" * 20


if __name__ == "__main__":
    print("module-level cycles:")
    print("\n\n".join(module_level_cycles()) or "  none")
    print("\ncycles through function-level (deferred) imports:")
    print("\n\n".join(function_level_cycles()) or "  none")
