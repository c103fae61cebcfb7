"""`[model] file`: the user's own model, a `.keras` file loaded with `safe_mode=True, compile=False` — no code
from the file runs; reglab's own regularizers and schedules are registered. `checked_path` is what can be
checked without Keras (the file exists and is a Keras archive); `load` loads it; `check_input_shape` holds it
against the data. Every failure is a one-line ValueError naming the file and saying what to change."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from reglab import validation

if TYPE_CHECKING:  # Keras is imported by `load`, not with this module (`reglab.config`: checks come first)
    import keras


def load(file, base_dir=".") -> keras.Model:
    """`[model] file`: a `.keras` model, loaded with `safe_mode=True, compile=False` (no code from the
    file runs; reglab's own regularizers and schedules are registered). Every failure is a one-line
    ValueError that names the file and says what to change."""
    import keras

    received = f"Received: file={file!r}"
    path = checked_path(file, base_dir)

    from reglab.kit import regularizers, schedules  # noqa: F401  (register reglab>L2, … before loading)

    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except (ValueError, TypeError, KeyError, IndexError, OSError) as error:
        raise ValueError(_load_error(path, error) + f" {received}") from None
    if not isinstance(model, keras.Model):
        raise ValueError(f"[model] file {path} holds a {type(model).__name__}, not a Keras model. {received}")
    if not model.built or not model.inputs:
        raise ValueError(
            f"[model] file {path} holds a model without an input shape: start it with keras.Input(shape) and "
            f"save it again. {received}"
        )
    return model


def checked_path(file, base_dir) -> Path:
    """`[model] file`'s path, checked without Keras: a .keras file that exists and is a model archive (a zip
    holding config.json). One-line ValueErrors, as `load`'s."""
    received = f"Received: file={file!r}"
    if not isinstance(file, str) or not file:
        raise ValueError(f"[model] `file` is the path of a .keras model file. {received}")
    path = validation.config_path(file, "file", base_dir)
    if path.suffix != ".keras":
        raise ValueError(
            f"[model] file {path} is not a .keras file: reglab reads only the native Keras format (.keras); "
            f"load the model in Python and save it with model.save('model.keras'). {received}"
        )
    if not validation.is_file(path, "file", file):
        raise ValueError(f"[model] file not found: {path} (a relative path is relative to the config file). {received}")
    try:
        with zipfile.ZipFile(path) as archive:
            is_model_archive = "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        is_model_archive = False
    if not is_model_archive:
        raise ValueError(
            f"[model] file {path} is not a Keras model archive (a .keras file is a zip holding config.json and "
            f"the weights): write it with model.save('model.keras'). {received}"
        )
    return path


def _load_error(path, error) -> str:
    """One line saying why Keras could not load `path` and what to change."""
    text = " ".join(str(error).split())
    unsafe = re.search(r"Requested the deserialization of (an? (?:`[^`]+`|Python lambda)(?: layer| object)?)", text)
    if unsafe and "safe_mode=False" in text:
        what = unsafe.group(1).replace("`", "")
        if "Lambda" in what or "lambda" in what:
            what = "a Lambda layer" if "Lambda" in what else "a Python lambda"
            return (
                f"[model] file {path} contains {what} (arbitrary code); reglab loads models with safe_mode=True: "
                "replace the Lambda with built-in Keras layers and save the model again."
            )
        return (
            f"[model] file {path} contains {what}, which runs code from outside the file; reglab loads models "
            "with safe_mode=True: rebuild the model from built-in Keras layers."
        )
    missing = re.search(r"Could not locate (class|function) '([^']+)'", text)
    if isinstance(error, TypeError) and missing:
        kind, name = missing.groups()
        return (
            f"[model] file {path} uses {kind} {name!r}, which is not a built-in Keras or reglab object; the "
            f"command line loads only those (it imports no code of yours): run the sweep from Python with "
            f"reglab.Sweep(model, ...), after importing the module that registers {name!r} with "
            "@keras.saving.register_keras_serializable, or rebuild the model from built-in layers."
        )
    reason = text.split("Exception encountered: ")[-1]
    reason = reason if len(reason) <= 160 else reason[:157] + "..."
    return (
        f"[model] file {path} could not be loaded as a Keras model ({type(error).__name__}: {reason}); "
        "save it again with model.save('model.keras') under Keras 3."
    )


def check_input_shape(model, file, base_dir, data_shape) -> None:
    """The model takes one input whose shape fits the data's features (checked before any work)."""
    path = Path(file) if Path(file).is_absolute() else Path(base_dir) / file
    if len(model.inputs) != 1:
        raise ValueError(
            f"[model] file {path} has {len(model.inputs)} inputs; a sweep feeds it one array of "
            f"features: save a model with one keras.Input. Received: file={file!r}"
        )
    shape = tuple(model.inputs[0].shape)
    fits = len(shape) == len(data_shape) and all(m is None or m == d for m, d in zip(shape[1:], data_shape[1:]))
    if not fits:
        raise ValueError(
            f"[model] file {path} takes inputs of shape {shape} but the data has shape {tuple(data_shape)}: "
            f"save a model whose keras.Input has shape {tuple(data_shape[1:])}. Received: file={file!r}"
        )
