"""The public namespace is curated, and libraries use only public names."""
import ast
import pathlib
import subprocess
import sys

import minray

ROOT = pathlib.Path(__file__).resolve().parents[2]

RAY_CORE_NAMES = {
    "init", "shutdown", "is_initialized", "remote", "get", "put", "wait", "cancel", "kill",
    "get_actor", "get_runtime_context", "available_resources", "cluster_resources", "nodes",
    "method", "ObjectRef", "ObjectRefGenerator", "exceptions",
}


def test_every_public_name_is_exported_exactly_once_and_resolves():
    assert len(minray.__all__) == len(set(minray.__all__))
    for name in minray.__all__:
        assert getattr(minray, name) is not None, name
    assert RAY_CORE_NAMES <= set(minray.__all__)


def test_no_private_runtime_names_leak_into_the_namespace():
    public = {n for n in vars(minray) if not n.startswith("_")}
    allowed = set(minray.__all__) | set(minray._LAZY) | {"api", "object_ref", "options",
                                                         "remote_function"}
    assert public <= allowed, public - allowed


def test_libraries_load_lazily_and_import_is_light():
    code = ("import sys, minray; "
            "print(any(m in sys.modules for m in ('numpy', 'minray.util', 'minray.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_libraries_import_only_public_minray_names():
    offenders = []
    for path in (ROOT / "libs").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [("." * node.level) + node.module]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            for mod in mods:
                parts = mod.lstrip(".").split(".")
                if mod.startswith("minray") and any(p.startswith("_") for p in parts):
                    offenders.append(f"{path.relative_to(ROOT)}: {mod}")
    assert not offenders, offenders
