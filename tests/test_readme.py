"""Every ```python snippet of README.md runs as written.

Snippets run in order in one namespace (later ones use the ``X`` of the
Quickstart), in a temporary directory (they save figures). Snippets that
need a GPU (CuPy, or ``cuda``) skip without one.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def _gpu_missing(code: str) -> str | None:
    """Why ``code`` cannot run here (None: it can)."""
    if "cupy" in code:
        if importlib.util.find_spec("cupy") is None:
            return "needs CuPy"
        import cupy

        try:
            if cupy.cuda.runtime.getDeviceCount() == 0:
                return "needs a CUDA device"
        except cupy.cuda.runtime.CUDARuntimeError:
            return "needs a CUDA device"
    if "cuda" in code:
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            return "needs torch with CUDA"
    return None


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 4


@pytest.fixture(scope="module")
def namespace():
    return {}


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, namespace, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    code = SNIPPETS[index]
    reason = _gpu_missing(code)
    if reason is not None:
        pytest.skip(f"README snippet {index}: {reason}")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md snippet {index}", "exec"), namespace)
    for name in re.findall(r'savefig\("([^"]+)"\)', code):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
