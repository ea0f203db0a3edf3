"""lazy_module: a placeholder that imports its module on first use and then
gets out of the way (the importer's global becomes the real module)."""

import subprocess
import sys

from minray._private.lazy import lazy_module


def test_first_use_imports_and_rebinds_the_global():
    ns = {}
    ns["colorsys"] = lazy_module("colorsys", ns)
    code = "import sys; print('colorsys' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout.strip() == "False"  # not imported by default
    placeholder = ns["colorsys"]
    assert "imported on first use" in repr(placeholder)
    assert placeholder.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    import colorsys
    assert ns["colorsys"] is colorsys       # the placeholder replaced itself


def test_a_dotted_name_binds_its_last_part():
    ns = {}
    ns["parse"] = lazy_module("urllib.parse", ns)
    assert ns["parse"].quote("a b") == "a%20b"
    import urllib.parse
    assert ns["parse"] is urllib.parse


def test_node_manager_start_up_leaves_optional_modules_unimported():
    code = ("import sys, minray._private.node.manager as nm; "
            "print(sorted(m for m in ('cloudpickle', 'psutil', 'minray._private.node.cluster') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
