"""Notebooks: docs/notebooks/quickstart.ipynb executed as a user runs it (a real Jupyter kernel, `nbclient`), its
displayed results checked; `SweepResult` and `LossLedger` draw themselves, user text escaped; the report inline."""

import base64
import html
import re
from pathlib import Path

import keras
import pytest

import reglab

ROOT = Path(__file__).resolve().parents[2]


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


@pytest.mark.slow
def test_the_quickstart_notebook_runs_and_each_result_draws_itself(tmp_path):
    import nbclient
    import nbformat

    notebook = nbformat.read(ROOT / "docs" / "notebooks" / "quickstart.ipynb", as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    shown = [
        output["data"]["text/html"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "text/html" in output.get("data", {})
    ]
    ledger, progress, sweep, report = shown
    assert '<progress value="12" max="12">' in progress and "12 / 12 members trained (done)" in progress  # updated
    assert "LossLedger: 5 epochs" in ledger and "dense/kernel" in ledger
    assert "max-width:1100px" in ledger  # the losses and, beside them, the penalty's share of the kernel's gradient
    assert all(image.startswith(b"\x89PNG") for image in _images(ledger)) and len(_images(ledger)) == 1
    assert "reglab sweep: 4 configurations, 12 members" in sweep and "<b>Best</b>: l2=" in sweep
    assert "Test set" in sweep and "One-standard-error rule" in sweep
    assert len(_images(sweep)) == 2  # the validation curve; seed 004's two gradients, one line per λ
    assert sweep.count("<tr") == 5  # the head and a row per λ, each with its verdict
    assert report.startswith("<iframe") and "reglab report" in html.unescape(report)
    assert (tmp_path / "runs" / "quickstart" / "report.html").is_file()


def test_a_results_html_escapes_what_the_user_named_and_says_when_nothing_was_chosen(digits, tmp_path):
    x, y = digits

    def build(point):
        return keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(10, activation="softmax")]
        )

    hostile = "<script>alert(1)</script>"
    with pytest.warns(UserWarning, match="no configuration could be chosen"):  # one epoch at a tiny rate
        result = reglab.Sweep(build, grid={"tag": [hostile]}, cv=2, epochs=1, learning_rate=1e-4, seed=0).run(
            x[:300], y[:300], run_dir=tmp_path / "run"
        )
    page = result._repr_html_()
    assert hostile not in page and html.escape(hostile) in page
    assert "Nothing selected" in page and len(_images(page)) == 1  # no numeric λ: the learning curves instead
    assert hostile not in result.report()._repr_html_()  # the page itself, quoted inside the frame
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="run_dir=None"):  # no run directory: no report
        reglab.Sweep(build, grid={"tag": ["a"]}, cv=2, epochs=1, seed=0).run(x[:300], y[:300]).report()
    with pytest.raises(ValueError, match="Received: progress='yes'"):
        reglab.Sweep(build, grid={"tag": ["a"]}, cv=2, epochs=1).run(x[:300], y[:300], progress="yes")
    empty = reglab.LossLedger()._repr_html_()
    assert "no epoch recorded yet" in empty
