"""Every notebook in notebooks/ runs, with small parameters (CAUSALCTS_QUICK=1), so none can rot.

The kernel runs with its own backend (inline, as a reader has: MPLBACKEND is unset), and every cell
that calls ``plt.show()`` must display a figure (an ``image/png`` output): importing causalcts must
not switch a notebook to a backend that shows nothing.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


def _shows_figure(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_displays_its_figures(path, monkeypatch):
    monkeypatch.setenv("CAUSALCTS_QUICK", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel picks its inline backend, as in Jupyter
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert os.environ["CAUSALCTS_QUICK"] == "1"
    plotting = [i for i, c in enumerate(code) if "plt.show()" in c.source]
    blank = [i for i in plotting if not _shows_figure(code[i])]
    assert not blank, f"{path.name}: code cells {blank} call plt.show() but display no figure"
    if any("plot" in c.source for c in code):
        assert any(_shows_figure(c) for c in code), f"{path.name} plots but displays no figure"
