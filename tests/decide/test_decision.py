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
from sklearn.datasets import load_diabetes, load_digits, load_wine

import reglab
from reglab.decide import baseline, diagnosis, selection
from reglab.kit.records import HISTOGRAM_EDGES
from reglab.show import views

X, Y = load_digits(return_X_y=True)
X = (X / 16).astype("float32")
HOSTILE = "</script><script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


def mlp(width=32):
    def build(point):
        return keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(width, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"])),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )

    return build


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One real sweep shared by the tests below: 5 λ × 3 folds on digits, with a run directory."""
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    result = reglab.Sweep(mlp(), grid={"l2": [0.0, 1e-4, 1e-3, 1e-2, 1.0]}, cv=3, epochs=6, test_size=0.2, seed=0).run(
        X, Y, run_dir=run_dir
    )
    return result, run_dir


# --- the one-standard-error rule -----------------------------------------------------------------


def table(means, sems, lambdas=(0.0, 1e-3, 1e-2, 1e-1), complete=None):
    complete = complete or [True] * len(means)
    frame = pd.DataFrame(
        {
            "l2": lambdas,
            "point": [f"p{i}" for i in range(len(means))],
            "members": 5,
            "ok": [5 if c else 4 for c in complete],
            "failed": 0,
            "diverged": [0 if c else 1 for c in complete],
            "val_loss_mean": means,
            "val_loss_std": np.array(sems) * np.sqrt(5),
            "val_loss_sem": sems,
        }
    )
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
    t = table([0.90, 0.95, 0.94, 0.80], [0.01, 0.02, 0.01, 0.01]).rename(
        columns=lambda c: c.replace("val_loss", "val_accuracy")
    )
    t["rank"] = t["val_accuracy_mean"].rank(ascending=False, method="min")
    assert selection.best_1se(t, by="val_accuracy", mode="max")["params"] == {"l2": 1e-2}  # 0.94 ≥ 0.95 − 0.02
    with pytest.raises(ValueError, match="Received: simplicity=\\['dropout'\\]"):
        selection.best_1se(t, by="val_accuracy", mode="max", simplicity=["dropout"])


@pytest.mark.slow
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
    # it ends worse than the class priors: by the loss there would be nothing to select, so by accuracy
    result = reglab.Sweep(
        mlp(256),
        grid={"l2": [0.0]},
        cv=3,
        epochs=60,
        learning_rate=1e-2,
        refit=False,
        stratify=False,
        select="val_accuracy",
        seed=0,
    ).run(X[idx], y)
    verdict = result.diagnosis.iloc[0]
    assert verdict["verdict"] == "overfitting", verdict["reason"]  # it learned first: not "not learning"
    assert "increase λ" in verdict["recommendation"]
    assert verdict["rise"] >= diagnosis.RISE and verdict["train_drop"] > 0
    assert "to worse than the constant predictor's 2.31 (class priors)" in verdict["reason"]
    assert not result.summary.loc[0, "learning"]


def test_a_crushing_penalty_is_diagnosed_as_underfitting(digits_run):
    result, _ = digits_run
    verdicts = result.diagnosis.merge(result.summary[["point", "l2"]], on="point").set_index("l2")
    strong = verdicts.loc[1.0]
    assert strong["verdict"] == "underfitting", strong["reason"]
    assert strong["recommendation"] == "decrease λ" and strong["penalty_share"] >= diagnosis.PENALTY_SHARE
    assert verdicts.loc[1e-4, "verdict"] != "underfitting"
    assert "penalty" in strong["reason"] and f"{strong['best_epoch']}" in strong["reason"]


# --- the constant predictor: a blown-up model is never "well-fit" ----------------------------------


def test_the_constant_predictors_loss_by_hand():
    priors = baseline.constant_loss([0, 0, 0, 1, 1, 2], [0, 2, 2, 1], "sparse_categorical_crossentropy")
    assert priors == (pytest.approx(-(np.log(1 / 2) + 2 * np.log(1 / 6) + np.log(1 / 3)) / 4), "class priors")
    # a sigmoid's binary cross-entropy and a two-class softmax's sparse one: the same constant predictor
    assert baseline.constant_loss([1, 1, 1, 0], [1, 0], "binary_crossentropy")[0] == pytest.approx(
        -(np.log(0.75) + np.log(0.25)) / 2
    )
    assert baseline.constant_loss([1, 1, 1, 0], [1, 0], keras.losses.SparseCategoricalCrossentropy())[
        0
    ] == pytest.approx(baseline.constant_loss([1, 1, 1, 0], [1, 0], "binary_crossentropy")[0])
    assert baseline.constant_loss([0, 0], [1], "sparse_categorical_crossentropy", n_classes=2)[0] == pytest.approx(
        -np.log(1e-7)
    )
    assert baseline.constant_loss([1.0, 2.0, 3.0], [0.0, 4.0], "mse") == (pytest.approx(4.0), "training mean")
    assert np.isnan(baseline.constant_loss([1.0], [2.0], "huber")[0])  # no known constant predictor: no comparison


def test_a_standardized_regression_baseline_is_in_the_units_of_val_loss():
    from reglab.decide.baseline import for_member
    from reglab.engine.training import Training
    from reglab.search import plan

    x, y = load_diabetes(return_X_y=True)
    sweep = reglab.Sweep(lambda point: None, grid={"l2": [0.0]}, cv=3, standardize=True, seed=0)
    dataset, _, _, splits = sweep.split(x.astype("float32"), y.astype("float64"))
    member = plan.members([{"l2": 0.0}], splits, 0)[0]
    training = Training(1, 32, "adam", 1e-3, "mean_squared_error", (), standardize=True)
    loss, predictor = for_member(member, dataset, training)
    mean, std = y[member.train].mean(), y[member.train].std()
    assert loss == pytest.approx(np.mean(((y[member.val] - mean) / std) ** 2))
    assert loss == pytest.approx(1.0, abs=0.2)  # ≈ 1 in standard deviations, not ≈ 5900
    assert predictor == "training mean"


def wine_sweep(learning_rate, grid):
    return reglab.Sweep(
        reglab.models.MLP(hidden=[16]).bind(n_features=13, n_outputs=3),
        grid=grid,
        cv=3,
        epochs=6,
        learning_rate=learning_rate,
        standardize=True,
        refit=False,
        seed=0,
    )


@pytest.mark.slow
def test_a_blown_up_model_is_not_learning_and_never_selected(tmp_path, monkeypatch, capsys):
    import reglab.models  # noqa: F401
    from reglab.cli.terminal import print_result
    from reglab.show import html_report
    from reglab.store import RunDirectory

    x, y = load_wine(return_X_y=True)
    # every point blows up: members that trained and learned nothing are a finding, not an error
    with pytest.warns(UserWarning, match="3 configurations not learning.*What to change: decrease the learning rate"):
        result = wine_sweep(1e6, {"l2": [0.0, 1e-3, 1e-2]}).run(x, y, run_dir=tmp_path / "blown")
    # the work is written all the same, and says why nothing was chosen
    written = json.loads((tmp_path / "blown" / "summary.json").read_text())
    assert written["best"] is None and "not learning" in written["nothing_selected"]
    assert "Nothing selected" in (tmp_path / "blown" / "report.html").read_text()
    assert result.best is None and result.best_1se is None and len(result.members) == 9
    blown = RunDirectory(tmp_path / "blown").all_records()
    # finite (Keras's cross-entropy clips probabilities at 1e-7: at most 16.1), so nothing flags it as diverged
    assert (blown["status"] == "ok").all() and blown["val_loss"].max() > 10 * blown["baseline_loss"].max()
    sane = wine_sweep(1e-2, {"l2": [1e-4]}).run(x, y)
    epochs = selection.combine([sane.epochs, blown])  # two sweeps' records, one table (the records are the contract)
    members = selection.member_table(epochs)
    summary = selection.summarize(members, epochs)
    by_l2 = summary.set_index("l2")
    assert by_l2.loc[[0.0, 1e-3, 1e-2], "rank"].isna().all() and not by_l2.loc[[0.0, 1e-3, 1e-2], "learning"].any()
    with pytest.warns(RuntimeWarning, match="3 configurations not learning"):
        best = selection.best(summary)
    assert best["params"] == {"l2": 1e-4} and selection.best_1se(summary)["params"] == {"l2": 1e-4}

    verdicts = diagnosis.diagnose(epochs).merge(summary[["point", "l2"]], on="point").set_index("l2")
    priors = np.bincount(y) / len(y)
    assert by_l2.loc[0.0, "baseline_loss_mean"] == pytest.approx(-np.sum(priors * np.log(priors)), rel=0.02)  # ≈ 1.09
    for l2 in (0.0, 1e-3, 1e-2):
        v = verdicts.loc[l2]
        assert v["verdict"] == "not learning" and v["recommendation"] == "decrease the learning rate", v["reason"]
        assert v["reason"].startswith(
            f"validation loss {by_l2.loc[l2, 'val_loss_mean']:.3g} is worse than the constant "
            f"predictor's {by_l2.loc[l2, 'baseline_loss_mean']:.3g} (class priors); "
        ), v["reason"]
    assert verdicts.loc[1e-4, "verdict"] != "not learning"

    document = selection.document(
        summary, best, None, len(members), selection.best_1se(summary), diagnosis.diagnose(epochs)
    )
    page = html_report.render(epochs, summary, members, None, document, {}, "wine")
    bad_rows = re.findall(r'<tr class="bad">(.*?)</tr>', page)
    assert len(bad_rows) == 3 and all("<td>not learning</td>" in row for row in bad_rows)
    assert "<b>Not learning</b> (3 of 4 configurations)" in page
    monkeypatch.setenv("COLUMNS", "300")
    print_result(
        summary, best, None, len(members), None, "wine", document["best_1se"], pd.DataFrame(document["diagnosis"])
    )
    printed = [line for line in capsys.readouterr().out.splitlines() if "3/3" in line]  # the rows: members ok
    assert sum("not learning" in line for line in printed) == 3 and len(printed) == 4


def test_the_one_se_rule_skips_a_point_that_is_not_learning_unless_selecting_by_accuracy():
    rows = []
    for point, l2, losses in (
        ("a", 0.0, [0.85, 1.02, 1.19]),
        ("b", 0.01, [1.00, 1.05, 1.10]),
        ("c", 0.1, [1.09, 1.10, 1.11]),
    ):
        for fold, loss in enumerate(
            losses
        ):  # c: within one SE of a (1.02 + 0.098) but no better than the priors (1.09)
            rows.append(
                {
                    "member": f"{point}{fold}",
                    "point": point,
                    "fold": fold,
                    "repeat": 0,
                    "seed": 0,
                    "l2": l2,
                    "seconds": 1.0,
                    "epoch": 1,
                    "train_loss": loss,
                    "train_penalty": 0.0,
                    "train_total": loss,
                    "val_loss": loss,
                    "val_accuracy": 0.9 if point == "c" else 0.5,
                    "status": "ok",
                    "baseline_loss": 1.09,
                    "baseline_predictor": "class priors",
                }
            )
    epochs = pd.DataFrame(rows)
    summary = selection.summarize(selection.member_table(epochs), epochs)
    assert list(summary["learning"]) == [True, True, False]
    assert selection.best(summary, warn=False)["point_id"] == "a" and selection.best_1se(summary)["point_id"] == "b"
    by_accuracy = selection.summarize(selection.member_table(epochs), epochs, by="val_accuracy", mode="max")
    assert (
        selection.best(by_accuracy, "val_accuracy", warn=False)["point_id"] == "c"
    )  # ranked: the verdict warns instead
    assert diagnosis.diagnose(epochs).set_index("point").loc["c", "verdict"] == "not learning"


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


# --- one colour per point, in every figure ----------------------------------------------------------


def png_figures(monkeypatch, draw):
    """{file stem: matplotlib figure} of what `draw()` would save (kept open to be inspected)."""
    from pathlib import Path

    from reglab.show import plots

    figures = {}

    def keep(fig, path):
        figures[Path(path).stem] = fig
        return Path(path)

    monkeypatch.setattr(plots, "_save", keep)
    draw()
    return figures


def png_colours(fig) -> list[tuple[str, str]]:
    """(point id, colour) of every artist drawn for a point (the plots give them the point id as gid)."""
    from matplotlib.colors import to_hex

    found = []
    for ax in fig.axes:
        for artist in [*ax.lines, *ax.collections, *ax.patches]:
            if artist.get_gid() is None:
                continue
            if hasattr(artist, "get_color") and not hasattr(artist, "get_facecolor"):
                colour = artist.get_color()  # a line or a marker
            elif artist.__class__.__name__ == "StepPatch":
                colour = artist.get_edgecolor()  # a histogram's outline
            else:
                colour = artist.get_facecolor()[0] if artist.get_facecolor().ndim == 2 else artist.get_facecolor()
            found.append((artist.get_gid(), to_hex(colour, keep_alpha=False)))
    return found


def html_figures(page: str) -> list[dict]:
    """The plotly figures of a report.html, as the JSON the page gives Plotly."""
    return [json.loads(text) for text in re.findall(r"var f\d+ = (.*?); Plotly\.newPlot\(", page, re.S)]


def html_colours(figure: dict) -> list[tuple[str, str]]:
    """(point id, colour) of every trace (`meta`), marker (`customdata`) and line shape (`name`) drawn for a point."""
    found = []
    for trace in figure["data"]:
        if "meta" in trace:
            found.append((trace["meta"], (trace.get("line") or {}).get("color") or trace["marker"]["color"]))
        if "customdata" in trace:
            found += list(zip(trace["customdata"], trace["marker"]["color"]))
    found += [
        (shape["name"], shape["line"]["color"]) for shape in figure["layout"].get("shapes", []) if "name" in shape
    ]
    return found


def test_every_point_has_one_colour_in_every_figure_png_and_html(digits_run, monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    from reglab.show import plots

    result, run_dir = digits_run
    colours = views.point_colors(result.summary, selection.param_columns_of(result.summary))
    assert colours == views.point_colors(result.epochs, selection.param_columns(result.epochs))  # from either table
    in_order = list(result.summary.sort_values("l2")["point"])
    assert list(colours) == in_order and len(set(colours.values())) == len(colours)

    figures = png_figures(
        monkeypatch,
        lambda: plots.render_all(
            result.epochs,
            result.summary,
            tmp_path,
            result.best["point_id"],
            result.best_1se["point_id"],
            result.histograms,
        ),
    )
    shown = {
        "learning_curves": set(in_order),
        "penalty_share": set(in_order),
        "validation_curve_l2": set(in_order),
        "regularization_paths": set(in_order),
        "weight_histograms": {in_order[0], result.best["point_id"], in_order[-1]},
    }
    assert set(figures) == set(shown)
    for name, fig in figures.items():
        drawn = png_colours(fig)
        assert {point for point, _ in drawn} == shown[name], name  # every point it shows is coloured …
        assert all(colour == colours[point] for point, colour in drawn), (name, drawn)  # … in its one colour
        plt.close(fig)

    page = (run_dir / "report.html").read_text()
    figures = html_figures(page)
    assert len(figures) == 6
    for figure, points in zip(
        figures, [set(in_order), set(in_order), set(in_order), shown["weight_histograms"], set(in_order), set(in_order)]
    ):  # validation, learning, paths, weight sizes, feature selection (an MLP reads the pixels), penalty share
        drawn = html_colours(figure)
        assert {point for point, _ in drawn} == points
        assert all(colour == colours[point] for point, colour in drawn), drawn


def test_the_weight_sizes_legend_shows_the_chosen_weakest_point_once(digits_run, monkeypatch):
    from reglab.show import html_report, plots

    result, run_dir = digits_run
    weakest, strongest = list(result.summary.sort_values("l2")["point"])[::4]  # l2 = 0 and l2 = 1
    assert views.histogram_traces(result.summary, "l2", weakest) == [
        (weakest, ["weakest", "chosen"]),
        (strongest, ["strongest"]),
    ]
    figures = png_figures(
        monkeypatch,
        lambda: plots.weight_histograms(
            result.histograms, result.epochs, result.summary, "l2", "weights.png", best_point=weakest
        ),
    )
    legend = [text.get_text() for text in figures["weights"].axes[0].get_legend().get_texts()]
    assert [entry.split(" (")[0] for entry in legend] == ["l2=0", "l2=1"]
    assert legend[0].startswith("l2=0 (weakest, chosen; exact zeros ") and legend[1].startswith("l2=1 (strongest; ")

    document = json.loads((run_dir / "summary.json").read_text())
    document["best"] = {"point_id": weakest, "params": {"l2": 0.0}, "score": {}}  # as if λ = 0 had won
    page = html_report.render(result.epochs, result.summary, result.members, result.histograms, document, {}, "digits")
    weights = html_figures(page)[3]
    assert [trace["meta"] for trace in weights["data"]] == [weakest, strongest]
    assert weights["data"][0]["name"].startswith("l2=0 (weakest, chosen; ")


# --- the HTML report, in a real browser --------------------------------------------------------------


def browser():
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("REGLAB_SKIP_BROWSER") == "1":
            pytest.skip("REGLAB_SKIP_BROWSER=1 and no Chromium")
        pytest.fail(
            "The report test needs Chromium (python3 tasks.py test installs Debian's chromium package; "
            "or apt-get install chromium). Set REGLAB_SKIP_BROWSER=1 to skip it."
        )
    return found


def load_in_chromium(page):
    """(DOM after the scripts ran, console messages) of a headless Chromium load of `page`."""
    run = subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=20000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.slow
def test_report_renders_offline_without_console_errors_and_hostile_names_do_nothing(tmp_path):
    run_dir = tmp_path / '"><img src=x onerror="document.title=\'pwned\'">'
    reglab.Sweep(mlp(16), grid={"tag": [HOSTILE], "l2": [0.0, 1e-2, 1e-1]}, cv=2, epochs=3, test_size=0.2, seed=0).run(
        X[:600], Y[:600], run_dir=run_dir
    )
    page = run_dir / "report.html"
    text = page.read_text()
    assert "<script src" not in text and "http://" not in text.split("<script", 1)[0]  # self-contained
    dom, console = load_in_chromium(page)
    assert console == []  # no errors, no warnings, no blocked (injected) script
    figures = len(re.findall(r'<div id="fig\d+" class="figure', text))
    assert (
        figures == 6 and dom.count('class="plot-container plotly"') == figures
    )  # every plot rendered (feature selection too)
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title == f"{html.escape(run_dir.name, quote=False)} — reglab report"  # no script ever set it
    assert "&lt;/script&gt;&lt;script&gt;document.title=" in dom  # the hostile value is shown, as text
    assert '<img src="x"' not in dom and "<img src=x" not in dom


# --- TensorBoard -----------------------------------------------------------------------------------


def test_tensorboard_hparams_export_reads_back(digits_run, tmp_path):
    """Read back with TensorBoard's own loader; written and read without TensorFlow (a JAX user's install)."""
    import subprocess
    import sys

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    result, run_dir = digits_run
    logdir = tmp_path / "tb"
    exporting = (  # in a process where TensorFlow cannot be imported, as where it is not installed
        "import sys; sys.modules['tensorflow'] = None; import reglab; "
        f"from reglab.show.tensorboard_export import export; export({str(run_dir)!r}, {str(logdir)!r})"
    )
    done = subprocess.run([sys.executable, "-c", exporting], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found, finals = {}, {}
    for path in glob.glob(str(logdir / "**" / "events.*"), recursive=True):
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        found[data.session_start_info.group_name] = data.session_start_info.hparams["l2"].number_value
                    elif data.HasField("experiment"):
                        assert [h.name for h in data.experiment.hparam_infos] == ["l2"]
                elif value.tag == "val_loss_mean":
                    finals[os.path.basename(os.path.dirname(path))] = float(tensor_util.make_ndarray(value.tensor))
    summary = result.summary.set_index("point")
    assert found == {p: pytest.approx(summary.loc[p, "l2"]) for p in summary.index}
    assert finals == {p: pytest.approx(summary.loc[p, "val_loss_mean"], rel=1e-6) for p in summary.index}
