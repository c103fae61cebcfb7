"""What `pip install reglab` installs: no TensorFlow (an extra), and the startup hook that gives a user's
`import keras` Keras's JAX backend where TensorFlow is missing (src/_reglab_keras_backend.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOOK = "reglab-keras-backend.pth"


def test_the_wheel_leaves_tensorflow_to_an_extra_and_carries_the_startup_hook(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("reglab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = Parser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist")
        hook = archive.read(HOOK).decode()
    assert {HOOK, "_reglab_keras_backend.py", "reglab/__init__.py"} <= names
    assert hook.strip() == "import _reglab_keras_backend; _reglab_keras_backend.choose()"
    tensorflow = [r for r in requires if r.startswith("tensorflow")]
    assert tensorflow and all("extra ==" in r for r in tensorflow), tensorflow  # only with [tensorflow] or [test]
    assert any(r.startswith("jax") and "extra" not in r for r in requires)


# Python's start (`site.main()`: the environment's .pth files) with TensorFlow unfindable, as where it is not
# installed; then the user's first line.
WITHOUT_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc, os, sys

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "tensorflow":
                raise ModuleNotFoundError(f"No module named {name!r}")

    sys.meta_path.insert(0, NoTensorFlow())
    import site
    site.main()
    print(os.environ.get("KERAS_BACKEND"))
    if sys.argv[1] == "import keras":
        import keras
        print(keras.backend.backend(), "tensorflow" in sys.modules)
    """
)


def _started(tmp_path, configured, line, **env):
    home = tmp_path / configured
    home.mkdir()
    (home / "keras.json").write_text(json.dumps({"backend": configured}))  # as Keras writes it on first import
    environ = {k: v for k, v in __import__("os").environ.items() if k != "KERAS_BACKEND"}
    environ.update(KERAS_HOME=str(home), **env)
    done = subprocess.run(
        [sys.executable, "-S", "-c", WITHOUT_TENSORFLOW, line], capture_output=True, text=True, env=environ, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_without_tensorflow_a_users_import_keras_first_gets_jax_and_a_choice_is_kept(tmp_path):
    assert (Path(sysconfig.get_path("purelib")) / HOOK).is_file(), (
        "the environment lacks the hook: python3 tasks.py test"
    )
    # Keras's default (and the keras.json it wrote) is TensorFlow, which cannot load here: JAX, and TF never imported
    assert _started(tmp_path, "tensorflow", "import keras") == ["jax", "jax", "False"]
    assert _started(tmp_path, "torch", "nothing") == ["None"]  # the user's configured backend: left alone
    assert _started(tmp_path, "jax", "nothing", KERAS_BACKEND="tensorflow") == ["tensorflow"]  # and their variable
