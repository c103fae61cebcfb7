"""The `reglab` application: exit codes (here and nowhere else), the one-line refusals, usage errors in
our words, the checks every command makes of its output directories, and Keras imported quietly on the
backend `main` chose. Commands are in `reglab.cli.commands`, the terminal in `reglab.cli.terminal`."""

from __future__ import annotations

import os
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
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def printable(text: str) -> str:
    """`text` with control characters (escape sequences, carriage returns, new lines) escaped: a
    message quoting a config, data or model file shows as one clean line (see `reglab.validation`)."""
    from reglab import validation

    return validation.printable(text)


def fail(message: str, code: int = EXIT_USAGE):
    """The one line every refusal prints (stderr), then exit `code`."""
    typer.echo(f"reglab: error: {printable(str(message))}", err=True)
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
        fail(f"{error.format_message().rstrip('.')} (see {command} --help). Received: {self._received(error)}")

    def _received(self, error) -> str:
        argv, param = self._argv, getattr(error, "param", None)
        if param is not None and getattr(param, "opts", None) and param.param_type_name == "option":
            for i, token in enumerate(argv):
                for opt in param.opts:
                    if token == opt and i + 1 < len(argv):
                        return f"{opt}={argv[i + 1]!r}"
                    if token.startswith(f"{opt}="):
                        return f"{opt}={token[len(opt) + 1 :]!r}"
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


def import_keras_quietly(compile_cache: bool = True):
    """Keras on the backend `main` chose. On TensorFlow, hide TensorFlow's C++ start-up chatter (it ignores
    TF_CPP_MIN_LOG_LEVEL); on JAX (where importing reglab keeps TensorFlow out: `reglab._lazy_tensorflow`),
    keep XLA's compiled programs on disk (JAX's persistent compilation cache), so a re-run or a resumed
    sweep does not compile its populations again (not for `bench`, which measures compilation). Then the
    libraries' objects leave the garbage collector's walks (`reglab.heap`: 13 % of `reglab demo`'s CPU)."""
    from reglab import heap

    if os.environ.get("KERAS_BACKEND") != "tensorflow":
        _import_on_jax(compile_cache)
    else:
        _import_on_tensorflow()
    heap.settle()


def _import_on_jax(compile_cache: bool) -> None:
    import keras  # noqa: F401  (TensorFlow stays out: see reglab._lazy_tensorflow)

    from reglab.engine import compile_cache as cache

    if compile_cache:  # from the start: the first Keras build's small programs too (~1.1 s -> ~0.5 s warm)
        cache.use()
    else:
        cache.off()


def _import_on_tensorflow() -> None:
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


def fail_usage(error: Exception):
    fail(str(error), EXIT_USAGE)


def check_output_dir(path: Path, argument: str) -> None:
    """Refuse, before any work, a directory reglab would write that cannot be one: an existing file, a
    dangling symbolic link, or one that cannot be created or written (its nearest existing parent is a
    file or not writable). ValueError naming `argument`."""
    received = f"Received: {argument}={str(path)!r}"
    try:
        if path.is_symlink() and not path.exists():
            raise ValueError(
                f"{path} is a symbolic link to {os.readlink(path)}, which does not exist: remove the link "
                f"or choose another --{argument.replace('_', '-')}. {received}"
            )
        if path.exists() and not path.is_dir():
            raise ValueError(
                f"{path} is a file, not a directory: choose another --{argument.replace('_', '-')}. {received}"
            )
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


def fail_os(error: OSError, argument: str, value, code: int):
    """An operating-system error (disk full, permission denied, ...) as one line naming the file."""
    where = f": {error.filename}" if getattr(error, "filename", None) else ""
    fail(f"{error.strerror or error}{where}. Received: {argument}={str(value)!r}", code)
