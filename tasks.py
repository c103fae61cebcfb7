"""Set up and run reglab with nothing but Python 3.11 and the package registries.

    python3 tasks.py demo    # create .venv, install reglab, run `reglab demo`
    python3 tasks.py test    # create .venv, install reglab[test] (and Chromium for the report test), lint (ruff), run
                             # the tests on Keras's JAX backend and, beside them, the Keras-level kit's on TensorFlow

Extra arguments are passed on (`python3 tasks.py test -k ledger`, `python3 tasks.py demo --epochs 5`).
The virtual environment is reused; it is reinstalled when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
HOOK = "reglab-keras-backend.pth"


def _run(*cmd: str | os.PathLike) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def ensure_env(extra: str) -> None:
    """Create .venv and install the package (editable) unless it is already current."""
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()
    stamp = VENV / ".reglab-installed"
    if stamp.exists() and stamp.read_text() == fingerprint:
        return
    target = f".[{extra}]" if extra else "."
    if _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", target) != 0:
        sys.exit("tasks.py: installing reglab failed (see pip's output above)")
    # An editable install leaves out what the wheel carries at its root besides modules: the startup hook that
    # picks Keras's JAX backend where TensorFlow is not installed (src/_reglab_keras_backend.py). Put it where
    # `pip install reglab` puts it, so that .venv is what a user's environment is.
    purelib = subprocess.check_output([BIN / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    shutil.copy(ROOT / "src" / HOOK, Path(purelib.decode().strip()) / HOOK)
    stamp.write_text(fingerprint)


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def ensure_browser() -> None:
    """The report test loads report.html in headless Chromium: install Debian's package if it is missing."""
    if any(shutil.which(name) for name in BROWSERS) or os.environ.get("REGLAB_SKIP_BROWSER") == "1":
        return
    if not shutil.which("apt-get"):
        print("tasks.py: no Chromium and no apt-get; the report test will say how to get one", file=sys.stderr)
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    install = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    print("+", " ".join(install), flush=True)
    if subprocess.call(install, **quiet) != 0:  # a stale package index: refresh it once
        subprocess.call([*sudo, "apt-get", "update"], **quiet)
        subprocess.call(install, **quiet)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__)
        return 2
    task, rest = argv[0], argv[1:]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if task == "demo":
        ensure_env("")
        return _run(BIN / "reglab", "demo", *rest)
    ensure_env("test")
    ensure_browser()
    if rest:  # the user's own selection, on the backend their environment names (KERAS_BACKEND)
        return _pytest(rest)
    if _lint():
        return 1
    # Twice: the whole suite on JAX (reglab's backend), and on TensorFlow what runs there too (tests marked
    # both_backends: the Keras-level kit; tf_only). Each pass starts its own processes, because Keras chooses its
    # backend once per process. Side by side: the JAX pass on two xdist workers (`worksteal`: a worker that runs
    # out of tests takes some of the other's queue), the TensorFlow pass on one more beside them, its output
    # shown when it ends, to fill the cores the JAX pass leaves idle (worker starts, collection, its tail). Measured
    # on 2 cores: 7:14 for both instead of 7:11 + 0:55 once; 8:05 against 7:12 + ~0:55 on a later tree (the CPU
    # work bounds it either way).
    with tempfile.TemporaryFile("w+") as tf_output:
        tf_pass = _pytest(  # in one process (no xdist controller beside it: ~5 s of CPU less)
            ["-p", "no:xdist"], wait=False, stdout=tf_output, stderr=subprocess.STDOUT, KERAS_BACKEND="tensorflow"
        )
        code = _pytest(["-n", "2", "--dist", "worksteal"], KERAS_BACKEND="jax")
        tf_code = tf_pass.wait()
        tf_output.seek(0)
        print("+ (the TensorFlow pass, run beside the JAX pass)", flush=True)
        sys.stdout.write(tf_output.read())
        _says_no_tests(tf_code, "tensorflow")
    return code or tf_code


def _lint() -> int:
    """ruff's linter and formatter (settings in pyproject.toml), in well under a second: style is checked, not argued."""
    paths = ["src", "tests", "tasks.py"]
    code = _run(BIN / "ruff", "check", *paths) or _run(BIN / "ruff", "format", "--check", *paths)
    if code:
        print("tasks.py: ruff found the above; `ruff check --fix` and `ruff format` fix most of it", file=sys.stderr)
    return code


def _pytest(args: list[str], wait: bool = True, stdout=None, stderr=None, **env: str):
    """pytest on the backend `env` names: its exit code, or with `wait=False` the running process."""
    command = [str(BIN / "python"), "-m", "pytest", *args]
    print("+", " ".join(command), f"({' '.join(f'{k}={v}' for k, v in env.items())})", flush=True)
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=stdout, stderr=stderr)
    if not wait:
        return process
    code = process.wait()
    _says_no_tests(code, env)
    return code


def _says_no_tests(code: int, env) -> None:
    if code == 5:  # pytest's "no tests collected" must never pass as green
        print(f"tasks.py: pytest collected no tests ({env or 'as given'})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
