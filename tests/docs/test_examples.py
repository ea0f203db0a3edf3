"""Every docs/examples/*.py runs to the end: exit code 0 and the line it promises.

The scripts are found by globbing, so a chapter's script added later (ch04_rllib.py,
ch07_train.py, ch08_serve.py, ...) is run without touching this file.  Each runs in its
own interpreter, in a scratch folder, with a timeout.  A script that ends with
``print("chNN ok")`` (as the chapters' scripts do) must print that line; any other
must at least print something.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))
TIMEOUT_S = 180          # each script is meant to take < 60 s on a quiet machine

# The set runs well over a minute (and grows as chapters land): slow tier.
pytestmark = pytest.mark.slow

NEEDS = {   # optional libraries a script imports: skip, saying which, when absent
    "ch11_ecosystem": ("sklearn", "joblib", "dask.dataframe"),
}


def test_examples_are_found():
    names = {p.stem for p in EXAMPLES}
    assert {"ch01_overview", "ch02_core", "ch03_first_app", "ch05_tune", "ch06_data",
            "ch09_clusters", "ch11_ecosystem"} <= names, names


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    for module in NEEDS.get(script.stem, ()):
        pytest.importorskip(module)
    source = script.read_text()
    assert "minray.shutdown()" in source or "ray.shutdown()" in source, \
        f"{script.name} must end with minray.shutdown()"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    env.pop("MINRAY_ADDRESS", None)
    try:
        out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script.name} did not finish in {TIMEOUT_S} s; its output:\n"
                    f"{exc.stdout}\n{exc.stderr}")
    assert out.returncode == 0, f"{script.name} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    promised = re.search(r'print\("(ch\d\d ok)"\)', source)
    if promised:
        assert promised.group(1) in out.stdout.splitlines(), out.stdout[-2000:]
    else:
        assert out.stdout.strip(), f"{script.name} printed nothing"
