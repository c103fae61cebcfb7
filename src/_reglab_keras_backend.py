"""reglab's startup hook (`reglab-keras-backend.pth` runs `choose()` as Python starts, in environments with reglab).

Keras's default backend is TensorFlow, and reglab does not need TensorFlow (`pip install reglab` leaves it out;
`reglab[tensorflow]` adds it). Without it, a user's `import keras` written before `import reglab` would fail
deep inside Keras (`ModuleNotFoundError: No module named 'tensorflow'`, measured with keras 3.15). So where
TensorFlow is not installed and nothing chose a backend — no `KERAS_BACKEND`, and Keras's `keras.json` names
none or the TensorFlow it cannot load — the backend is JAX, which reglab installs. Anything the user chose is
left alone, and with TensorFlow installed this does nothing but one lookup (`importlib.util.find_spec`, ~0.1 ms).

>>> choose({"KERAS_BACKEND": "torch"}, tensorflow=False, configured=None)
>>> choose({}, tensorflow=True, configured=None)
>>> choose({}, tensorflow=False, configured="tensorflow")
'jax'
>>> choose({}, tensorflow=False, configured="torch")
"""

from __future__ import annotations

import os


def choose(environ=os.environ, tensorflow=None, configured=None):
    """Set (and return) KERAS_BACKEND=jax where Keras's own default could not load; else None."""
    if "KERAS_BACKEND" in environ:
        return None
    if tensorflow is None:
        import importlib.util

        try:
            tensorflow = importlib.util.find_spec("tensorflow") is not None
        except (ImportError, ValueError):  # a broken or blocked TensorFlow is no backend either
            tensorflow = False
        configured = _configured() if not tensorflow else None
    if tensorflow or configured not in (None, "tensorflow"):
        return None
    environ["KERAS_BACKEND"] = "jax"
    return "jax"


def _configured():
    """The backend Keras's config file names (`$KERAS_HOME/keras.json`, else `~/.keras/keras.json`), or None."""
    import json

    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as file:
            return json.load(file).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
