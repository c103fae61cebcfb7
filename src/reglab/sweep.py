"""`Sweep`: train every configuration point on every fold, choose, refit, test once.

>>> import keras, reglab
>>> from sklearn.datasets import load_breast_cancer
>>> x, y = load_breast_cancer(return_X_y=True)
>>> def build(point):
...     return keras.Sequential([keras.Input((30,)),
...         keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(point["l2"])),
...         keras.layers.Dense(2, activation="softmax")])
>>> result = reglab.Sweep(build, grid={"l2": [0.0, 0.01]}, cv=3, epochs=2, learning_rate=1e-2, standardize=True,
...                       test_size=0.2, seed=0).run(x, y)
>>> result.summary[["l2", "val_loss_mean", "val_accuracy_mean", "rank"]].shape
(2, 4)
>>> sorted(result.test)
['accuracy', 'loss']
"""

from __future__ import annotations

import hashlib
import inspect
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from reglab import _checks, data as data_module, settings

from reglab.decide import diagnosis, selection

from reglab.search import plan, points as points_module, space
from reglab.engine import reference
from reglab.engine.training import Training
from reglab.kit.records import weight_histogram


def _engine_unavailable(engine: str) -> str | None:
    """Why `engine` cannot run in this process (Keras's backend decides), or None."""
    if engine == "population":
        from reglab.engine.population import unavailable

        return unavailable()
    return None


class NothingToTrain(RuntimeError):
    """No configuration's model could be built (raised before anything is written)."""


@dataclass
class SweepResult:
    """What a sweep found. Tables are pandas DataFrames in the run directory's formats."""

    epochs: pd.DataFrame  # one row per member per epoch (reglab.kit.records + identity and point columns)
    members: pd.DataFrame  # one row per member: final and best-epoch values, status
    summary: pd.DataFrame  # one row per point: mean / std / sem over folds, rank
    best: dict | None  # the selected point: {"point_id", "params", "score"} (None: nothing selectable)
    best_1se: dict | None = None  # the one-standard-error choice (`reglab.decide.selection.best_1se`)
    diagnosis: pd.DataFrame | None = None  # per point: verdict, recommendation, reason (`reglab.decide.diagnosis`)
    histograms: pd.DataFrame | None = None  # per member and weight: final log10|w| histogram
    weights: dict | None = None  # {member id: {weight path: final array}} with `run(..., keep_weights=True)`
    test: dict | None = None  # the selected point refit on all non-test data, scored once on the test set
    model: keras.Model | None = field(default=None, repr=False)  # that refit model (None if refit=False)
    run_dir: Path | None = None

    def plot(self, folder) -> list[Path]:
        """Render learning curves, validation curves, penalty share, regularization paths and weight
        histograms as PNG files into `folder`."""
        from reglab.show.plots import render_all

        return render_all(self.epochs, self.summary, folder, best_point=(self.best or {}).get("point_id"),
                          best_1se=(self.best_1se or {}).get("point_id"), histograms=self.histograms)


class Sweep:
    """A regularization sweep: points × folds, trained by an engine, selected honestly.

    Args:
        model: a builder `point -> keras.Model` (uncompiled; it reads the point's keys, e.g.
            `point["l2"]`), or a built Keras model to start every member from (its weights are
            kept) with the point applied by `reglab.regularize` — see `reglab.search.points` for the keys.
        grid: `{key: [values]}`, every combination.
        random: `{key: distribution}` (`reglab.search.space.LogUniform(1e-5, 1e-1)`, `Uniform`, `Choice`,
            or `{"log_uniform": [low, high]}`); `n_trials` points sampled with `seed`.
        stages: a list of grids searched one after the other, each around the previous stage's
            best point (e.g. `[{"l2": [...]}, {"dropout": [...]}]`: L2 first, then dropout).
        refine: rounds of coarse-to-fine refinement of `refine_param` (default: the first
            numeric parameter) around the best value, `refine_points` new values per round.
        cv: folds of k-fold cross-validation (≥ 2), or a fraction in (0, 1) for one hold-out split.
        repeats: repetitions of k-fold with different shuffles. Defaults to 1.
        stratify: stratified folds; "auto" stratifies classification. Defaults to "auto".
        test_size: fraction held out as a test set, used once after selection. Defaults to None.
        epochs, batch_size, optimizer, learning_rate: training of every member; the learning rate
            may be a `keras.optimizers.schedules.LearningRateSchedule` (counted in steps).
        loss, metrics: "auto" picks sparse categorical (or binary) cross-entropy and accuracy for
            classification, mean squared error for regression.
        layers: which layers a plain model's penalties and dropout go on. Defaults to "hidden".
        layer_groups: `{group: layer selection}` for per-group keys such as `"l2.early"`.
        loss_weights: for a model with several outputs, each output's weight in the loss (a dict by
            output name or a list), as `model.compile(loss_weights=...)`; `loss` is then a dict or list too.
        standardize: scale features (and a regression target) with each training fold's mean
            and std. Defaults to False.
        select: the validation quantity that picks the best point. Defaults to "val_loss".
        refit: refit the best point on all non-test data (and score it on the test set).
        engine: "population" (all members of an architecture in one compiled program of Keras's own
            training step, any model; Keras's JAX backend), "reference" (one `model.fit` per member;
            either backend) or "auto": population on JAX, reference on another backend (with a
            one-line warning saying how to get the population engine). Defaults to "auto".
        seed: the global seed; every member's seed derives from it, the point and the fold.
    """

    def __init__(self, model, *, grid=None, random=None, n_trials=10, stages=None, refine=0, refine_param=None,
                 refine_points=5, cv=5, repeats=1, stratify="auto", test_size=None, epochs=20, batch_size=32,
                 optimizer="adam", learning_rate=1e-3, loss="auto", metrics="auto", loss_weights=None, layers="hidden",
                 layer_groups=None, standardize=False, select="val_loss", refit=True, engine="auto", seed=0):
        if isinstance(model, keras.Model):
            if not model.built or not model.inputs:
                raise ValueError(f"The model is not built: give it an Input first. Received: model={model.name!r}")
        elif not callable(model):
            raise ValueError(f"Expected a builder function or a Keras model. Received: model={model!r}")
        self.model = model
        checked = settings.check(seed=seed, grid=grid, random=random, stages=stages, n_trials=n_trials, refine=refine,
                                 refine_param=refine_param, refine_points=refine_points, cv=cv, repeats=repeats,
                                 stratify=stratify, test_size=test_size, epochs=epochs, batch_size=batch_size,
                                 learning_rate=learning_rate, optimizer=optimizer, select=select, engine=engine)
        self.seed, self.n_trials, self._rounds = checked["seed"], checked["n_trials"], checked["rounds"]
        self.grid, self.random, self.stages = grid, random, stages
        self.refine, self.refine_points, self.refine_param = checked["refine"], checked["refine_points"], checked["refine_param"]
        self.cv, self.repeats, self.stratify, self.test_size = cv, checked["repeats"], stratify, test_size
        self.epochs, self.batch_size, self.learning_rate = checked["epochs"], checked["batch_size"], learning_rate
        self.optimizer = checked["optimizer"]
        if loss != "auto":  # what needs Keras: the loss by name, the engine on this backend, the model
            for part in _per_output(loss):
                try:
                    keras.losses.get(part)
                except (ValueError, TypeError):
                    raise ValueError(f"Unknown loss. Received: loss={loss!r}") from None
        self.loss = loss
        if metrics != "auto" and not all(isinstance(m, (list, tuple)) and all(isinstance(n, str) for n in m)
                                         for m in (metrics.values() if isinstance(metrics, dict) else [metrics])):
            raise ValueError(f"`metrics` is 'auto', a list of metric names or a dict of them per output. "
                             f"Received: metrics={metrics!r}")
        self.metrics = metrics
        if loss_weights is not None:
            for weight in _per_output(loss_weights, allow_number=False):
                _checks.non_negative_float(weight, "loss_weights")
        self.loss_weights = loss_weights
        self.layers = layers
        self.layer_groups = dict(layer_groups or {})
        self.standardize = bool(standardize)
        self.select = select
        self.refit = bool(refit)
        unavailable = _engine_unavailable(engine)
        if unavailable:
            raise ValueError(f"{unavailable}. Received: engine={engine!r}")
        self.engine = engine
        if isinstance(model, keras.Model):
            for round_points in self._rounds:
                points_module.check(round_points, self.layer_groups)
            from reglab.kit.attach import hidden_layers, select_layers

            if layers == "hidden":
                if not hidden_layers(model) and any(k != "penalty" for p in self._rounds[0] for k in p):
                    raise ValueError("The model has no hidden layer with a kernel to regularize. Received: layers='hidden'")
            else:
                select_layers(model, layers)
            for group, selector in self.layer_groups.items():
                select_layers(model, selector)
            for round_points in self._rounds:
                points_module.check_model(model, round_points, layers, self.layer_groups)

    # --- identity ------------------------------------------------------------------------------

    def spec(self) -> dict:
        """The sweep's settings as plain values (what the run directory stores and hashes)."""
        if hasattr(self.model, "spec"):  # a builder that describes itself (reglab.models.MLP)
            model = self.model.spec()
        elif isinstance(self.model, keras.Model):
            weights = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in self.model.get_weights()))
            model = {"kind": "model", "config_sha": hashlib.sha256(self.model.to_json().encode()).hexdigest()[:16],
                     "weights_sha": weights.hexdigest()[:16]}
        else:  # a function, or a callable object (described by its class)
            described = self.model if inspect.isfunction(self.model) or inspect.ismethod(self.model) else type(self.model)
            try:
                source = inspect.getsource(described)
            except (OSError, TypeError):
                source = ""
            model = {"kind": "builder", "name": f"{described.__module__}.{described.__qualname__}",
                     "source_sha": hashlib.sha256(source.encode()).hexdigest()[:16]}
        search = ({"grid": self.grid} if self.grid is not None else {"stages": self.stages} if self.stages is not None
                  else {"random": {k: space.distribution(v, k).to_config() for k, v in self.random.items()}, "n_trials": self.n_trials})
        return {
            "model": model, "search": search, "refine": self.refine, "refine_param": self.refine_param,
            "refine_points": self.refine_points, "cv": self.cv, "repeats": self.repeats, "stratify": self.stratify,
            "test_size": self.test_size, "epochs": self.epochs, "batch_size": self.batch_size,
            "optimizer": self.optimizer, "learning_rate": keras.saving.serialize_keras_object(self.learning_rate),
            "loss": self.loss,
            "metrics": self.metrics if isinstance(self.metrics, (str, dict)) else list(self.metrics),
            "layers": repr(self.layers),
            "layer_groups": {k: repr(v) for k, v in self.layer_groups.items()}, "standardize": self.standardize,
            "select": self.select, "refit": self.refit, "engine": self.engine, "seed": self.seed,
            # only when set, so that run directories written before the setting existed still resume
            **({"loss_weights": self.loss_weights} if self.loss_weights is not None else {}),
        }

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.spec(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    # --- running -------------------------------------------------------------------------------

    def _make_model(self):
        if isinstance(self.model, keras.Model):
            return lambda point: points_module.apply(self.model, point, self.layers, self.layer_groups)
        return self.model

    def _training(self, dataset) -> Training:
        """Loss and metrics for the task, checked against the model's output width (one probe build)."""
        if dataset.task == "multi-output" and self.loss == "auto":  # refused before anything is built
            raise ValueError("Several outputs need a loss each: give `loss` as a dict by output name (or a list). "
                             "Received: loss='auto'")
        probe, errors = None, []
        for point in self._rounds[0]:  # the first point that builds tells the output width
            try:
                probe = self._make_model()(point)
                break
            except Exception as error:  # that point's members will be recorded as failed
                errors.append(f"{point}: {error}")
        if probe is None:
            raise NothingToTrain(f"Every configuration failed to build; nothing to train. First error: {errors[0]}")
        if not isinstance(probe, keras.Model):
            raise ValueError(f"The builder must return a Keras model. Received: {type(probe).__name__}")
        _check_inputs(probe, dataset)
        loss, metrics = self.loss, self.metrics
        if dataset.task == "multi-output":
            keras.backend.clear_session(free_memory=False)
            return Training(
                epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer,
                learning_rate=self.learning_rate, loss=loss, metrics=() if metrics == "auto" else metrics,
                standardize=self.standardize, loss_weights=self.loss_weights)
        try:
            shape = probe.output_shape
        except AttributeError:  # a subclassed model that has not seen data yet: its output on one row says it
            shape = tuple(probe(data_module.rows(dataset.x, slice(0, 1))).shape)
        width = shape[-1] if shape else None
        if dataset.task == "classification":
            if width == dataset.n_classes:
                auto_loss = "sparse_categorical_crossentropy"
            elif width == 1 and dataset.n_classes == 2:
                auto_loss = "binary_crossentropy"
            else:
                raise ValueError(
                    f"The model's output width {width} fits neither {dataset.n_classes} classes (softmax) nor a "
                    f"binary sigmoid. Received: model output shape {shape}"
                )
            auto_metrics = ("accuracy",)
        else:
            if width != 1:
                raise ValueError(f"A regression model needs one output. Received: model output shape {shape}")
            auto_loss, auto_metrics = "mean_squared_error", ("mean_absolute_error",)
        keras.backend.clear_session(free_memory=False)  # names reset; a full gc pass costs ~0.2 s
        return Training(
            epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer,
            learning_rate=self.learning_rate, loss=auto_loss if loss == "auto" else loss,
            metrics=auto_metrics if metrics == "auto" else metrics, standardize=self.standardize,
            loss_weights=self.loss_weights,
        )

    def split(self, x, y, task="auto"):
        """The data as the sweep sees it: `(dataset, rest, test, splits)` — validated data, the indices
        outside and inside the test set, and the (fold, repeat, train, val) splits of `rest`.
        `reglab.search.plan.members(points, splits, seed)` gives the members and their data."""
        dataset = data_module.prepare(x, y, task)
        if self.standardize and dataset.structured:
            raise ValueError("Standardizing several inputs or outputs is not built in: add a Normalization layer to the "
                             "model instead. Received: standardize=True")
        stratify = dataset.task == "classification" if self.stratify == "auto" else self.stratify
        if stratify and dataset.task != "classification":
            raise ValueError(f"Stratified folds need class labels. Received: stratify=True for a {dataset.task} target")
        data_module.check_cv(self.cv, dataset, stratify, self.test_size)
        rest, test = data_module.split_test(dataset, self.test_size, self.seed, stratify)
        return dataset, rest, test, data_module.folds(dataset, rest, self.cv, self.repeats, self.seed, stratify)

    def run(self, x, y, run_dir=None, task="auto", progress=None, keep_weights=False,
            wait_for_lock=None, stop=None, checkpoint_seconds=2.0) -> SweepResult:
        """Validate the data, train every member (resuming `run_dir` if given), select, refit, test once.

        Args:
            x, y: features (array or DataFrame, rank ≥ 2) and target (classes or a regression target);
                for a model with several inputs or outputs, a dict by input / output name or a list.
            run_dir: a run directory to write (and resume); None keeps everything in memory. It is
                locked for the whole run: another process using it raises `reglab.store.RunDirectoryInUse`
                (a ValueError naming that process).
            task: "auto", "classification" or "regression".
            progress: a callable `(done, total, member_id)` called after each member.
            keep_weights: keep every member's final weights in `result.weights` (members trained in
                this call; a resumed member's weights were not stored).
            wait_for_lock: seconds to wait for a run directory another process is using (None: fail at
                once; math.inf: as long as it takes).
            stop: a callable asked at every epoch boundary (population engine) and between members;
                when it returns True the work so far is saved in `run_dir` and
                `reglab.engine.checkpoints.Interrupted` is raised (the CLI's Ctrl-C). Running again resumes.
            checkpoint_seconds: with a `run_dir`, how often (at least) the population engine saves its
                training state, so that a run killed mid-training resumes from the last epoch saved
                (never more than ~5 % of the training time, whatever the setting).
        """
        if wait_for_lock is not None and wait_for_lock != float("inf"):
            _checks.number(wait_for_lock, "wait_for_lock", low=0)
        _checks.number(checkpoint_seconds, "checkpoint_seconds", low=0)
        if stop is not None and not callable(stop):
            raise ValueError(f"`stop` is a callable returning True to stop. Received: stop={stop!r}")
        dataset, rest, test, splits = self.split(x, y, task)
        training = self._training(dataset)

        store = None
        if run_dir is not None:
            from reglab.store import RunDirectory

            store = RunDirectory(run_dir)
            store.open(self.spec(), self.spec_hash(), dataset.fingerprint(), wait=wait_for_lock)
        try:
            stop = stop or (lambda: False)
            checkpoints = None
            if store is not None:
                from reglab.engine.checkpoints import Checkpoints

                checkpoints = Checkpoints(store.save_checkpoint, store.load_checkpoint, checkpoint_seconds, stop)
            return self._run(dataset, rest, test, splits, training, store, run_dir, progress, keep_weights,
                             checkpoints, stop)
        finally:  # the lock goes with the run, however it ends
            if store is not None:
                store.close()

    def _run(self, dataset, rest, test, splits, training, store, run_dir, progress, keep_weights, checkpoints,
             stop) -> SweepResult:
        done: dict[str, pd.DataFrame] = {}
        make_model = self._make_model()
        mode = selection.mode_for(self.select)

        histograms: dict[str, pd.DataFrame] = {}
        final_weights: dict[str, dict] = {}

        def finish(member, records, weights, count, total):
            records = reference.with_baseline(records, member, dataset, training)  # both engines, from the data
            histogram = _histogram(member.id, weights)
            if store:
                store.record_member(member.id, records, histogram)
            done[member.id] = records
            if histogram is not None:
                histograms[member.id] = histogram
            if keep_weights and weights:
                final_weights[member.id] = weights
            if progress:
                progress(count, total, member.id)

        def train(members):
            finished = store.completed() if store else set()
            for member in [m for m in members if m.id in finished and m.id not in done]:
                done[member.id] = store.member_records(member.id)
                stored = store.member_histogram(member.id)
                if stored is not None:
                    histograms[member.id] = stored
            todo = [m for m in members if m.id not in done]
            if todo and self._population_engine():
                records, weights = self._train_population(todo, dataset, training, make_model, checkpoints)
                for i, member in enumerate(todo):
                    finish(member, records[member.id], weights.get(member.id), i + 1, len(todo))
                return
            if todo and self.engine == "auto":
                from reglab.engine.population import unavailable

                warnings.warn(f"reglab: {unavailable()}; training one model.fit per member (the reference engine).",
                              UserWarning, stacklevel=2)
            for i, member in enumerate(todo):
                if stop():  # between members: every finished member is already in the run directory
                    from reglab.engine.checkpoints import Interrupted

                    raise Interrupted(i, len(todo), "member")
                records, model, _ = reference.train_member(member, dataset, training, make_model)
                final = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_weights} if model else None
                finish(member, records, final, i + 1, len(todo))

        def summarize(member_ids):
            epochs = selection.combine([done[m] for m in member_ids])
            members = selection.member_table(epochs)
            return epochs, members, selection.summarize(members, epochs, by=self.select, mode=mode)

        best_point: dict = {}
        evaluated: list[dict] = []
        stuck = False  # a round in which nothing could be selected: no later round can start from it
        for round_points in self._rounds:
            round_points = [space.normalize_point({**best_point, **p}) for p in round_points]
            evaluated.extend(p for p in round_points if p not in evaluated)
            members = plan.members(round_points, splits, self.seed)
            train(members)
            _, _, summary = summarize([m.id for m in members])
            try:
                best_point = selection.best(summary, self.select, warn=False)["params"]
            except selection.NothingSelectable:
                stuck = True  # the end says why
                break
        for _ in range(0 if stuck else self.refine):
            same = [p for p in evaluated if all(p.get(k) == v for k, v in best_point.items() if k != self.refine_param)]
            _, _, summary = summarize([m.id for m in plan.members(same, splits, self.seed)])
            ids = {space.point_id(p): p for p in same}
            values = [ids[pid][self.refine_param] for pid in summary["point"]]
            new = [space.normalize_point({**best_point, self.refine_param: v})
                   for v in space.refine(values, summary[f"{self.select}_mean"].where(summary["rank"].notna()).tolist(),
                                         self.refine_points)]
            new = [p for p in new if p not in same]  # the best value itself is usually among them
            evaluated.extend(new)
            train(plan.members(new, splits, self.seed))
            _, _, summary = summarize([m.id for m in plan.members(same + new, splits, self.seed)])
            try:
                best_point = selection.best(summary, self.select, warn=False)["params"]
            except selection.NothingSelectable:
                break

        all_ids = [m.id for m in plan.members(evaluated, splits, self.seed)]
        epochs, members, summary = summarize(all_ids)
        best, best_1se, nothing = selection.decisions(summary, self.select, mode)
        kept = [histograms[m] for m in all_ids if m in histograms]
        result = SweepResult(epochs=epochs, members=members, summary=summary, best=best, best_1se=best_1se,
                             diagnosis=diagnosis.diagnose(epochs),
                             histograms=pd.concat(kept, ignore_index=True) if kept else None,
                             weights=final_weights if keep_weights else None,
                             run_dir=Path(run_dir) if run_dir else None)
        if self.refit and best is not None:
            result.model, result.test = self._refit_and_test(best, dataset, rest, test, training, make_model, store)
        if store:  # the tables, summary.json, plots and report.html, from the stored files (as `reglab report`)
            from reglab.show.report import render

            store.clear_checkpoints()
            store.keep_only(all_ids)
            render(store.path, warn=False)  # the sweep has said it once already
        if nothing:  # everything is written; the caller learns that nothing was chosen, and why
            error = selection.NothingSelectable(nothing + (f" The tables and report.html in {run_dir} show each "
                                                           "configuration's records." if store else ""))
            error.result = result
            raise error
        return result

    def _population_engine(self) -> bool:
        return self.engine == "population" or (self.engine == "auto" and keras.backend.backend() == "jax")

    def _train_population(self, members, dataset, training, make_model, checkpoints=None):
        """All members through the population engine: one compiled program per architecture."""
        from reglab.engine import population

        try:
            populations, failures = population.plan_populations(members, make_model, probe=data_module.rows(dataset.x, slice(0, 1)))
            by_id = {m.id: m for m in members}
            results = {mid: reference.with_identity(pd.DataFrame([{"epoch": 0, "status": "failed", "error": error}]),
                                                    by_id[mid], 0.0) for mid, error in failures.items()}
            weights = {}
            for pop in populations:
                out, final, timing = population.train_population(pop, dataset, training, checkpoints=checkpoints)
                share = timing["seconds"] / len(pop.members)
                for member in pop.members:
                    results[member.id] = reference.with_identity(out[member.id], member, share)
                    weights[member.id] = final[member.id]
                self.last_timing = timing
            return results, weights
        except population.Unsupported as reason:
            raise ValueError(f"The population engine cannot run this sweep: {reason}. Received: engine={self.engine!r}") from None

    def _refit_and_test(self, best, dataset, rest, test, training, make_model, store):
        """Train the selected point on all non-test data; score it on the test set exactly once."""
        point = {k: v for k, v in best["params"].items()}
        member = plan.refit_member(point, rest, test, self.seed)
        stored = store.read_json("test.json") if store else None
        if stored is not None and stored.get("point_id") == best["point_id"] and (store.path / "best_model.keras").exists():
            model = keras.models.load_model(store.path / "best_model.keras", safe_mode=True)
            return model, stored["test"]
        if self._population_engine():  # a population of one: the refit takes the fast path too
            from reglab.engine.population import train_member
        else:
            train_member = reference.train_member
        records, model, scaling = train_member(member, dataset, training, make_model, validate=False)
        if model is None:
            raise RuntimeError(f"Refitting the selected point failed: {records.get('error', pd.Series(['?'])).iloc[0]}")
        model = with_preprocessing(model, scaling, dataset)
        scores = None
        if len(test):
            scores = test_scores(model, data_module.rows(dataset.x, test), data_module.rows(dataset.y, test), training,
                                 dataset)
        if store:
            store.save_model(model)
            store.write_json("test.json", {"point_id": best["point_id"], "params": point, "test": scores,
                                           "n_test": int(len(test))})
        return model, scores


def _check_inputs(model, dataset) -> None:
    """The data's feature arrays against the model's inputs (rank and fixed sizes), before any work."""
    try:
        inputs = list(model.inputs or [])
    except (AttributeError, ValueError):  # a subclassed model knows its inputs only once it is called
        return
    arrays = data_module.leaves(dataset.x)
    if not inputs:
        return
    if len(inputs) != len(arrays):
        raise ValueError(f"The model has {len(inputs)} inputs and the data {len(arrays)} feature arrays (give several "
                         f"inputs as a dict by input name or a list). Received: x with {len(arrays)} arrays")
    if isinstance(dataset.x, dict):
        names = [getattr(t, "name", None) for t in inputs]
        if set(names) == set(dataset.x):
            arrays = [dataset.x[n] for n in names]
    for tensor, array in zip(inputs, arrays):
        expected = tuple(tensor.shape)
        if len(expected) != array.ndim or any(e is not None and e != a for e, a in zip(expected[1:], array.shape[1:])):
            shown = "(samples, " + ", ".join("any" if e is None else str(e) for e in expected[1:]) + ")"
            raise ValueError(f"The features do not fit the model's input {getattr(tensor, 'name', '')!r} of shape "
                             f"{shown}. Received: x.shape={array.shape}")


def _per_output(value, allow_number=True) -> list:
    """The parts of a setting given once or per output (a dict by output name, or a list)."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    if allow_number:
        return [value]
    raise ValueError(f"`loss_weights` is a dict by output name or a list. Received: loss_weights={value!r}")


def _histogram(member_id: str, weights: dict | None) -> pd.DataFrame | None:
    """A member's final weight histograms (`reglab.kit.records.weight_histogram`), None without weights."""
    if not weights:
        return None
    rows = [row for path, values in weights.items() for row in weight_histogram(path, values)]
    frame = pd.DataFrame(rows)
    frame.insert(0, "member", member_id)
    return frame


def with_preprocessing(model, scaling, dataset):
    """Fold the training statistics into the saved model so it takes raw inputs and gives raw outputs."""
    if not scaling:
        return model
    inputs = keras.Input(model.input_shape[1:])
    x = keras.layers.Normalization(mean=scaling["x_mean"], variance=np.square(scaling["x_std"]), name="standardize")(inputs)
    outputs = model(x)
    if "y_mean" in scaling:
        outputs = keras.layers.Rescaling(scaling["y_std"], offset=scaling["y_mean"], name="unstandardize")(outputs)
    return keras.Model(inputs, outputs, name=f"{model.name}_raw_io")


def test_scores(model, x, y, training, dataset) -> dict:
    """Prediction loss (no penalty) and metrics of `model` on raw test data, in the training units."""
    prediction = model.predict(x, verbose=0)
    if dataset.task == "multi-output":  # Keras's own compiled loss: every output's, weighted as in training
        scorer = keras.Model(model.inputs, model.outputs)
        scorer.compile(loss=training.loss, loss_weights=training.loss_weights)
        loss = scorer._compile_loss(y, prediction)
        return {"loss": float(keras.ops.convert_to_numpy(loss))}
    loss_fn = keras.losses.get(training.loss)
    if dataset.task == "regression":
        # the loss is reported in the same standardized units as the validation losses
        scale = _y_scale(model)
        predicted = prediction.reshape(len(y))
        loss = float(np.mean(np.square((predicted - y) / scale)))
        return {"loss": loss, "mean_absolute_error": float(np.mean(np.abs(predicted - y)))}
    loss = float(keras.ops.convert_to_numpy(keras.ops.mean(loss_fn(y, prediction))))
    if prediction.shape[-1] == 1:
        accuracy = float(np.mean((prediction[:, 0] > 0.5).astype(int) == y))
    else:
        accuracy = float(np.mean(prediction.argmax(axis=-1) == y))
    return {"loss": loss, "accuracy": accuracy}


def _y_scale(model) -> float:
    try:
        return float(model.get_layer("unstandardize").scale)
    except ValueError:
        return 1.0

