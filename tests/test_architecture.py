"""The layering the package promises: array libraries are named in the
backend (and in the modules that are about one library or the host: Dask,
row blocks from files, plotting, datasets, the command line), never in the
algorithm, estimator, validation or metrics modules, which use ``xp`` alone."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xpkmeans"

ARRAY_LIBRARIES = {"numpy", "torch", "cupy", "cupyx", "dask", "scipy", "numba", "triton",
                   "array_api_strict", "jax"}

NAMESPACE_ONLY = [
    "__init__.py", "_course.py", "_hamerly.py", "_init.py", "_kmeans.py", "_lloyd.py",
    "_minibatch.py", "_sklearn_compat.py", "_validation.py", "metrics.py", "model_selection.py",
]


def _imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", NAMESPACE_ONLY)
def test_module_names_no_array_library(module):
    assert _imported_roots((PACKAGE / module).read_text()) & ARRAY_LIBRARIES == set()


def test_every_module_is_classified():
    """A new top-level module must be placed on one side of the rule."""
    library_modules = {"_dask.py", "_streaming.py", "plotting.py", "datasets.py", "cli.py",
                       "__main__.py", "_errors.py"}
    modules = {path.name for path in PACKAGE.glob("*.py")}
    assert modules == set(NAMESPACE_ONLY) | library_modules


def test_the_check_sees_an_import():
    """The parser finds plain, dotted and from-imports (the test can fail)."""
    source = ("import numpy as np\nimport torch.nn\nfrom scipy import sparse\n"
              "from . import _host\ndef f():\n    import cupy\n")
    assert _imported_roots(source) == {"numpy", "torch", "scipy", "cupy"}
