"""The `reglab` command line. Exit codes live here and nowhere else."""

from __future__ import annotations

import os
import sys

import typer

EXIT_OK = 0
EXIT_FAILED = 1  # some work failed
EXIT_USAGE = 2  # bad input: nothing was run

app = typer.Typer(
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


@app.command()
def demo(
    epochs: int = typer.Option(30, min=1, max=1000, help="Epochs per model."),
    seed: int = typer.Option(0, help="Global random seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final table."),
):
    """No, moderate and strong L2 on real data (scikit-learn's digits), with the loss ledger."""
    _import_tensorflow_quietly()
    from reglab.demo import run_demo

    _usage_errors(run_demo)(epochs=epochs, seed=seed, quiet=quiet)


def _import_tensorflow_quietly():
    """TensorFlow's C++ start-up chatter ignores TF_CPP_MIN_LOG_LEVEL; hide it from CLI users."""
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


def _usage_errors(function):
    """Run a command; a ValueError (bad input, found before any work) becomes one line and exit 2."""

    def run(**kwargs):
        try:
            return function(**kwargs)
        except ValueError as error:
            typer.echo(f"reglab: error: {error}", err=True)
            raise typer.Exit(EXIT_USAGE) from None

    return run


def main():
    app()  # typer exits 2 on usage errors, 0 on success, 1 on an uncaught error
