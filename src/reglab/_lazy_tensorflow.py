"""Keras's serializer without importing TensorFlow on another backend.

Keras (3.15) asks `tf.available` — which imports TensorFlow whenever it is installed — before each
`isinstance(obj, tf.TensorShape)` check in `serialize_keras_object`, so every `get_config` of a
model costs a JAX process ~460 MB of memory and ~3 s for TensorFlow (shared/experiments/NOTES.md):
`regularize`, a sweep's signatures and saving a model all serialize. No object can be a TensorFlow
type before TensorFlow has been imported, so for those checks TensorFlow counts as available only
once it has been: the answers are the same, the import is gone. Everything else Keras does with
TensorFlow (its preprocessing layers, `tf.data`, `set_random_seed`) is left as it is.
"""

from __future__ import annotations

import sys


class ImportedOnly:
    """Keras's lazy `tensorflow` module, available only once TensorFlow is imported; attributes are the
    lazy module's (so code that needs TensorFlow still imports it).

    >>> from keras.src.utils.module_utils import tensorflow
    >>> ImportedOnly(tensorflow).available == ("tensorflow" in sys.modules and tensorflow.available)
    True
    """

    def __init__(self, lazy):
        self._lazy = lazy

    @property
    def available(self) -> bool:
        return "tensorflow" in sys.modules and self._lazy.available

    def __getattr__(self, name):
        return getattr(self._lazy, name)


def install() -> None:
    """Give Keras's serializer the `ImportedOnly` view of TensorFlow (once; any backend: on TensorFlow's,
    TensorFlow is imported and the answers are Keras's own)."""
    from keras.src.saving import serialization_lib

    if not isinstance(serialization_lib.tf, ImportedOnly):
        serialization_lib.tf = ImportedOnly(serialization_lib.tf)
