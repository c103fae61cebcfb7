"""reglab: regularization for Keras models — attach penalties, see what they do, choose λ honestly.

The public API is imported lazily, so `reglab --help` answers without loading Keras. Importing reglab
before keras selects Keras's JAX backend (where sweeps train as populations) unless KERAS_BACKEND says
otherwise.

`import reglab` is nevertheless enough for `keras.models.load_model` to find reglab's classes
("reglab>ElasticNet", `Proximal`, ...): it registers them at once if Keras is already imported,
and otherwise the moment Keras is (see `_AfterKeras`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.1.0"

# Sweeps train as populations on Keras's JAX backend: importing reglab before keras selects it, unless
# the user chose a backend (KERAS_BACKEND=tensorflow keeps TensorFlow; its populations then train in a JAX
# worker process, `reglab.engine.executors`).
if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "jax")

# Modules live in stage folders (kit/, search/, decide/, ...); the public ones keep the short paths that
# users' code imports (`from reglab.regularizers import GroupLasso`, `reglab.selection.best`), see _OldPaths.
_PUBLIC_MODULES = {
    "regularizers": "reglab.kit.regularizers",
    "schedules": "reglab.kit.schedules",
    "optimizers": "reglab.kit.optimizers",
    "attach": "reglab.kit.attach",
    "penalties": "reglab.kit.penalties",
    "ledger": "reglab.kit.ledger",
    "records": "reglab.kit.records",
    "search": "reglab.search",
    "space": "reglab.search.space",
    "points": "reglab.search.points",
    "selection": "reglab.decide.selection",
    "diagnosis": "reglab.decide.diagnosis",
    "conventions": "reglab.conventions",
    "checks": "reglab.checks",
    "sklearn": "reglab.estimators",
}

_EXPORTS = {
    "LossLedger": "reglab.kit.ledger",
    "penalty_terms": "reglab.kit.penalties",
    "regularization_loss": "reglab.kit.penalties",
    "regularize": "reglab.kit.attach",
    "Sweep": "reglab.sweep",
    "SweepResult": "reglab.result",
    "stream": "reglab.sources",
}

__all__ = [*_EXPORTS, *_PUBLIC_MODULES, "__version__"]


def __getattr__(name):
    if name in _PUBLIC_MODULES:
        value = importlib.import_module(_PUBLIC_MODULES[name])
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'reglab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `reglab.regularizers` (a public path) as the module that now lives at `reglab.kit.regularizers`.

    The old name is the very same module object, so classes, isinstance checks and Keras's registry see one
    module, whichever path imported it.
    """

    def __init__(self):
        self._specs = {}

    def find_spec(self, fullname, path=None, target=None):
        moved = fullname.startswith("reglab.") and _PUBLIC_MODULES.get(fullname.removeprefix("reglab."))
        if not moved or moved == fullname:  # not a public short path, or one that did not move (conventions)
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(_PUBLIC_MODULES[spec.name.removeprefix("reglab.")])
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # importlib has just set the module's __spec__ to the old path's: give it back its own.
        module.__spec__ = self._specs[module.__spec__.name]


sys.meta_path.append(_OldPaths())


# The modules whose classes are registered with `keras.saving.register_keras_serializable`.
_SERIALIZABLE = ("reglab.kit.regularizers", "reglab.kit.schedules", "reglab.kit.optimizers")


def _register_with_keras():
    for name in _SERIALIZABLE:
        importlib.import_module(name)
    from reglab import _lazy_tensorflow

    _lazy_tensorflow.install()  # get_config without importing TensorFlow on JAX (~460 MB)


class _AfterKeras:
    """A `sys.meta_path` finder that registers reglab's classes right after `keras` is imported.

    Registering needs Keras's base classes, and importing Keras (and TensorFlow) takes seconds that
    `reglab --help`, which imports this package, must not pay. So the finder waits for the first
    `import keras` anywhere in the process and runs `_register_with_keras` once Keras has loaded.
    When a module of `_SERIALIZABLE` is itself what imports Keras, it is still half-executed at that
    moment; importing it again then returns it as it is, and it registers its classes as it finishes.
    The finder stays until Keras is actually executed: TensorFlow, for one, looks `keras` up
    (`importlib.util.find_spec`) before it imports it.
    """

    def __init__(self):
        self._looking = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or self._looking:
            return None
        self._looking = True  # the lookup below asks every finder again, this one included
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._looking = False
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                _register_with_keras()

            spec.loader.exec_module = exec_module
        return spec


if "keras" in sys.modules:
    _register_with_keras()
else:
    sys.meta_path.insert(0, _AfterKeras())
