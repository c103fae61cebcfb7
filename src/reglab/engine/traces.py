"""A population's traced epoch kept on disk (`jax.export`), so that a re-run, a later sweep of the same
architecture with other values and its refit skip tracing it: the standard workload's epoch takes ~0.45 s
to trace and lower, ~0.02 s to read back and lower (XLA's compilation of it is kept by `compile_cache`).

An entry is keyed by everything the trace depends on (`key`): reglab's own source, the versions of Keras,
JAX and Python, the device, Keras's and JAX's numeric settings, the model (its architecture as
`grouping.signature` writes it, the classes of its layers, the source files of every module outside
Keras, JAX and reglab that defines one of its classes or functions, or its loss, metrics or
optimizer), the optimizer's and the loss's configuration, the penalty terms and per-member values'
layout (and the values a trace branches on: `knobs.PerMember`), the batch plan, and the arguments'
shapes and dtypes. An entry keeps the questions its trace asked of the per-member values (`Knob.asked`), so that
a program read back admits late members as the traced one does (`reglab.engine.admission`). A model whose code has no source file to read (a class typed into a REPL) gets no key:
it is traced every time. An entry that does not read back is removed with a warning and traced again;
one that names another key or format is never used. Programs on features on disk call
back to the host (`jax.pure_callback`), which `jax.export` cannot keep: they are traced every time.

What a source file does not show is not in the key: custom code that reads a value set at run time (a
global assigned from an environment variable, a file it loads) traces differently with the same source —
run such code with REGLAB_TRACE_CACHE=0, which turns the kept traces off (as REGLAB_COMPILE_CACHE=0, set
by `reglab bench`, does).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import types
import warnings
from functools import lru_cache, partial
from pathlib import Path

from reglab.engine import compile_cache

FORMAT = 2  # 2: the entry keeps its trace's questions (`Knob.asked`)
# what reglab, Keras and JAX define is keyed by their versions (reglab: by its source, which a
# development install edits without a version change); everything else by its module's source file
LIBRARIES = frozenset({"keras", "reglab", "jax", "jaxlib", "numpy", "ml_dtypes", "optree", "tensorflow"})
_KNOWN = LIBRARIES | sys.stdlib_module_names


def folder() -> Path:
    return compile_cache.root() / "traces"


def enabled() -> bool:
    return os.environ.get("REGLAB_TRACE_CACHE") != "0" and not compile_cache.turned_off()


def lower(run, args, key: str | None, exportable: bool = True, epochs: int = 1, asked: list | None = None):
    """(`run`'s program lowered on `args`, how its convolutions are batched — `convolution.per_member_on_cpu`'s
    record —, "read" or "traced"): read back from the entry `key` where there is one, else traced, and kept under `key`.
    `run`: the jitted epoch (`Program.epoch_function`); its first argument is donated. Every exportable
    program (all but those on features on disk) is lowered from its export, kept or not, so that a cold
    and a warm run compile the very same module (and round the same way). `epochs`: how many times it will
    run, which decides how its convolutions batch — an entry with convolutions is used for that many only
    (one without, whatever the epochs: a longer sweep reads it back). `asked`: the per-member values' lists of
    questions (`Knob.asked`), filled by the trace — or, read back, with the questions it asked; an entry is kept
    only where they are plain numbers (JSON)."""
    import jax

    from reglab.engine.convolution import per_member_on_cpu

    use = key is not None and enabled()
    asked = asked if asked is not None else []
    entry = _read(key, epochs, len(asked)) if use else None
    how = "traced" if entry is None else "read"
    if entry is not None:
        for questions, kept in zip(asked, entry[2]):
            questions[:] = [(q, o) for q, o in kept]
    if entry is None and exportable:
        try:
            with per_member_on_cpu() as convolutions:
                entry = jax.export.export(run)(*args), convolutions, asked
        except Exception:  # traced again below: a trace error is the caller's to see, an export error is ours
            entry = None
        if entry is not None and use:
            _write(key, *entry, epochs)
    if entry is None:
        with per_member_on_cpu() as convolutions:
            return run.lower(*args), convolutions, how
    exported, convolutions, _ = entry
    return jax.jit(exported.call, donate_argnums=(0,)).lower(*args), convolutions, how


def key(program, training, plan, padded, args) -> str | None:
    """The entry's name for `program`'s epoch with this `plan` on `args` (see the module's docstring), or
    None where the model's code cannot be read."""
    import jax

    code = sources(program)
    if code is None:
        return None
    leaves, tree = jax.tree.flatten(args)
    text = json.dumps(
        [
            FORMAT,
            environment(),
            program.signature,
            [f"{type(layer).__module__}.{type(layer).__qualname__}" for layer in program.layers],
            code,
            _config(program.template.optimizer, mask_rate=True),
            [_config(v) for v in (training.loss, training.metrics, training.loss_weights)],
            [[t.name, t.index, [list(k) for k in t.keys], t.shared is not None] for t in program.terms],
            [
                [type(k.owner).__name__, getattr(k.owner, "name", ""), k.attribute, k.values.tolist()]
                for k in program.knobs
            ],
            program.activity,
            program.metric_names,
            repr(plan),
            list(padded),
            str(tree),
            [[list(leaf.shape), str(leaf.dtype)] for leaf in leaves],
        ],
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def answer_key(program, decided_by) -> str | None:
    """The name of a small answer about `program` kept on disk (`row_independence.probe`'s), decided by
    `decided_by` — and by the model's code and the environment, as a trace is."""
    code = sources(program)
    if code is None or not enabled():
        return None
    text = json.dumps([FORMAT, environment(), code, decided_by], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def read_answer(name: str):
    try:
        return json.loads((folder() / f"{name}.json").read_text())["answer"]
    except (OSError, ValueError, KeyError, TypeError):  # missing or damaged: asked again
        return None


def write_answer(name: str, answer) -> None:
    from reglab.files import write_json

    try:
        write_json(folder() / f"{name}.json", {"answer": answer})
    except OSError:
        pass


def environment() -> list:
    """What any trace depends on beyond the model: versions, the device, numeric settings, reglab's source."""
    import jax
    import jaxlib
    import keras

    device = jax.devices()[0]
    flags = ("jax_enable_x64", "jax_default_matmul_precision", "jax_default_prng_impl", "jax_threefry_partitionable")
    return [
        _reglab_source(),
        keras.__version__,
        jax.__version__,
        jaxlib.__version__,
        platform.python_version(),
        device.platform,
        device.device_kind,
        keras.config.floatx(),
        keras.config.dtype_policy().name,
        keras.config.image_data_format(),
        [str(getattr(jax.config, flag, None)) for flag in flags],
        os.environ.get("REGLAB_CONV_BATCHING"),
    ]


@lru_cache(maxsize=1)
def _reglab_source() -> str:
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def sources(program) -> list | None:
    """[(module, digest of its source file)] for every module outside the libraries that defines a class or
    function the program runs: the model's and its layers' classes (and their bases), what a layer holds
    (an activation function, an initializer, a regularizer), the loss, metrics and optimizer. None when
    one of them has no source file (typed into a REPL, whose `__main__` has no `__file__`)."""
    seen, modules = set(), {}
    template = program.template
    found = [type(template), template.optimizer]
    for obj in program.objects:  # a loss or metrics per output: a dict or list of them
        found.extend(obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else [obj])
    for layer in program.layers:
        found.append(type(layer))
        for value in vars(layer).values():
            found.extend(value if isinstance(value, (list, tuple)) else [value])
    for obj in found:
        for definer in _definers(obj):
            name = getattr(definer, "__module__", None)
            if not name or id(definer) in seen or name.split(".")[0] in _KNOWN:
                continue
            seen.add(id(definer))
            if name not in modules:
                digest = _module_digest(name)
                if digest is None:
                    return None
                modules[name] = digest
    return sorted(modules.items())


def _definers(obj) -> list:
    if isinstance(obj, partial):
        return _definers(obj.func)
    if isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return [getattr(obj, "__func__", obj)]
    if isinstance(obj, type):
        return list(obj.__mro__)
    if obj is None or isinstance(obj, (str, int, float, bool, dict, bytes)):
        return []
    return list(type(obj).__mro__)


def _module_digest(name: str) -> str | None:
    path = getattr(sys.modules.get(name), "__file__", None)
    try:
        stat = os.stat(path) if path else None
    except OSError:
        return None
    return _file_digest(path, stat.st_mtime_ns, stat.st_size) if stat else None


@lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int) -> str | None:
    """A source file's digest, read once a process while it is unchanged (a population asks for its key and
    its probe's answer: the same files each time)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _config(obj, mask_rate: bool = False):
    """A Keras object's configuration as JSON-ready values (a float learning rate masked with `mask_rate`:
    it is a variable the members hold their own value of); a string or None as it is."""
    import keras

    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [_config(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _config(v) for k, v in obj.items()}
    try:
        with warnings.catch_warnings():  # Keras reads a variable with `np.array(v)`: numpy 2 deprecates its form
            warnings.simplefilter("ignore", DeprecationWarning)
            config = keras.saving.serialize_keras_object(obj)
    except Exception:  # not serializable: its class and source (in `sources`) must say it
        return f"{type(obj).__module__}.{type(obj).__qualname__}"
    if mask_rate and isinstance(config, dict) and isinstance(config.get("config", {}).get("learning_rate"), float):
        config = {**config, "config": {**config["config"], "learning_rate": "<per member>"}}
    return config


def _path(key: str) -> Path:
    return folder() / f"{key}.jax"


def _read(key: str, epochs: int, knobs: int = 0):
    """(exported, convolutions, the questions asked of each of the `knobs` per-member values) of the entry `key`,
    or None: missing, damaged (removed, with a warning), of another key or format (never used), or with
    convolutions batched for another number of epochs (traced again)."""
    import jax

    path = _path(key)
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        head, _, body = blob.partition(b"\n")
        meta = json.loads(head)
        if meta.get("key") != key or meta.get("format") != FORMAT or meta.get("epochs") not in (None, epochs):
            return None
        if len(meta["asked"]) != knobs:
            raise ValueError("the questions of another number of per-member values")
        return jax.export.deserialize(bytearray(body)), meta["convolutions"], meta["asked"]
    except Exception as error:
        warnings.warn(
            f"reglab: a kept trace did not read back ({type(error).__name__}); tracing the epoch again. "
            f"Received: entry={str(path)!r}",
            UserWarning,
            stacklevel=4,
        )
        path.unlink(missing_ok=True)
        return None


def _write(key: str, exported, convolutions: dict, asked: list, epochs: int) -> None:
    from reglab.files import atomic_path

    if not all(o is None or type(o) in (bool, int, float) for questions in asked for _, o in questions):
        return  # a question about something JSON does not keep exactly: traced every time
    asked = [[[q, o] for q, o in questions] for questions in asked]
    meta = {"key": key, "format": FORMAT, "convolutions": convolutions, "epochs": epochs if convolutions else None}
    try:
        head = json.dumps({**meta, "asked": asked}, default=repr).encode()
        with atomic_path(_path(key)) as tmp:
            tmp.write_bytes(head + b"\n" + bytes(exported.serialize()))
    except OSError:  # a full or read-only disk costs the next run a trace, nothing else
        pass
