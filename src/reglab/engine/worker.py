"""A worker process: `python -m reglab.engine.worker SHARD_FOLDER` trains one shard (`reglab.engine.shard`)
on Keras's JAX backend with the population engine and writes its result next to it.

It rebuilds each member's model from its config (`safe_mode=True`) after importing the modules the
payload names, gives it the caller's variable values, and trains the members as one population —
checkpointing into the caller's run directory when asked, so that a worker killed mid-shard costs only
the epochs since its last checkpoint. SIGINT (the caller's stop, or Ctrl-C in the terminal) stops it at
the next epoch boundary after saving. Exit codes: 0 done, 3 stopped (`stopped.json` says where), 4 the
shard cannot be rebuilt or traced here (`error.json` says why; the caller trains it itself).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

STOPPED, CANNOT = 3, 4


def main(argv: list[str]) -> int:
    """`FOLDER`: train that shard and exit with its code; `--serve`: train the shard folders named on stdin,
    one per line, answering each with a line `{"code": …}` on stdout, until stdin closes."""
    os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported: this process is a JAX one
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    if argv[:1] != ["--serve"]:
        return shard_main(Path(argv[0]), stop)
    answers = os.fdopen(os.dup(1), "w")  # the protocol's channel; anything else printed goes to stderr
    os.dup2(2, 1)
    import keras  # noqa: F401  (the imports, while the caller builds its members)

    from reglab import heap
    from reglab.engine import population  # noqa: F401

    heap.settle()  # the libraries' objects out of the garbage collector's walks (a process of our own)

    for line in sys.stdin:
        stop.clear()
        try:
            code = shard_main(Path(line.strip()), stop)
        except Exception:  # an error of its own: said on stderr (the caller shows its last line), and served on
            traceback.print_exc()
            code = 1
        answers.write(json.dumps({"code": code}) + "\n")
        answers.flush()
    return 0


def shard_main(folder: Path, stop: list) -> int:
    """Train the shard in `folder`; `stop` non-empty asks it to stop at the next epoch boundary."""
    import importlib

    from reglab.data import rows
    from reglab.engine import shard

    description = shard.read_shard(folder)
    data = shard.read_data(folder.parent)
    try:
        for module in description["modules"]:
            importlib.import_module(module)
        models = _models(description, probe=rows(data.x, slice(0, 1)))
    except Exception as error:  # a custom object not found, a config safe mode refuses, other variables
        return _cannot(folder, f"its model cannot be rebuilt in a JAX process: {_line(error)}", "rebuild")

    from reglab.engine import checkpoints as checkpoints_module
    from reglab.engine import population

    members = shard.members_of(description)
    training = shard.training_of(description)
    checkpoints = None
    if description["checkpoints"]:
        from reglab.store import RunDirectory

        store = RunDirectory(description["checkpoints"]["run_dir"])  # checkpoint files only: the caller holds the lock
        checkpoints = checkpoints_module.Checkpoints(
            store.save_checkpoint, store.load_checkpoint, description["checkpoints"]["seconds"], lambda: bool(stop)
        )
    pop = population.Population(members, models)
    try:
        records, weights, timing = population.train_population(
            pop, data, training, description["validate"], checkpoints=checkpoints
        )
    except checkpoints_module.Interrupted as stopped:
        (folder / "stopped.json").write_text(json.dumps({"done": stopped.done, "total": stopped.total}))
        return STOPPED
    except Exception as error:  # it does not trace or run on JAX (e.g. a penalty written with TensorFlow ops)
        return _cannot(folder, f"it does not train on Keras's JAX backend: {_line(error)}", "train")
    shard.write_result(folder, members, records, weights, models, timing)
    return 0


def _models(description, probe) -> list:
    """Each member's model from its config, with the caller's values of all its variables."""
    import keras
    import numpy as np

    from reglab.engine.grouping import built

    arrays, out = description["arrays"], []
    for i, (config, variables) in enumerate(zip(description["models"], description["variables"])):
        keras.backend.clear_session(free_memory=False)
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        if not built(model):  # a subclassed model creates its weights on its first call, as in `fit`
            model(probe)
        shapes = [list(v.shape) for v in model.variables]
        if shapes != [shape for _, shape in variables]:
            raise ValueError(f"the rebuilt model has other variables ({len(shapes)} vs {len(variables)})")
        for k, variable in enumerate(model.variables):
            variable.assign(np.asarray(arrays[f"m{i}v{k}"]))
        out.append(model)
    return out


def _line(error: BaseException, limit: int = 160) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cannot(folder: Path, why: str, kind: str) -> int:
    (folder / "error.json").write_text(json.dumps({"error": why, "kind": kind}))
    return CANNOT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
