"""What a command shows on the terminal while it works and when it is done: warnings as one line each
(the rest to the run directory's log), a progress bar, Ctrl-C as a request to stop, the result table."""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from reglab.cli.app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, printable


class Log:
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

        self.lines.append(f"{datetime.datetime.now().isoformat(timespec='seconds')} {printable(text)}")

    def _warning(self, message, category, filename, lineno, file=None, line=None):
        self._note(f"{category.__name__} at {filename}:{lineno}: {message}")
        package = Path(__file__).resolve().parents[1]  # reglab, not reglab/cli
        ours = str(message).startswith("reglab:") or Path(filename).resolve().is_relative_to(package)
        if ours:  # the user should know
            typer.echo(f"reglab: warning: {printable(str(message)).removeprefix('reglab: ')}", err=True)

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


class StopOnCtrlC:
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


def interrupted(stop, run_dir):
    typer.echo(
        f"reglab: interrupted ({stop}); the work so far is saved in {run_dir}: run the same command again "
        "to continue from there",
        err=True,
    )
    raise typer.Exit(EXIT_INTERRUPTED)


class Progress:
    """The members' progress bar for the length of a command (`reglab.show.progress.Terminal`, on stdout; silent
    with --quiet); the callable is what `with` gives."""

    def __init__(self, quiet: bool, label: str):
        from reglab.show.progress import Terminal

        self.bar = Terminal(label, quiet=quiet, stderr=False)

    def __enter__(self):
        return self.bar

    def __exit__(self, *exc):
        self.bar.close()


def print_result(
    summary, best, test, members_complete, run_dir, title, best_1se=None, verdicts=None, pareto=None, ranges=None
):
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
        return escape(
            ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in choice["params"].items())
        )

    def verdict(choice):
        v = verdict_of.get(choice["point_id"])
        return f" — {escape(v['verdict'])}: {escape(v['recommendation'])}" if v else ""

    for key, computed in (ranges or {}).items():  # "auto" grid entries: the range the data gave
        values = computed["values"]
        console.print(
            f"{escape(key)} = auto: λ_max {computed['lambda_max']:.4g} (100 × λ₀ {computed['lambda_0']:.4g}, where the "
            f"penalty's gradient equals the data loss's at initialization), {len(values)} values from {values[0]:g} "
            f"down to {values[-1]:g}"
        )
    if best is None:  # the reason and what to change were said once, as a warning line
        console.print("selected: [bold]nothing[/bold] (no configuration could be chosen; see the verdicts)")
    else:
        console.print(
            f"selected: [bold]{described(best)}[/bold] (lowest mean validation loss over folds){verdict(best)}"
        )
    if best_1se is not None:
        console.print(
            f"one-standard-error rule: [bold]{described(best_1se)}[/bold] (the most regularized point "
            f"within one standard error of the best){verdict(best_1se)}"
        )
    if pareto:  # a multi-objective study's front (summary.json's `pareto_front`)
        objectives = pareto["objectives"]
        console.print(
            f"Pareto front of {', '.join(objectives)}: "
            + "; ".join(
                f"[bold]{described(p)}[/bold] (" + ", ".join(f"{o} {p[o]:.4g}" for o in objectives) + ")"
                for p in pareto["points"]
            )
        )
    if test:
        console.print("test set (used once, after selection): " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))
    if run_dir:
        console.print(f"{members_complete} members; run directory: {run_dir}")


def finish(result, run_dir, title):
    """Print a finished sweep's result and where its report is; exit 1 if a member failed or nothing was chosen."""
    from reglab.decide.pareto import listed

    front = listed(result.pareto) if result.pareto is not None else None  # as summary.json has it
    print_result(
        result.summary,
        result.best,
        result.test,
        len(result.members),
        run_dir,
        title,
        result.best_1se,
        result.diagnosis,
        front,
        result.ranges,
    )
    typer.echo(f"report: {run_dir / 'report.html'}")
    failed = (result.members["status"] == "failed").any() or result.best is None
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)
