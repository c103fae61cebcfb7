"""Progress over a sweep's members where the user is: `Sweep.run(x, y, progress=True)`.

In a Jupyter kernel an HTML `<progress>` bar is displayed once and updated in place (a display id: no widget
library needed, and what nbclient and every Jupyter front end render); elsewhere a rich bar on the terminal,
as `reglab sweep` draws it. Both are the `(done, total, member_id)` callable that `Sweep.run` calls after
each member (members of one population finish together).

>>> shown = Terminal("demo", quiet=True)
>>> shown(1, 2, "a"); shown(2, 2, "b")
>>> shown.done
2
"""

from __future__ import annotations

import html
import sys


def bar(label: str = "reglab sweep"):
    """The progress callable for this process: `Notebook` in a Jupyter kernel, else `Terminal`."""
    return Notebook(label) if in_notebook() else Terminal(label)


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython with a kernel attached), not a terminal IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


class Notebook:
    """An HTML progress bar in the cell's output, updated in place."""

    def __init__(self, label: str):
        self.label, self.handle, self.done = label, None, 0

    def html(self, done: int, total: int, member_id: str) -> str:
        state = "done" if done == total else f"last: {html.escape(str(member_id))}"
        return (
            f'<div class="reglab-progress"><b>{html.escape(self.label)}</b> '
            f'<progress value="{done}" max="{total}"></progress> {done} / {total} members trained ({state})</div>'
        )

    def __call__(self, done: int, total: int, member_id: str) -> None:
        from IPython.display import HTML, display

        self.done = done
        shown = HTML(self.html(done, total, member_id))
        if self.handle is None:
            self.handle = display(shown, display_id=True)
        else:
            self.handle.update(shown)


class Terminal:
    """A rich bar while members remain (on stderr, or stdout as `reglab sweep` draws it); it clears itself when the
    last one is done, or at `close`."""

    def __init__(self, label: str, quiet: bool = False, stderr: bool = True):
        self.label, self.quiet, self.stderr = label, quiet, stderr
        self.bar, self.task, self.done = None, None, 0

    def __call__(self, done: int, total: int, member_id: str) -> None:
        self.done = done
        if self.quiet:
            return
        if self.bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self.bar = Progress(*columns, console=Console(stderr=self.stderr), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(f"{self.label}: training members", total=total)
        self.bar.update(self.task, completed=done, total=total)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar, self.task = None, None
