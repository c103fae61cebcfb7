"""Choosing λ and showing why: the one-SE rule, verdicts, paths, report.html (in Chromium), TensorBoard."""

import glob
import html
import json
import os
import re
import shutil
import subprocess

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

import reglab
from reglab import diagnosis, selection, views
from reglab.records import HISTOGRAM_EDGES

X, Y = load_digits(return_X_y=True)
X = (X / 16).astype("float32")
HOSTILE = "</script><script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


def mlp(width=32):
    def build(point):
        return keras.Sequential([
            keras.Input((64,)),
            keras.layers.Dense(width, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"])),
            keras.layers.Dense(10, activation="softmax"),
        ])
    return build


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One real sweep shared by the tests below: 5 λ × 3 folds on digits, with a run directory."""
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    result = reglab.Sweep(mlp(), grid={"l2": [0.0, 1e-4, 1e-3, 1e-2, 1.0]}, cv=3, epochs=6, test_size=0.2,
                          seed=0).run(X, Y, run_dir=run_dir)
    return result, run_dir


# --- the one-standard-error rule -----------------------------------------------------------------


def table(means, sems, lambdas=(0.0, 1e-3, 1e-2, 1e-1), complete=None):
    complete = complete or [True] * len(means)
    frame = pd.DataFrame({"l2": lambdas, "point": [f"p{i}" for i in range(len(means))], "members": 5,
                          "ok": [5 if c else 4 for c in complete], "failed": 0,
                          "diverged": [0 if c else 1 for c in complete],
                          "val_loss_mean": means, "val_loss_std": np.array(sems) * np.sqrt(5), "val_loss_sem": sems})
    frame["rank"] = frame["val_loss_mean"].where(frame["ok"] == frame["members"]).rank(method="min")
    return frame.sort_values("rank", na_position="last").reset_index(drop=True)  # as `summarize` leaves it


def test_one_se_rule_takes_the_most_regularized_point_within_one_standard_error():
    t = table([0.30, 0.25, 0.27, 0.40], [0.01, 0.03, 0.01, 0.01])  # best 0.25 ± 0.03 → threshold 0.28
    assert selection.best(t)["params"] == {"l2": 1e-3}
    choice = selection.best_1se(t)
    assert choice["params"] == {"l2": 1e-2} and choice["threshold"] == pytest.approx(0.28)
    # a smaller standard error of the best point leaves only the best itself
    assert selection.best_1se(table([0.30, 0.25, 0.27, 0.40], [0.01, 0.005, 0.01, 0.01]))["params"] == {"l2": 1e-3}
    # a diverged point is never chosen, however good its mean
    broken = table([0.30, 0.25, 0.26, 0.27], [0.01, 0.03, 0.01, 0.01], complete=[True, True, True, False])
    assert selection.best_1se(broken)["params"] == {"l2": 1e-2}


def test_one_se_rule_for_a_score_to_maximize_and_bad_simplicity():
    t = table([0.90, 0.95, 0.94, 0.80], [0.01, 0.02, 0.01, 0.01]).rename(columns=lambda c: c.replace("val_loss", "val_accuracy"))
    t["rank"] = t["val_accuracy_mean"].rank(ascending=False, method="min")
    assert selection.best_1se(t, by="val_accuracy", mode="max")["params"] == {"l2": 1e-2}  # 0.94 ≥ 0.95 − 0.02
    with pytest.raises(ValueError, match="Received: simplicity=\\['dropout'\\]"):
        selection.best_1se(t, by="val_accuracy", mode="max", simplicity=["dropout"])


def test_sweep_reports_the_one_se_choice_consistently_with_its_members(digits_run):
    result, run_dir = digits_run
    best, one_se = result.best, result.best_1se
    assert one_se["params"]["l2"] >= best["params"]["l2"]
    # recompute the threshold from the per-member table, independently of `summarize`
    final = result.members.groupby("point")["val_loss"].agg(["mean", "std", "count"])
    top = final.loc[best["point_id"]]
    threshold = top["mean"] + top["std"] / np.sqrt(top["count"])
    assert final.loc[one_se["point_id"], "mean"] <= threshold + 1e-12
    stronger = result.summary[result.summary["l2"] > one_se["params"]["l2"]]
    assert (stronger["val_loss_mean"] > threshold).all()
    stored = json.loads((run_dir / "summary.json").read_text())
    assert stored["best_1se"]["point_id"] == one_se["point_id"]


# --- diagnosis -------------------------------------------------------------------------------------


def test_a_big_model_on_tiny_noisy_data_is_diagnosed_as_overfitting():
    rng = np.random.default_rng(0)
    idx = rng.choice(len(Y), 90, replace=False)
    y = Y[idx].copy()
    flip = rng.random(len(y)) < 0.3
    y[flip] = rng.integers(0, 10, flip.sum())  # 30% label noise
    result = reglab.Sweep(mlp(256), grid={"l2": [0.0]}, cv=3, epochs=60, learning_rate=1e-2, refit=False,
                          stratify=False, seed=0).run(X[idx], y)
    verdict = result.diagnosis.iloc[0]
    assert verdict["verdict"] == "overfitting", verdict["reason"]
    assert "increase λ" in verdict["recommendation"]
    assert verdict["rise"] >= diagnosis.RISE and verdict["train_drop"] > 0


def test_a_crushing_penalty_is_diagnosed_as_underfitting(digits_run):
    result, _ = digits_run
    verdicts = result.diagnosis.merge(result.summary[["point", "l2"]], on="point").set_index("l2")
    strong = verdicts.loc[1.0]
    assert strong["verdict"] == "underfitting", strong["reason"]
    assert strong["recommendation"] == "decrease λ" and strong["penalty_share"] >= diagnosis.PENALTY_SHARE
    assert verdicts.loc[1e-4, "verdict"] != "underfitting"
    assert "penalty" in strong["reason"] and f"{strong['best_epoch']}" in strong["reason"]


# --- paths and histograms --------------------------------------------------------------------------


def test_regularization_paths_and_histograms_come_from_the_records(digits_run):
    result, _ = digits_run
    paths = views.regularization_paths(result.epochs, result.summary, "l2", result.best["point_id"])
    norms = paths[(paths["quantity"] == "l2") & (paths["weight"].str.endswith("dense/kernel"))].set_index("l2")["mean"]
    assert norms.loc[1.0] < 0.5 * norms.loc[0.0]  # a strong L2 shrinks the first kernel
    last = views.final_rows(result.epochs)
    column = [c for c in last.columns if c.startswith("l2:") and c.endswith("dense/kernel")][0]
    assert norms.loc[1.0] == pytest.approx(last[last["l2"] == 1.0][column].mean())
    counts = result.histograms.groupby(["member", "weight"])["count"].sum()
    assert (counts.xs("sequential/dense/kernel", level="weight") == 64 * 32).all()
    assert len(result.histograms["low"].unique()) == len(HISTOGRAM_EDGES)  # the bins plus exact zeros
    assert result.histograms["member"].nunique() == len(result.members)


# --- the HTML report, in a real browser --------------------------------------------------------------


def browser():
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("REGLAB_SKIP_BROWSER") == "1":
            pytest.skip("REGLAB_SKIP_BROWSER=1 and no Chromium")
        pytest.fail("The report test needs Chromium (python3 tasks.py test installs Debian's chromium package; "
                    "or apt-get install chromium). Set REGLAB_SKIP_BROWSER=1 to skip it.")
    return found


def load_in_chromium(page):
    """(DOM after the scripts ran, console messages) of a headless Chromium load of `page`."""
    run = subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.slow
def test_report_renders_offline_without_console_errors_and_hostile_names_do_nothing(tmp_path):
    run_dir = tmp_path / "\"><img src=x onerror=\"document.title='pwned'\">"
    reglab.Sweep(mlp(16), grid={"tag": [HOSTILE], "l2": [0.0, 1e-2, 1e-1]}, cv=2, epochs=3, test_size=0.2,
                 seed=0).run(X[:600], Y[:600], run_dir=run_dir)
    page = run_dir / "report.html"
    text = page.read_text()
    assert "<script src" not in text and "http://" not in text.split("<script", 1)[0]  # self-contained
    dom, console = load_in_chromium(page)
    assert console == []  # no errors, no warnings, no blocked (injected) script
    figures = len(re.findall(r'<div id="fig\d+" class="figure', text))
    assert figures == 5 and dom.count('class="plot-container plotly"') == figures  # every plot rendered
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title == f"{html.escape(run_dir.name, quote=False)} — reglab report"  # no script ever set it
    assert "&lt;/script&gt;&lt;script&gt;document.title=" in dom  # the hostile value is shown, as text
    assert "<img src=\"x\"" not in dom and "<img src=x" not in dom


# --- TensorBoard -----------------------------------------------------------------------------------


def test_tensorboard_hparams_export_reads_back(digits_run, tmp_path):
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    from reglab.tensorboard_export import export

    result, run_dir = digits_run
    logdir = export(run_dir, tmp_path / "tb")
    found, finals = {}, {}
    for path in glob.glob(str(logdir / "**" / "events.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        found[data.session_start_info.group_name] = data.session_start_info.hparams["l2"].number_value
                    elif data.HasField("experiment"):
                        assert [h.name for h in data.experiment.hparam_infos] == ["l2"]
                elif value.tag == "val_loss_mean":
                    finals[os.path.basename(os.path.dirname(path))] = float(tf.make_ndarray(value.tensor))
    summary = result.summary.set_index("point")
    assert found == {p: pytest.approx(summary.loc[p, "l2"]) for p in summary.index}
    assert finals == {p: pytest.approx(summary.loc[p, "val_loss_mean"], rel=1e-6) for p in summary.index}
