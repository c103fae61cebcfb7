"""reglab: regularization for Keras models — attach penalties, see what they do, choose λ honestly.

The public API is imported lazily, so `reglab --help` answers without loading TensorFlow.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "LossLedger": "reglab.ledger",
    "penalty_terms": "reglab.penalties",
    "regularization_loss": "reglab.penalties",
    "regularize": "reglab.attach",
    "Sweep": "reglab.sweep",
    "SweepResult": "reglab.sweep",
    "space": None,
    "regularizers": None,
    "schedules": None,
    "records": None,
    "conventions": None,
    "selection": None,
    "diagnosis": None,
    "optimizers": None,
    "checks": None,
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'reglab' has no attribute {name!r}")
    module = _EXPORTS[name]
    value = importlib.import_module(f"reglab.{name}") if module is None else getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
