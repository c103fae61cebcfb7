"""Argument validation, in one home: the primitives every public function uses (this module: every error
names the argument and what was received, "… Received: name=value") and a sweep's settings
(`reglab.validation.sweep`, validated without Keras). Config files (`reglab.config.validate`), a point's keys
(`reglab.search.points.validate`) and the data (`reglab.data.prepare`) build on these. ("Checks", in
reglab, are the reference checks that ship with the package: `reglab.checks`.)

Imports nothing of reglab: the kit, at the bottom, uses it."""

from __future__ import annotations

import math
from numbers import Integral, Real
from pathlib import Path


def non_negative_float(value, name: str) -> float:
    """Return `value` as a float if it is a finite number >= 0, else raise ValueError.

    >>> non_negative_float(1e-3, "strength")
    0.001
    >>> non_negative_float(-1, "strength")
    Traceback (most recent call last):
    ...
    ValueError: Invalid value for argument `strength`: expected a finite, non-negative number. Received: strength=-1
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"Invalid value for argument `{name}`: expected a finite, non-negative number. Received: {name}={value!r}"
        )
    return float(value)


def fraction(value, name: str) -> float:
    """Return `value` as a float if it lies in [0, 1], else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not (0.0 <= value <= 1.0):
        raise ValueError(
            f"Invalid value for argument `{name}`: expected a number in [0, 1]. Received: {name}={value!r}"
        )
    return float(value)


def axes(value, name: str) -> int | tuple[int, ...] | None:
    """Normalize an axis argument: None, an int, or a non-empty sequence of distinct ints."""
    if value is None:
        return None
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return value
    elif (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(a, int) and not isinstance(a, bool) for a in value)
        and len(set(value)) == len(value)
    ):
        return tuple(value)
    raise ValueError(
        f"Invalid value for argument `{name}`: expected None, an int or a list of distinct ints. "
        f"Received: {name}={value!r}"
    )


def number(value, name: str, *, low=None, high=None, integer=False, low_open=False):
    """`value` if it is a finite number (an int if `integer`) within the bounds, else ValueError.

    >>> number(5, "epochs", low=1, integer=True)
    5
    >>> number(0, "learning_rate", low=0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: Invalid value for argument `learning_rate`: expected a number > 0. Received: learning_rate=0
    """
    kinds = Integral if integer else Real
    if isinstance(value, bool) or not isinstance(value, kinds) or (not integer and not math.isfinite(value)):
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"Invalid value for argument `{name}`: expected {kind}. Received: {name}={value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        if high is None:
            bounds = f"{'>' if low_open else '>='} {low}"
        elif low is None:
            bounds = f"<= {high}"
        else:
            bounds = f"in {'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"Invalid value for argument `{name}`: expected a number {bounds}. Received: {name}={value!r}")
    return value


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    """A character a terminal acts on instead of showing: C0/C1 controls and DEL (escape sequences,
    carriage returns, new lines), format characters (bidirectional overrides) and line separators."""
    import unicodedata

    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def printable(text: str) -> str:
    """`text` with every control character (and escape-sequence introducer, format character, line
    separator) replaced by its escape, so that a message shows as one clean line on a terminal.

    >>> printable("a\\x1b[31mred\\r\\nb")
    'a\\\\x1b[31mred\\\\x0d\\\\x0ab'
    """
    return "".join(_escaped(c) if _unsafe(c) else c for c in text)


def has_control(text: str) -> bool:
    """Whether `text` holds a character `printable` escapes."""
    return any(_unsafe(c) for c in text)


def config_path(value, key: str, base_dir) -> Path:
    """A path named in a config file (relative to that file), refused if it holds control characters."""
    if has_control(value):
        raise ValueError(
            f"[{'model' if key == 'file' else 'data'}] `{key}` is a file path; this one holds control "
            f"characters. Received: {key}={value!r}"
        )
    return Path(value) if Path(value).is_absolute() else Path(base_dir) / value


def is_file(path: Path, key: str, value) -> bool:
    """`path.is_file()`, with a lookup that fails (a name too long, a loop of links) as a one-line ValueError."""
    try:
        return path.is_file()
    except OSError as error:  # a name too long, a loop of links, ...
        raise ValueError(f"{path} cannot be looked up ({error.strerror or error}). Received: {key}={value!r}") from None
