"""XLA's compiled programs kept on disk (JAX's persistent compilation cache), so that a re-run of a sweep,
a sweep of the same architecture with other λ (the points' values are arguments of the program, not
constants), its refit and a worker process's copy of this process's population do not compile again.

Used by every population (`reglab.engine.population`) and the `reglab` command, in `REGLAB_CACHE/xla`
(else `~/.cache/reglab/xla`) — unless JAX was already given a cache folder (`jax_compilation_cache_dir`,
or `JAX_COMPILATION_CACHE_DIR`), which is then used as it is, or REGLAB_COMPILE_CACHE=0 (what `reglab
bench` sets: it measures compilation). JAX keys each program by its HLO, the
compile options and the versions of jaxlib and XLA: a program of another version is never read back.
"""

from __future__ import annotations

import os
from pathlib import Path

# programs that took less to compile are not kept: below ~0.05 s reading costs what compiling does; the
# ~7 small programs of a first Keras build (its initializers, 0.1–0.2 s each) are kept
MIN_COMPILE_SECONDS = 0.05


def root() -> Path:
    """reglab's cache: `REGLAB_CACHE`, else `~/.cache/reglab` (XLA's programs in `xla/`, kept traces in `traces/`)."""
    return Path(os.environ.get("REGLAB_CACHE") or Path.home() / ".cache" / "reglab")


def folder() -> Path:
    return root() / "xla"


def turned_off() -> bool:
    """REGLAB_COMPILE_CACHE=0: nothing is kept or read back (what `reglab bench` measures)."""
    return os.environ.get("REGLAB_COMPILE_CACHE") == "0"


def use() -> None:
    """Keep this process's XLA programs in reglab's cache, unless JAX was given a cache folder already."""
    import jax

    if turned_off():
        return
    if jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    jax.config.update("jax_compilation_cache_dir", str(folder()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)


def off() -> None:
    """Compile everything, in this process and the processes it starts (what `reglab bench` measures)."""
    os.environ["REGLAB_COMPILE_CACHE"] = "0"
