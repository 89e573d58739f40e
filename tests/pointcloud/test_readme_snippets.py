"""The README's point-cloud snippets run as they are written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """spconv's CPU path needs one torch thread (tests/conftest.py)."""


def snippet(name: str) -> str:
    """The Python block that follows ``<!-- snippet: name -->`` in the README."""
    match = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert match, f"README has no snippet {name!r}"
    return match.group(1)


def test_detector_integration_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it writes lion_backbone.pt
    exec(compile(snippet("detector-integration"), "README.md", "exec"), {})
    assert (tmp_path / "lion_backbone.pt").is_file()
