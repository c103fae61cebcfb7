"""The `reglab` commands: demo, sweep, report, bench — thin, over `reglab.cli.app` (exit codes, refusals) and
`reglab.cli.terminal` (what the terminal shows)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from reglab.cli.app import (
    EXIT_FAILED,
    app,
    check_output_dir,
    fail,
    fail_os,
    fail_usage,
    import_keras_quietly,
    printable,
)
from reglab.cli.terminal import Log, Progress, StopOnCtrlC, finish, interrupted, print_result


@app.command()
def demo(
    epochs: int = typer.Option(
        50, min=1, max=1000, help="Epochs per member (the story needs enough for λ=0 to overfit)."
    ),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="Global random seed."),
    run_dir: Path = typer.Option(None, help="Run directory (default: runs/demo-e<epochs>-s<seed>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; results only."),
    wait: float = typer.Option(
        None,
        "--wait",
        min=0,
        metavar="SECONDS",
        help="If another process is using the run directory, wait this long for it (default: exit 2 at once).",
    ),
):
    """The tutorial's story on a small digits training set: no L2 overfits, moderate L2 is selected, strong L2 underfits.

    Curves of λ = 0, 1e-3, 0.1; one line per λ with its verdict; a λ grid with 5-fold CV; the choice refit, tested once.
    """
    import_keras_quietly()
    from rich.console import Console
    from rich.table import Table

    from reglab.cli.demo import SHOWN, run_demo, story

    run_dir = run_dir or Path("runs") / f"demo-e{epochs}-s{seed}"
    from reglab.engine.checkpoints import Interrupted

    try:
        check_output_dir(run_dir, "run_dir")
        with Progress(quiet, "demo") as progress, StopOnCtrlC() as stop, Log(run_dir):
            result = run_demo(
                epochs=epochs, seed=seed, run_dir=run_dir, progress=progress, wait_for_lock=wait, stop=stop
            )
    except ValueError as error:
        fail_usage(error)
    except Interrupted as stopped:
        interrupted(stopped, run_dir)
    except OSError as error:  # the run directory could not be written while the work went on
        fail_os(error, "run_dir", run_dir, EXIT_FAILED)
    console = Console()
    curves = Table(title="No / moderate / strong L2: prediction loss (no penalty), train / validation, mean of 5 folds")
    curves.add_column("epoch", justify="right")
    for strength in SHOWN:
        curves.add_column(f"L2 λ={strength:g}", justify="right")
    ok = result.epochs[result.epochs["status"] == "ok"]
    means = ok.groupby(["l2", "epoch"])[["train_loss", "val_loss"]].mean()
    step = 5 if epochs <= 30 else 10
    for epoch in sorted({1, *range(step, epochs + 1, step), epochs}):
        cells = [f"{means.loc[(s, epoch), 'train_loss']:.3f} / {means.loc[(s, epoch), 'val_loss']:.3f}" for s in SHOWN]
        curves.add_row(str(epoch), *cells)
    console.print(curves)
    typer.echo("What each λ did (mean of 5 folds, prediction loss; verdicts by reglab.decide.diagnosis):")
    for line in story(result):
        typer.echo(f"  {line}")
    finish(result, run_dir, "λ grid, 5-fold stratified cross-validation (final epoch)")


@app.command()
def init(
    path: Path = typer.Argument(Path("sweep.toml"), help="Where to write the example config."),
    force: bool = typer.Option(False, "--force", help="Replace the file if it exists."),
):
    """Write a commented example config (the wine data, an MLP, an L2 grid, 3-fold CV) to start from."""
    from importlib.resources import files

    text = files("reglab.cli").joinpath("sweep.toml").read_text(encoding="utf-8")
    text = text.replace("reglab sweep docs/examples/sweep.toml", f"reglab sweep {path}", 1)
    try:
        if path.exists() and not path.is_file():
            raise ValueError(f"{path} is not a file. Received: path={str(path)!r}")
        if path.exists() and not force:
            raise ValueError(f"{path} exists; `reglab init {path} --force` replaces it. Received: path={str(path)!r}")
        path.write_text(text, encoding="utf-8")
    except ValueError as error:
        fail_usage(error)
    except OSError as error:
        fail_os(error, "path", path, EXIT_FAILED)
    typer.echo(f"wrote {path} — edit it, then: reglab sweep {path}")


@app.command()
def sweep(
    config: Path = typer.Argument(..., help="A sweep spec (.toml or .json); `reglab init` writes a commented one."),
    run_dir: Path = typer.Option(None, help="Run directory (default: runs/<name>). Re-running resumes it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; results only."),
    wait: float = typer.Option(
        None,
        "--wait",
        min=0,
        metavar="SECONDS",
        help="If another process is using the run directory, wait this long for it (default: exit 2 at once).",
    ),
    executor: str = typer.Option(
        None, help="Where populations train: auto, local (this process) or process (JAX worker processes)."
    ),
    workers: int = typer.Option(None, help="Worker processes with --executor process (default 1)."),
):
    """Run (or resume) the sweep a config file describes."""
    from reglab.config import build, validate_file, with_settings

    try:  # what the file alone decides is refused before Keras is imported (~5 s)
        checked = validate_file(config)
        given = {k: v for k, v in (("executor", executor), ("workers", workers)) if v is not None}
        if given:  # the command line's word over the file's [train] (where a sweep runs is not in its spec)
            checked = with_settings(checked, given)
    except ValueError as error:
        fail_usage(error)
    except OSError as error:
        fail_os(error, "config", config, EXIT_FAILED)
    import_keras_quietly()
    from reglab.decide.selection import NothingSelectable
    from reglab.engine.checkpoints import Interrupted
    from reglab.result import NothingToTrain

    try:
        experiment = build(checked)
        run_dir = run_dir or Path("runs") / experiment.name
        check_output_dir(run_dir, "run_dir")
        with Progress(quiet, experiment.name) as progress, StopOnCtrlC() as stop, Log(run_dir):
            result = experiment.sweep.run(
                experiment.x,
                experiment.y,
                run_dir=run_dir,
                task=experiment.task,
                progress=progress,
                wait_for_lock=wait,
                stop=stop,
                checkpoint_seconds=experiment.checkpoint_seconds,
            )
    except ValueError as error:
        fail_usage(error)
    except OSError as error:  # the run directory could not be written while the work went on
        fail_os(error, "run_dir" if run_dir is not None else "config", run_dir or config, EXIT_FAILED)
    except Interrupted as stopped:
        interrupted(stopped, run_dir)
    except (NothingSelectable, NothingToTrain) as failed:  # the work failed as work: nothing to choose, or to train
        fail(str(failed), EXIT_FAILED)
    finish(result, run_dir, f"Sweep {experiment.name}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by `reglab sweep` or `reglab demo`."),
    tensorboard: Path = typer.Option(
        None, help="Also export the run as a TensorBoard HParams experiment into this folder."
    ),
):
    """Re-render a run directory's tables, summary, plots and report.html from its stored records."""
    # no Keras: the report is drawn from the stored tables alone (its import was 2.5 s of the command's 5.6 s)
    import pandas as pd

    from reglab.show.report import refresh

    try:
        if tensorboard is not None:  # refused before the run directory is re-rendered
            check_output_dir(tensorboard, "tensorboard")
        with Log(run_dir):  # warnings as on `reglab sweep`: reglab's one line each, the rest to log.txt
            document = refresh(run_dir)  # a directory in use is read, not written (see reglab.show.report.refresh)
    except ValueError as error:
        fail_usage(error)
    except OSError as error:
        fail_os(error, "run_dir", run_dir, EXIT_FAILED)
    print_result(
        document["table"],
        document["best"],
        document["test"],
        document["members_complete"],
        run_dir,
        f"Report of {run_dir}",
        document["best_1se"],
        pd.DataFrame(document["diagnosis"]),
        document.get("pareto_front"),
        document.get("auto_grid"),
    )
    if document["best"] is None:
        typer.echo(f"reglab: warning: {printable(document['advice'] or document['nothing_selected'])}", err=True)
    if document.get("in_use"):
        typer.echo(f"reglab: {document['in_use']}", err=True)
    else:
        typer.echo(f"plots: {run_dir / 'plots'}\nreport: {run_dir / 'report.html'}")
    if tensorboard is not None:
        from reglab.show.tensorboard_export import export

        try:
            logdir = export(run_dir, tensorboard)
        except OSError as error:  # the report is written; the export failed
            fail_os(error, "tensorboard", tensorboard, EXIT_FAILED)
        typer.echo(f"tensorboard: {logdir}  (tensorboard --logdir {tensorboard})")
    if document["best"] is None:  # as `reglab sweep`: nothing chosen is a failed result
        raise typer.Exit(EXIT_FAILED)


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="A small version (3 λ, 4 epochs) for a smoke test."),
    out: Path = typer.Option(Path("bench.json"), help="Where to write the JSON report."),
    keras_fits: int = typer.Option(None, min=1, help="Sequential Keras fits to time (default: one per λ, fold 0)."),
    scaling: bool = typer.Option(False, "--scaling", help="Also time 8× the members (320) against the 40."),
    zoo: bool = typer.Option(
        False,
        "--zoo",
        help="Also every model family of reglab.zoo (keras-io's sizes too): the engine and Sweep.run vs a loop of model.fit.",
    ),
    scale: bool = typer.Option(
        False,
        "--scale",
        help="Also 40 → 160 → 640 members, the executors (process, ray) against local, and 200,000 rows streamed from disk.",
    ),
    search: bool = typer.Option(
        False,
        "--search",
        help="Also 64 λ candidates (and 64 of λ with a dropout rate, one zoo family): random, every epoch; random, halved; an Optuna TPE study, halved — member-epochs, wall time, the choice's distance.",
    ),
):
    """The standard benchmark: reglab vs sequential Keras vs scikit-learn vs the FLOP bound, in one run."""
    import_keras_quietly(compile_cache=False)
    from rich.console import Console
    from rich.table import Table

    from reglab.cli.bench import run

    console = Console()
    echo = lambda m: console.print(m, style="dim")  # noqa: E731
    report = run(quick=quick, keras_fits=keras_fits, scaling=scaling, out=None, echo=echo)
    if zoo:
        from reglab.cli.bench_zoo import zoo as run_zoo

        report["zoo"] = run_zoo(epochs=2 if quick else 5, sweep_epochs=2 if quick else None, echo=echo)
    if scale:
        from reglab.cli.bench_scale import big_data
        from reglab.cli.bench_scale import scale as run_scale

        report["scale"] = run_scale(repeats=(1, 2) if quick else (1, 4, 16), epochs=4 if quick else 50, echo=echo)
        report["scale"]["big_data"] = big_data(
            rows=20_000 if quick else 200_000, small=2_000 if quick else 5_000, echo=echo
        )
    if search:
        from reglab.cli.bench_search import search_bench

        report["search"] = search_bench(
            candidates=9 if quick else 64, seeds=1 if quick else 5, epochs=4 if quick else 50, echo=echo, family=True
        )
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(
        title=f"reglab bench ({'quick' if quick else 'standard'}: {report['members']} members × {report['epochs']} epochs, {report['machine']['device']})"
    )
    table.add_column("way")
    table.add_column("seconds", justify="right")
    table.add_column("reglab is … faster", justify="right")
    table.add_row(f"reglab ({report['engine']} engine, {report['backend']})", f"{report['reglab_seconds']:.2f}", "")
    table.add_row("  of which compile", f"{report['compile_seconds']:.2f}", "")
    for backend, seq in report["sequential_keras"].items():
        table.add_row(
            f"sequential Keras on {backend} ({report['sequential_keras_fits_timed']} fits × {report['members']})",
            f"{seq['seconds']:.1f}",
            f"{seq['reglab_speedup']:.1f}×",
        )
    table.add_row(
        "scikit-learn GridSearchCV", f"{report['sklearn_seconds']:.1f}", f"{report['speedup_vs_sklearn']:.1f}×"
    )
    table.add_row(
        f"FLOP bound ({report['gflop']:.0f} GFLOP at {report['matmul_gflops']:.0f} GFLOP/s)",
        f"{report['flop_bound_seconds']:.2f}",
        f"reglab / bound = {report['ratio_to_flop_bound']:.2f}",
    )
    console.print(table)
    from reglab.cli.bench_warm import table as warm_table

    console.print(warm_table(report["warm_start"], report["flop_bound_seconds"]))
    accuracy = Table(title="Mean validation accuracy per λ")
    for name in ("λ", "reglab (5 folds)", "reglab (fold 0)", "sequential Keras (fold 0)"):
        accuracy.add_column(name, justify="right")
    acc = report["accuracy_by_lambda"]
    for key in acc["reglab"]:
        keras_value = acc["keras"].get(key)
        accuracy.add_row(
            key,
            f"{acc['reglab'][key]:.4f}",
            f"{acc['reglab_fold0'][key]:.4f}",
            "–" if keras_value is None else f"{keras_value:.4f}",
        )
    console.print(accuracy)
    extra = f"; 8× members cost {report['scaling_8x_members_time_ratio']:.2f}× the time" if scaling else ""
    if zoo:
        engine = Table(title="Model families (reglab.zoo), the engine alone: a population vs sequential model.fit")
        for name in (
            "family",
            "population s",
            "compile s",
            "fit s × members",
            "speedup",
            "val acc gap",
            "convolutions",
        ):
            engine.add_column(name, justify="right")
        users = Table(
            title="The same families as users run them: Sweep.run with its defaults (a first run, and the next: warm) "
            "vs a loop of model.fit"
        )
        for name in ("family", "Sweep.run s", "next run s", "loop of fit s", "one fit s", "refit s", "speedup", "next"):
            users.add_column(name, justify="right")
        for name, row in report["zoo"].items():
            if not isinstance(row, dict):
                continue
            if "speedup" not in row:
                engine.add_row(name, "failed", "", "", "", row.get("error", "")[:40], "")
                continue
            engine.add_row(
                name,
                f"{row['population_seconds']:.2f}",
                f"{row['compile_seconds']:.2f}",
                f"{row['sequential_seconds_per_fit']:.2f}",
                f"{row['speedup']:.1f}×",
                f"{row['max_val_accuracy_gap_vs_fit']:.3f}",
                ", ".join(row["convolutions"]) or "–",
            )
            user = row["sweep"]
            if "speedup" in user:
                users.add_row(
                    name,
                    f"{user['seconds']:.1f}",
                    f"{user['warm_seconds']:.1f}",
                    f"{user['loop_of_fit_seconds']:.1f}",
                    f"{user['fit_seconds']:.2f}",
                    f"{user['refit_seconds']:.2f}",
                    f"{user['speedup']:.1f}×",
                    f"{user['warm_speedup']:.1f}×",
                )
            else:
                users.add_row(name, "failed", "", "", "", "", user.get("error", "")[:40], "")
        console.print(engine)
        console.print(users)
        z = report["zoo"]
        times = lambda v: "–" if v is None else f"{v:.1f}×"  # noqa: E731
        console.print(
            f"engine: geometric mean speedup {times(z['geometric_mean_speedup'])}, lowest "
            f"{times(z['min_speedup'])}; Sweep.run as users run it: {times(z['sweep_geometric_mean_speedup'])}, "
            f"lowest {times(z['sweep_min_speedup'])}; its next run (warm): {times(z['warm_sweep_geometric_mean_speedup'])}, "
            f"lowest {times(z['warm_sweep_min_speedup'])}"
        )
    if scale:
        from reglab.cli.bench_scale import table as scale_tables

        console.print(*scale_tables(report["scale"]))
    if search:
        from reglab.cli.bench_search import table as search_table

        for found, what in ((report["search"], "λ"), (report["search"]["family"], "(λ, dropout) of mlp-dropout")):
            rows = Table(
                title=f"Search: {found['candidates']} random {what}, each 5 folds × {found['epochs']} epochs "
                f"(medians over {found['seeds']} seed{'s' if found['seeds'] != 1 else ''})"
            )
            for name in ("method", "member-epochs", "wall time", "choice from the best (SE)"):
                rows.add_column(name, justify="right")
            for row in search_table(found):
                rows.add_row(*row)
            console.print(rows)
    console.print(f"peak RSS {report['peak_rss_mb']:.0f} MB{extra}; JSON: {out}")


def main():
    # Sweeps train as populations on Keras's JAX backend; with KERAS_BACKEND=tensorflow this process uses
    # TensorFlow and its populations train in a JAX worker process.
    os.environ.setdefault("KERAS_BACKEND", "jax")
    app()  # typer exits 2 on usage errors, 0 on success, 1 on an uncaught error
