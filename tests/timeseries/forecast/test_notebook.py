"""``notebooks/forecasting.ipynb`` runs top to bottom (nbclient, one short epoch) and reports its test metrics."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "forecasting.ipynb"


def test_forecasting_notebook_executes(monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="nbclient is in the dev extra")
    monkeypatch.setenv("LRNN_NOTEBOOK_EPOCHS", "1")
    monkeypatch.setenv("LRNN_NOTEBOOK_TRAIN_BATCHES", "20")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    text = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "test MSE" in text and "forecasts: (" in text
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1
