"""Build minray: map the repository's folders onto the `minray` package and
compile the Cython hot paths.

    corelib/          -> minray            (and every subpackage below it)
    _ext/             -> minray._ext       (_ext/_<name>.pyx -> minray._ext._<name>)
    libs/<lib>/       -> minray.<lib>      for data, tune, train, rllib, serve,
                                           each only once libs/<lib>/__init__.py exists

Install for development (builds the extensions into _ext/ in place):

    pip install -c constraints.txt -e ".[test]"

Rebuild the extensions after editing a .pyx, in an environment that has
Cython>=3.0 (pip's editable install builds in an isolated environment, so the
venv itself may not have Cython: `pip install "Cython>=3.0"` first, or rerun
the `pip install -e` above):

    python setup.py build_ext --inplace

Editable installs and package_dir: setuptools' PEP 660 editable wheel (the
default "lenient" mode, setuptools>=64) sees that `minray` does not live in a
folder named minray, so instead of a plain .pth entry it installs a small
meta-path finder (`__editable___minray_*_finder.py` in site-packages) whose
table maps each top-level root of this package_dir onto its folder:
minray -> corelib, minray._ext -> _ext, minray.<lib> -> libs/<lib>. Deeper
modules are found through the parent package's __path__, so files added to
these folders later are picked up without reinstalling; a new root (a new
libs/<lib>, a new top-level mapping here) needs `pip install -e .` again.
No `editable_mode=compat` or other config setting is needed.
"""

from pathlib import Path

from setuptools import Extension, find_packages, setup

HERE = Path(__file__).resolve().parent
LIBS = ("data", "tune", "train", "rllib", "serve")


def package_tree(package, folder):
    """Map `package` onto `folder` and every subpackage onto its subfolder.

    The mapped paths stay relative to the project root, as setuptools
    requires (run setup.py from the project root, as pip does).
    """
    mapping = {package: folder}
    for sub in find_packages(str(HERE / folder)):
        mapping[f"{package}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return mapping


def package_dir():
    mapping = {}
    mapping.update(package_tree("minray", "corelib"))
    mapping.update(package_tree("minray._ext", "_ext"))
    for lib in LIBS:
        # Libraries arrive one by one; a folder without __init__.py is not
        # a package yet and is left out.
        if (HERE / "libs" / lib / "__init__.py").is_file():
            mapping.update(package_tree(f"minray.{lib}", f"libs/{lib}"))
    return mapping


def extensions():
    """One extension `minray._ext.<stem>` per `_ext/<stem>.pyx`."""
    from Cython.Build import cythonize  # a build requirement (pyproject.toml)

    modules = [
        Extension(f"minray._ext.{pyx.stem}", [f"_ext/{pyx.name}"])
        for pyx in sorted((HERE / "_ext").glob("*.pyx"))
    ]
    return cythonize(
        modules,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
        },
    )


# gymnasium: "Learning Ray" chapter 3 (run by CI) uses it; it is small and pure Python.
# pandas: minray.data's pandas batches and to_pandas, and Tune's get_dataframe,
# are tested; "Learning Ray" chapter 6 uses it.
PANDAS = "pandas>=1.5"
# aiohttp: the head's HTTP service (job submission, dashboard) and Serve's proxy.
AIOHTTP = "aiohttp>=3.8"
# atheris: coverage-guided fuzzing of the frame decoder (tests/unit/test_fuzz_frame.py);
# wheels exist for Linux x86_64 only, elsewhere that test says why it skips.
ATHERIS = 'atheris>=2.3; platform_system == "Linux" and platform_machine == "x86_64" ' \
          'and python_version < "3.13"'
TORCH = "torch>=2.0,<3"  # constraints.txt pins the local CPU build
# torch: minray.data's iter_torch_batches / from_torch are tested (CPU build, pinned).
# fastapi, pydantic, requests: Serve's ASGI ingress and "Learning Ray" ch. 8/10 (book2).
# scikit-learn, joblib, dask: the ecosystem integrations are tested against the real libraries.
SERVE_TEST = ["fastapi>=0.100", "pydantic>=2", "requests>=2.28"]
ECOSYSTEM_TEST = ["scikit-learn>=1.2", "joblib>=1.2", "dask[dataframe]>=2023.1"]
TEST = ["pytest>=7", "pytest-benchmark>=4", "hypothesis>=6", "pytest-timeout>=2",
        "gymnasium>=0.28", PANDAS, AIOHTTP, ATHERIS, TORCH, *SERVE_TEST, *ECOSYSTEM_TEST]
EXTRAS = {
    "test": TEST,
    "data": [PANDAS],
    "tune": [PANDAS],
    "train": [TORCH],
    "rllib": [TORCH, "gymnasium>=0.28"],
    "serve": [AIOHTTP],
    # What a cluster's head needs beyond the core: its HTTP service for jobs
    # (`minray job submit`), as Ray's "default" extra brings its dashboard.
    "default": [AIOHTTP],
}
# all: every library's requirements (not the test tools)
EXTRAS["all"] = sorted({req for extra in (*LIBS, "default") for req in EXTRAS[extra]})

PACKAGE_DIR = package_dir()

setup(
    name="minray",
    version="0.1.0",
    description="Ray's programming model, rebuilt to be read, taught and run on one laptop",
    python_requires=">=3.9",
    package_dir=PACKAGE_DIR,
    packages=sorted(PACKAGE_DIR),
    # The dashboard's page, served by the head (editable installs read the source tree).
    package_data={"minray._private.observability": ["dashboard_static/*"]},
    ext_modules=extensions(),
    install_requires=["cloudpickle>=2.0", "numpy>=1.23", "psutil>=5.9"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["minray = minray.scripts:main"]},
    zip_safe=False,
)
