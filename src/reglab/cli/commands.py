"""The `reglab` command line. Exit codes live here and nowhere else."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x carries its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as _click_errors

EXIT_OK = 0
EXIT_FAILED = 1  # some work failed (members that raised)
EXIT_USAGE = 2  # bad input: nothing was run


def _printable(text: str) -> str:
    """`text` with control characters (escape sequences, carriage returns, new lines) escaped: a
    message quoting a config, data or model file shows as one clean line (see `reglab._checks`)."""
    from reglab._checks import printable

    return printable(text)


def _fail(message: str, code: int = EXIT_USAGE):
    """The one line every refusal prints (stderr), then exit `code`."""
    typer.echo(f"reglab: error: {_printable(str(message))}", err=True)
    raise typer.Exit(code)


class _OneLineUsageErrors(TyperGroup):
    """Command-line usage errors (a bad option value, an unknown option or command, a missing argument)
    as the one line every refusal prints, naming the option and what was typed."""

    _argv: list = []

    def make_context(self, info_name, args, parent=None, **extra):
        self._argv = list(args)
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _click_errors.UsageError as error:
            self._refuse(error)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _click_errors.UsageError as error:
            self._refuse(error)

    def _refuse(self, error):
        if type(error).__name__ == "NoArgsIsHelpError":  # plain `reglab`: the help, as before
            raise error
        command = " ".join(["reglab", *(error.ctx.command_path.split()[1:] if error.ctx is not None else [])])
        _fail(f"{error.format_message().rstrip('.')} (see {command} --help). Received: {self._received(error)}")

    def _received(self, error) -> str:
        argv, param = self._argv, getattr(error, "param", None)
        if param is not None and getattr(param, "opts", None) and param.param_type_name == "option":
            for i, token in enumerate(argv):
                for opt in param.opts:
                    if token == opt and i + 1 < len(argv):
                        return f"{opt}={argv[i + 1]!r}"
                    if token.startswith(f"{opt}="):
                        return f"{opt}={token[len(opt) + 1:]!r}"
            return f"{param.opts[0]}=None"
        if param is not None:
            return f"{param.name}=None"
        option = getattr(error, "option_name", None)
        if option:
            return f"option={option!r}"
        words = [token for token in argv if not token.startswith("-")]
        if "No such command" in error.format_message() and words:
            return f"command={words[0]!r}"
        return f"args={argv!r}"


app = typer.Typer(
    cls=_OneLineUsageErrors,
    add_completion=False,
    no_args_is_help=True,
    help="reglab: regularization for Keras models — attach penalties, see what they do, choose λ honestly.",
)


def _version(value: bool):
    if value:
        from reglab import __version__

        typer.echo(f"reglab {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    pass


def _import_keras_quietly(compile_cache: bool = True):
    """Keras on the backend `main` chose. On TensorFlow, hide TensorFlow's C++ start-up chatter (it ignores
    TF_CPP_MIN_LOG_LEVEL); on JAX (where importing reglab keeps TensorFlow out: `reglab._lazy_tensorflow`),
    keep XLA's compiled programs on disk (JAX's persistent compilation cache), so a re-run or a resumed
    sweep does not compile its populations again (not for `bench`, which measures compilation)."""
    if os.environ.get("KERAS_BACKEND") != "tensorflow":
        import jax
        import keras  # noqa: F401  (TensorFlow stays out: see reglab._lazy_tensorflow)

        if compile_cache:
            folder = Path(os.environ.get("REGLAB_CACHE") or Path.home() / ".cache" / "reglab") / "xla"
            jax.config.update("jax_compilation_cache_dir", str(folder))
            # ≥ 0.05 s: also the ~7 small programs of the first Keras build (its initializers, 0.1–0.2 s
            # each), which a warm cache turns from ~1.1 s into ~0.5 s; below that, compiling costs what reading does
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # device probing logs too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _fail_usage(error: Exception):
    _fail(str(error), EXIT_USAGE)


def _check_output_dir(path: Path, argument: str) -> None:
    """Refuse, before any work, a directory reglab would write that cannot be one: an existing file, a
    dangling symbolic link, or one that cannot be created or written (its nearest existing parent is a
    file or not writable). ValueError naming `argument`."""
    received = f"Received: {argument}={str(path)!r}"
    try:
        if path.is_symlink() and not path.exists():
            raise ValueError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist: remove the link "
                             f"or choose another --{argument.replace('_', '-')}. {received}")
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file, not a directory: choose another --{argument.replace('_', '-')}. "
                             f"{received}")
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ValueError(f"{path} cannot be created: {existing} is a file. {received}")
        if not os.access(existing, os.W_OK | os.X_OK):
            what = "is not writable" if existing == path else f"cannot be created: {existing} is not writable"
            raise ValueError(f"{path} {what}: choose another --{argument.replace('_', '-')}. {received}")
    except OSError as error:  # a name too long, a loop of links, ...
        raise ValueError(f"{path} cannot be used ({error.strerror or error}). {received}") from None


def _fail_os(error: OSError, argument: str, value, code: int):
    """An operating-system error (disk full, permission denied, ...) as one line naming the file."""
    where = f": {error.filename}" if getattr(error, "filename", None) else ""
    _fail(f"{error.strerror or error}{where}. Received: {argument}={str(value)!r}", code)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class _Log:
    """While a command works: reglab's own warnings become one `reglab: warning: …` line each on the
    terminal; every warning and library log record (matplotlib, numpy, JAX, …) goes to the run
    directory's `log.txt` instead of the screen."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.lines = Path(run_dir), []

    def __enter__(self):
        import logging
        import warnings

        self._showwarning, warnings.showwarning = warnings.showwarning, self._warning
        self._handler = logging.Handler(logging.WARNING)
        self._handler.emit = lambda record: self._note(f"{record.name}: {record.getMessage()}")
        logging.getLogger().addHandler(self._handler)  # also keeps Python's last-resort stderr handler quiet
        return self

    def _note(self, text: str) -> None:
        import datetime

        self.lines.append(f"{datetime.datetime.now().isoformat(timespec='seconds')} {_printable(text)}")

    def _warning(self, message, category, filename, lineno, file=None, line=None):
        self._note(f"{category.__name__} at {filename}:{lineno}: {message}")
        package = Path(__file__).resolve().parents[1]  # reglab, not reglab/cli
        ours = str(message).startswith("reglab:") or Path(filename).resolve().is_relative_to(package)
        if ours:  # the user should know
            typer.echo(f"reglab: warning: {_printable(str(message)).removeprefix('reglab: ')}", err=True)

    def __exit__(self, *exc):
        import logging
        import warnings

        warnings.showwarning = self._showwarning
        logging.getLogger().removeHandler(self._handler)
        if self.lines and self.run_dir.is_dir() and (self.run_dir / "spec.json").exists():
            try:
                with open(self.run_dir / "log.txt", "a", encoding="utf-8") as log:
                    log.write("\n".join(self.lines) + "\n")
            except OSError:  # a full or read-only disk: the lines were for the record only
                pass


class _StopOnCtrlC:
    """The first Ctrl-C asks the sweep to stop at the next epoch boundary (its work saved in the run
    directory); a second one stops at once, as Python does."""

    def __init__(self):
        self.asked = False

    def __call__(self) -> bool:
        return self.asked

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        typer.echo("\nreglab: stopping at the next epoch boundary (Ctrl-C again to stop at once)", err=True)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)


def _interrupted(stop, run_dir):
    typer.echo(f"reglab: interrupted ({stop}); the work so far is saved in {run_dir}: run the same command again "
               "to continue from there", err=True)
    raise typer.Exit(EXIT_INTERRUPTED)


class _Progress:
    """A rich progress bar over members (silent with --quiet)."""

    def __init__(self, quiet: bool, label: str):
        self.quiet, self.label, self.bar, self.task = quiet, label, None, None

    def __enter__(self):
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), transient=True)
            self.bar.__enter__()
        return self

    def __call__(self, done, total, member_id):
        if self.bar is None:
            return
        if self.task is None or self.bar.tasks[self.task].total != total:
            self.task = self.bar.add_task(f"{self.label}: training members", total=total)
        self.bar.update(self.task, completed=done)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _print_result(summary, best, test, members_complete, run_dir, title, best_1se=None, verdicts=None):
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from reglab.decide.selection import param_columns_of

    console = Console()
    params = param_columns_of(summary)
    metrics = [c[: -len("_mean")] for c in summary.columns if c.startswith("val_") and c.endswith("_mean")]
    table = Table(title=title)
    verdict_of = {} if verdicts is None else {r["point"]: r for r in verdicts.to_dict(orient="records")}
    for name in ("rank", *params, *[f"{m} mean±std" for m in metrics], "train_loss", "penalty", "ok"):
        table.add_column(name, justify="right")
    if verdict_of:  # "not learning" points have no rank: the verdict says why
        table.add_column("verdict")
    for _, row in summary.iterrows():
        cells = ["–" if row["rank"] != row["rank"] else f"{int(row['rank'])}"]
        cells += [f"{row[p]:g}" if isinstance(row[p], float) else str(row[p]) for p in params]
        cells += [f"{row[f'{m}_mean']:.4f}±{row[f'{m}_std']:.4f}" for m in metrics]
        cells += [f"{row['train_loss_mean']:.4f}", f"{row['train_penalty_mean']:.4f}", f"{row['ok']}/{row['members']}"]
        if verdict_of:
            cells.append(verdict_of.get(row["point"], {}).get("verdict", ""))
        table.add_row(*cells, style="bold green" if best and row["point"] == best["point_id"] else None)
    console.print(table, markup=False)

    def described(choice):
        return escape(", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in choice["params"].items()))

    def verdict(choice):
        v = verdict_of.get(choice["point_id"])
        return f" — {escape(v['verdict'])}: {escape(v['recommendation'])}" if v else ""

    if best is None:  # the reason and what to change were said once, as a warning line
        console.print("selected: [bold]nothing[/bold] (no configuration could be chosen; see the verdicts)")
    else:
        console.print(f"selected: [bold]{described(best)}[/bold] (lowest mean validation loss over folds){verdict(best)}")
    if best_1se is not None:
        console.print(f"one-standard-error rule: [bold]{described(best_1se)}[/bold] (the most regularized point "
                      f"within one standard error of the best){verdict(best_1se)}")
    if test:
        console.print("test set (used once, after selection): " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))
    if run_dir:
        console.print(f"{members_complete} members; run directory: {run_dir}")


def _finish(result, run_dir, title):
    """Print a finished sweep's result and where its report is; exit 1 if a member failed or nothing was chosen."""
    _print_result(result.summary, result.best, result.test, len(result.members), run_dir, title, result.best_1se,
                  result.diagnosis)
    typer.echo(f"report: {run_dir / 'report.html'}")
    failed = (result.members["status"] == "failed").any() or result.best is None
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@app.command()
def demo(
    epochs: int = typer.Option(50, min=1, max=1000, help="Epochs per member (the story needs enough for λ=0 to overfit)."),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="Global random seed."),
    run_dir: Path = typer.Option(None, help="Run directory (default: runs/demo-e<epochs>-s<seed>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; results only."),
    wait: float = typer.Option(None, "--wait", min=0, metavar="SECONDS",
                               help="If another process is using the run directory, wait this long for it (default: exit 2 at once)."),
):
    """The tutorial's story on a small digits training set: no L2 overfits, moderate L2 is selected, strong L2 underfits.

    Curves of λ = 0, 1e-3, 0.1; one line per λ with its verdict; a λ grid with 5-fold CV; the choice refit, tested once.
    """
    _import_keras_quietly()
    from rich.console import Console
    from rich.table import Table

    from reglab.cli.demo import SHOWN, run_demo, story

    run_dir = run_dir or Path("runs") / f"demo-e{epochs}-s{seed}"
    from reglab.engine.checkpoints import Interrupted

    try:
        _check_output_dir(run_dir, "run_dir")
        with _Progress(quiet, "demo") as progress, _StopOnCtrlC() as stop, _Log(run_dir):
            result = run_demo(epochs=epochs, seed=seed, run_dir=run_dir, progress=progress, wait_for_lock=wait, stop=stop)
    except ValueError as error:
        _fail_usage(error)
    except Interrupted as stopped:
        _interrupted(stopped, run_dir)
    except OSError as error:  # the run directory could not be written while the work went on
        _fail_os(error, "run_dir", run_dir, EXIT_FAILED)
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
    _finish(result, run_dir, "λ grid, 5-fold stratified cross-validation (final epoch)")


@app.command()
def sweep(
    config: Path = typer.Argument(..., help="A sweep spec (.toml or .json); see docs/examples/sweep.toml."),
    run_dir: Path = typer.Option(None, help="Run directory (default: runs/<name>). Re-running resumes it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; results only."),
    wait: float = typer.Option(None, "--wait", min=0, metavar="SECONDS",
                               help="If another process is using the run directory, wait this long for it (default: exit 2 at once)."),
):
    """Run (or resume) the sweep a config file describes."""
    from reglab.config import build, check_file

    try:  # what the file alone decides is refused before Keras is imported (~5 s)
        checked = check_file(config)
    except ValueError as error:
        _fail_usage(error)
    except OSError as error:
        _fail_os(error, "config", config, EXIT_FAILED)
    _import_keras_quietly()
    from reglab.engine.checkpoints import Interrupted
    from reglab.decide.selection import NothingSelectable
    from reglab.sweep import NothingToTrain

    try:
        experiment = build(checked)
        run_dir = run_dir or Path("runs") / experiment.name
        _check_output_dir(run_dir, "run_dir")
        with _Progress(quiet, experiment.name) as progress, _StopOnCtrlC() as stop, _Log(run_dir):
            result = experiment.sweep.run(experiment.x, experiment.y, run_dir=run_dir, task=experiment.task,
                                          progress=progress, wait_for_lock=wait, stop=stop,
                                          checkpoint_seconds=experiment.checkpoint_seconds)
    except ValueError as error:
        _fail_usage(error)
    except OSError as error:  # the run directory could not be written while the work went on
        _fail_os(error, "run_dir" if run_dir is not None else "config", run_dir or config, EXIT_FAILED)
    except Interrupted as stopped:
        _interrupted(stopped, run_dir)
    except (NothingSelectable, NothingToTrain) as failed:  # the work failed as work: nothing to choose, or to train
        _fail(str(failed), EXIT_FAILED)
    _finish(result, run_dir, f"Sweep {experiment.name}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by `reglab sweep` or `reglab demo`."),
    tensorboard: Path = typer.Option(None, help="Also export the run as a TensorBoard HParams experiment into this folder."),
):
    """Re-render a run directory's tables, summary, plots and report.html from its stored records."""
    _import_keras_quietly()
    import pandas as pd

    from reglab.show.report import refresh

    try:
        if tensorboard is not None:  # refused before the run directory is re-rendered
            _check_output_dir(tensorboard, "tensorboard")
        with _Log(run_dir):  # warnings as on `reglab sweep`: reglab's one line each, the rest to log.txt
            document = refresh(run_dir)  # a directory in use is read, not written (see reglab.show.report.refresh)
    except ValueError as error:
        _fail_usage(error)
    except OSError as error:
        _fail_os(error, "run_dir", run_dir, EXIT_FAILED)
    _print_result(document["table"], document["best"], document["test"], document["members_complete"], run_dir,
                  f"Report of {run_dir}", document["best_1se"], pd.DataFrame(document["diagnosis"]))
    if document["best"] is None:
        typer.echo(f"reglab: warning: {_printable(document['advice'] or document['nothing_selected'])}", err=True)
    if document.get("in_use"):
        typer.echo(f"reglab: {document['in_use']}", err=True)
    else:
        typer.echo(f"plots: {run_dir / 'plots'}\nreport: {run_dir / 'report.html'}")
    if tensorboard is not None:
        from reglab.show.tensorboard_export import export

        try:
            logdir = export(run_dir, tensorboard)
        except OSError as error:  # the report is written; the export failed
            _fail_os(error, "tensorboard", tensorboard, EXIT_FAILED)
        typer.echo(f"tensorboard: {logdir}  (tensorboard --logdir {tensorboard})")
    if document["best"] is None:  # as `reglab sweep`: nothing chosen is a failed result
        raise typer.Exit(EXIT_FAILED)


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="A small version (3 λ, 4 epochs) for a smoke test."),
    out: Path = typer.Option(Path("bench.json"), help="Where to write the JSON report."),
    keras_fits: int = typer.Option(None, min=1, help="Sequential Keras fits to time (default: one per λ, fold 0)."),
    scaling: bool = typer.Option(False, "--scaling", help="Also time 8× the members (320) against the 40."),
    zoo: bool = typer.Option(False, "--zoo", help="Also every model family of reglab.zoo (keras-io's sizes too): the engine and Sweep.run vs a loop of model.fit."),
):
    """The standard benchmark: reglab vs sequential Keras vs scikit-learn vs the FLOP bound, in one run."""
    _import_keras_quietly(compile_cache=False)
    from rich.console import Console
    from rich.table import Table

    from reglab.cli.bench import run

    console = Console()
    echo = lambda m: console.print(m, style="dim")  # noqa: E731
    report = run(quick=quick, keras_fits=keras_fits, scaling=scaling, out=None, echo=echo)
    if zoo:
        from reglab.cli.bench import zoo as run_zoo

        report["zoo"] = run_zoo(epochs=2 if quick else 5, sweep_epochs=2 if quick else None, echo=echo)
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"reglab bench ({'quick' if quick else 'standard'}: {report['members']} members × {report['epochs']} epochs, {report['machine']['device']})")
    table.add_column("way")
    table.add_column("seconds", justify="right")
    table.add_column("reglab is … faster", justify="right")
    table.add_row(f"reglab ({report['engine']} engine, {report['backend']})", f"{report['reglab_seconds']:.2f}", "")
    table.add_row("  of which compile", f"{report['compile_seconds']:.2f}", "")
    for backend, seq in report["sequential_keras"].items():
        table.add_row(f"sequential Keras on {backend} ({report['sequential_keras_fits_timed']} fits × {report['members']})",
                      f"{seq['seconds']:.1f}", f"{seq['reglab_speedup']:.1f}×")
    table.add_row("scikit-learn GridSearchCV", f"{report['sklearn_seconds']:.1f}", f"{report['speedup_vs_sklearn']:.1f}×")
    table.add_row(f"FLOP bound ({report['gflop']:.0f} GFLOP at {report['matmul_gflops']:.0f} GFLOP/s)",
                  f"{report['flop_bound_seconds']:.2f}", f"reglab / bound = {report['ratio_to_flop_bound']:.2f}")
    console.print(table)
    accuracy = Table(title="Mean validation accuracy per λ")
    for name in ("λ", "reglab (5 folds)", "reglab (fold 0)", "sequential Keras (fold 0)"):
        accuracy.add_column(name, justify="right")
    acc = report["accuracy_by_lambda"]
    for key in acc["reglab"]:
        keras_value = acc["keras"].get(key)
        accuracy.add_row(key, f"{acc['reglab'][key]:.4f}", f"{acc['reglab_fold0'][key]:.4f}",
                         "–" if keras_value is None else f"{keras_value:.4f}")
    console.print(accuracy)
    extra = f"; 8× members cost {report['scaling_8x_members_time_ratio']:.2f}× the time" if scaling else ""
    if zoo:
        engine = Table(title="Model families (reglab.zoo), the engine alone: a population vs sequential model.fit")
        for name in ("family", "population s", "compile s", "fit s × members", "speedup", "val acc gap", "convolutions"):
            engine.add_column(name, justify="right")
        users = Table(title="The same families as users run them: Sweep.run with its defaults vs a loop of model.fit")
        for name in ("family", "Sweep.run s", "loop of fit s", "one fit s", "refit s", "speedup"):
            users.add_column(name, justify="right")
        for name, row in report["zoo"].items():
            if not isinstance(row, dict):
                continue
            if "speedup" not in row:
                engine.add_row(name, "failed", "", "", "", row.get("error", "")[:40], "")
                continue
            engine.add_row(name, f"{row['population_seconds']:.2f}", f"{row['compile_seconds']:.2f}",
                           f"{row['sequential_seconds_per_fit']:.2f}", f"{row['speedup']:.1f}×",
                           f"{row['max_val_accuracy_gap_vs_fit']:.3f}", ", ".join(row["convolutions"]) or "–")
            user = row["sweep"]
            if "speedup" in user:
                users.add_row(name, f"{user['seconds']:.1f}", f"{user['loop_of_fit_seconds']:.1f}",
                              f"{user['fit_seconds']:.2f}", f"{user['refit_seconds']:.2f}", f"{user['speedup']:.1f}×")
            else:
                users.add_row(name, "failed", "", "", "", user.get("error", "")[:40])
        console.print(engine)
        console.print(users)
        z = report["zoo"]
        times = lambda v: "–" if v is None else f"{v:.1f}×"  # noqa: E731
        console.print(f"engine: geometric mean speedup {times(z['geometric_mean_speedup'])}, lowest "
                      f"{times(z['min_speedup'])}; Sweep.run as users run it: {times(z['sweep_geometric_mean_speedup'])}, "
                      f"lowest {times(z['sweep_min_speedup'])}")
    console.print(f"peak RSS {report['peak_rss_mb']:.0f} MB{extra}; JSON: {out}")


def main():
    # Sweeps train as populations on Keras's JAX backend; KERAS_BACKEND=tensorflow chooses TensorFlow and the
    # reference engine instead.
    os.environ.setdefault("KERAS_BACKEND", "jax")
    app()  # typer exits 2 on usage errors, 0 on success, 1 on an uncaught error
