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

import keras

from reglab import data as data_module
from reglab import sweep_run, sweep_spec, validation
from reglab.engine import compile_cache, executors
from reglab.engine import training as training_module
from reglab.engine.training import Training
from reglab.result import NothingToTrain, SweepResult
from reglab.search import auto
from reglab.search import points as points_module
from reglab.validation import sweep as sweep_validation


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
        search: an Optuna study as the search (`reglab.search.Optuna(space, n_trials=…, population=…)`: trials
            asked `population` at a time, each round trained as one population, each trial told its fold mean).
        refine: rounds of coarse-to-fine refinement of `refine_param` (default: the first
            numeric parameter) around the best value, `refine_points` new values per round.
        cv: folds of k-fold cross-validation (≥ 2), or a fraction in (0, 1) for one hold-out split.
        repeats: repetitions of k-fold with different shuffles. Defaults to 1.
        stratify: stratified folds; "auto" stratifies classification. Defaults to "auto".
        test_size: fraction held out as a test set, used once after selection. Defaults to None.
        epochs, batch_size, optimizer, learning_rate: training of every member; the learning rate
            may be a `keras.optimizers.schedules.LearningRateSchedule` (counted in steps).
        loss, metrics: "auto" picks sparse categorical (or binary) cross-entropy and accuracy for
            classification — `from_logits=True` for an output layer without an activation (logits, as Keras's
            tutorials write them) —, mean squared error for regression.
        layers: which layers a plain model's penalties and dropout go on. Defaults to "hidden".
        layer_groups: `{group: layer selection}` for per-group keys such as `"l2.early"`.
        loss_weights: for a model with several outputs, each output's weight in the loss (a dict by
            output name or a list), as `model.compile(loss_weights=...)`; `loss` is then a dict or list too.
        standardize: scale features (and a regression target) with each training fold's mean
            and std. Defaults to False.
        select: the validation quantity that picks the best point. Defaults to "val_loss".
        refit: refit the chosen point on all non-test data (and score it on the test set): True (or "best") the
            best point, "1se" the one-standard-error rule's, False none. Defaults to True.
        engine: "population" (all members of an architecture in one compiled program of Keras's own
            training step, any model, run on Keras's JAX backend), "reference" (one `model.fit` per
            member, in this process, either backend) or "auto" (population). Defaults to "auto".
        executor: where populations train: "local" (this process, which must use Keras's JAX backend),
            "process" (JAX worker subprocesses, `workers` of them side by side: each gets a plain payload
            — the members' models as Keras configs and weights, never your builder —, see
            `reglab.engine.executors`) or "auto": local in a JAX process, a worker process in a
            TensorFlow or PyTorch one (with one line saying so). Defaults to "auto".
        workers: worker processes for `executor="process"`. Defaults to 1.
        prune: "halving" stops hopeless points early (`reglab.search.halving`: at rungs of `min_epochs · eta^i`
            epochs a point goes on only if its fold mean of `select` is among the best 1/`eta` there) and gives
            their slots to points not yet tried, in the same compiled population; only points that trained all
            `epochs` can be chosen. "hyperband" deals the points to brackets judged first after fewer or more
            epochs, one bracket trained in full (it hedges `min_epochs`). "optuna" (with `search=Optuna(...)`):
            the study's own pruner decides at every epoch of each round's population. Defaults to None (every
            point trains every epoch).
        eta, min_epochs: successive halving's rate (≥ 2, default 3) and first rung (default 1 epoch).
        gradients: record seed 004's two gradients for every member at each epoch's end — per regularized weight the
            norms of the prediction loss's gradient and of the penalty's, their cosine and the penalty's share
            (`reglab.kit.gradients`) — on a fixed batch, the first 256 rows of the member's training fold (or the
            number given), in inference mode. Defaults to False (it costs one forward and backward pass over that
            batch per member and epoch).
        seed: the global seed; every member's seed derives from it, the point and the fold.
    """

    def __init__(
        self,
        model,
        *,
        grid=None,
        random=None,
        n_trials=10,
        stages=None,
        search=None,
        refine=0,
        refine_param=None,
        refine_points=5,
        cv=5,
        repeats=1,
        stratify="auto",
        test_size=None,
        epochs=20,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        loss="auto",
        metrics="auto",
        loss_weights=None,
        layers="hidden",
        layer_groups=None,
        standardize=False,
        select="val_loss",
        refit=True,
        engine="auto",
        executor="auto",
        workers=1,
        prune=None,
        eta=3,
        min_epochs=1,
        gradients=False,
        seed=0,
    ):
        given = {k: v for k, v in locals().items() if k not in ("self", "model")}  # `get_config`: as given
        sweep_validation.model(model)
        self.model = model
        from reglab.models import MLP

        # "auto" entries: a placeholder here (every check runs on it), the values from the data in `run`
        _, self._auto = auto.split(grid, builder=not isinstance(model, (keras.Model, MLP)))
        checked = sweep_validation.arguments(
            seed=seed,
            grid=grid,
            random=random,
            stages=stages,
            search=search,
            n_trials=n_trials,
            refine=refine,
            refine_param=refine_param,
            refine_points=refine_points,
            cv=cv,
            repeats=repeats,
            stratify=stratify,
            test_size=test_size,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            optimizer=optimizer,
            select=select,
            engine=engine,
            executor=executor,
            workers=workers,
            prune=prune,
            eta=eta,
            min_epochs=min_epochs,
            gradients=gradients,
        )
        self.gradients = checked["gradient_rows"]
        self.halving, self.search, self.pruner = checked["halving"], checked["search"], checked["pruner"]
        self.seed, self.n_trials, self._rounds = checked["seed"], checked["n_trials"], checked["rounds"]
        self.grid, self.random, self.stages = grid, random, stages
        self.refine, self.refine_points, self.refine_param = (
            checked["refine"],
            checked["refine_points"],
            checked["refine_param"],
        )
        self.cv, self.repeats, self.stratify, self.test_size = cv, checked["repeats"], stratify, test_size
        self.epochs, self.batch_size, self.learning_rate = checked["epochs"], checked["batch_size"], learning_rate
        self.optimizer = checked["optimizer"]
        sweep_validation.with_keras(
            model, self._rounds, loss, metrics, loss_weights, layers, layer_groups, engine, executor
        )
        self.loss, self.metrics, self.loss_weights = loss, metrics, loss_weights
        self.layers = layers
        self.layer_groups = dict(layer_groups or {})
        self.standardize = bool(standardize)
        self.select = select
        if refit not in (True, False, "best", "1se"):
            raise ValueError(f"`refit` is True (the best point), '1se' or False. Received: refit={refit!r}")
        self.refit = True if refit == "best" else refit
        self.engine, self.executor, self.workers = engine, executor, checked["workers"]
        self._given, self._probe = given, None

    # --- identity ------------------------------------------------------------------------------

    def get_config(self) -> dict:
        """The constructor's arguments as given, JSON-ready, with the model as a reference (`reglab.sweep_spec`):
        `Sweep.from_config(sweep.get_config())` is the same sweep (a built model is passed again as `model=`).

        >>> import reglab.models
        >>> sweep = Sweep(reglab.models.MLP(hidden=[8]).bind(4, 3), grid={"l2": [0.0, 1e-3]}, cv=3)
        >>> config = sweep.get_config()
        >>> config["grid"], config["cv"], config["model"]["mlp"]["hidden"]
        ({'l2': [0.0, 0.001]}, 3, [8])
        >>> Sweep.from_config(config).spec_hash() == sweep.spec_hash()
        True
        """
        return sweep_spec.config(self.model, self._given)

    @classmethod
    def from_config(cls, config: dict, model=None) -> "Sweep":
        """The sweep a config describes (`get_config`, or a run directory's spec.json `config`); `model`
        replaces the config's reference (needed for a built model, whose weights a config does not hold)."""
        model, arguments = sweep_spec.arguments(config, model)
        return cls(model, **arguments)

    def spec(self) -> dict:
        """The sweep's settings as plain values, with the model's fingerprint: what the run directory hashes
        to know a re-run is the same sweep (`reglab.sweep_spec`)."""
        probe = None if hasattr(self.model, "spec") or isinstance(self.model, keras.Model) else self._probe_model()
        return sweep_spec.settings(self, sweep_spec.fingerprint(self.model, probe))

    def spec_hash(self) -> str:
        return sweep_spec.hash_of(self.spec())

    def _legacy_spec_hash(self) -> str | None:
        """The hash a run directory written with the builder's source-text fingerprint holds (it resumes)."""
        if hasattr(self.model, "spec") or isinstance(self.model, keras.Model):
            return None
        return sweep_spec.hash_of(sweep_spec.settings(self, sweep_spec.legacy_fingerprint(self.model)))

    def _probe_model(self):
        """The model of the first point that builds, built in a fresh Keras session (stable names); kept."""
        if self._probe is None:
            errors = []
            for point in self._rounds[0]:  # that point's members will be recorded as failed
                keras.backend.clear_session(free_memory=False)
                try:
                    self._probe = self._make_model()(point)
                    break
                except Exception as error:
                    errors.append(f"{point}: {error}")
            if self._probe is None:
                raise NothingToTrain(f"Every configuration failed to build; nothing to train. First error: {errors[0]}")
            if not isinstance(self._probe, keras.Model):
                raise ValueError(f"The builder must return a Keras model. Received: {type(self._probe).__name__}")
        return self._probe

    # --- running -------------------------------------------------------------------------------

    def _make_model(self):
        if isinstance(self.model, keras.Model):
            return lambda point: points_module.apply(self.model, point, self.layers, self.layer_groups)
        return self.model

    def _training(self, dataset) -> Training:
        """How members train: the sweep's settings, with the loss and metrics for the task checked against (or
        inferred from) the model's output (one probe build)."""
        if dataset.task == "multi-output" and self.loss == "auto":  # refused before anything is built
            raise ValueError(
                "Several outputs need a loss each: give `loss` as a dict by output name (or a list). "
                "Received: loss='auto'"
            )
        probe = self._probe_model()
        training_module.validate_inputs(probe, dataset)
        loss, metrics = training_module.infer_loss_and_metrics(probe, dataset, self.loss, self.metrics)
        if self.gradients and isinstance(loss, (dict, list, tuple)):
            raise ValueError(
                "`gradients` measures one prediction loss's gradient; this model has a loss per output. "
                f"Received: gradients={self._given['gradients']!r}, loss={loss!r}"
            )
        keras.backend.clear_session(free_memory=False)  # names reset; a full gc pass costs ~0.2 s
        return Training(
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            loss=loss,
            metrics=metrics,
            standardize=self.standardize,
            loss_weights=self.loss_weights,
            gradients=self.gradients,
        )

    def split(self, x, y, task="auto"):
        """The data as the sweep sees it: `(dataset, rest, test, splits)` — validated data, the indices
        outside and inside the test set, and the (fold, repeat, train, val) splits of `rest`.
        `reglab.search.plan.members(points, splits, seed)` gives the members and their data."""
        dataset = data_module.prepare(x, y, task)
        if self.standardize and dataset.structured:
            raise ValueError(
                "Standardizing several inputs or outputs is not built in: add a Normalization layer to the "
                "model instead. Received: standardize=True"
            )
        stratify = dataset.task == "classification" if self.stratify == "auto" else self.stratify
        if stratify and dataset.task != "classification":
            raise ValueError(f"Stratified folds need class labels. Received: stratify=True for a {dataset.task} target")
        data_module.validate_cv(self.cv, dataset, stratify, self.test_size)
        rest, test = data_module.split_test(dataset, self.test_size, self.seed, stratify)
        return dataset, rest, test, data_module.folds(dataset, rest, self.cv, self.repeats, self.seed, stratify)

    def run(
        self,
        x,
        y,
        run_dir=None,
        task="auto",
        progress=None,
        keep_weights=False,
        wait_for_lock=None,
        stop=None,
        checkpoint_seconds=2.0,
    ) -> SweepResult:
        """Validate the data, train every member (resuming `run_dir` if given), select, refit, test once.

        Args:
            x, y: features (array or DataFrame, rank ≥ 2) and target (classes or a regression target);
                for a model with several inputs or outputs, a dict by input / output name or a list.
            run_dir: a run directory to write (and resume); None keeps everything in memory. It is
                locked for the whole run: another process using it raises `reglab.store.RunDirectoryInUse`
                (a ValueError naming that process).
            task: "auto", "classification" or "regression".
            progress: True draws the members' progress where you are (a bar updated in place in a notebook, a
                rich bar on a terminal: `reglab.show.progress`); or a callable `(done, total, member_id)` called
                after each member.
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
            validation.number(wait_for_lock, "wait_for_lock", low=0)
        validation.number(checkpoint_seconds, "checkpoint_seconds", low=0)
        if progress is True:
            from reglab.show.progress import bar

            progress = bar()
        elif progress is not None and progress is not False and not callable(progress):
            raise ValueError(
                f"`progress` is True, False or a callable (done, total, member_id). Received: progress={progress!r}"
            )
        progress = progress or None
        if stop is not None and not callable(stop):
            raise ValueError(f"`stop` is a callable returning True to stop. Received: stop={stop!r}")
        dataset, rest, test, splits = self.split(x, y, task)
        chosen = executors.choose(self.executor, self.workers, self._engine_name())
        if (self.halving is not None or self.pruner) and not isinstance(chosen, executors.Local):
            raise ValueError(
                "Successive halving needs the population engine in this process (Keras's JAX backend: `import "
                f"reglab` before `keras`). Received: prune={'optuna' if self.pruner else self.halving.kind!r} with KERAS_BACKEND={keras.backend.backend()!r}"
            )
        if keras.backend.backend() == "jax":  # from the first build: its initializers' programs (~0.7 s) too
            compile_cache.use()
        with chosen as executor, sweep_run.engine_errors(self.engine):  # workers start now, while members are built
            training = self._training(dataset)
            ranges = None
            if self._auto:  # λ from the data: this run's grid, from its training rows and untrained model
                self._rounds, ranges = auto.resolve(self, dataset, rest, training)

            store, spec = None, None
            if run_dir is not None:
                from reglab.store import RunDirectory

                store, spec = RunDirectory(run_dir), self.spec()  # once: a builder's fingerprint reads its model
                store.open(
                    spec,
                    sweep_spec.hash_of(spec),
                    dataset.fingerprint(),
                    wait=wait_for_lock,
                    config=self.get_config(),
                    also=self._legacy_spec_hash(),
                )
            try:
                stop = stop or (lambda: False)
                checkpoints = None
                if store is not None:
                    from reglab.engine.checkpoints import Checkpoints

                    checkpoints = Checkpoints(
                        store.save_checkpoint, store.load_checkpoint, checkpoint_seconds, stop, folder=store.path
                    )
                return sweep_run.run(
                    self,
                    dataset,
                    rest,
                    test,
                    splits,
                    training,
                    store,
                    spec,
                    run_dir,
                    progress,
                    keep_weights,
                    checkpoints,
                    stop,
                    executor,
                    ranges,
                )
            finally:  # the lock goes with the run, however it ends
                if store is not None:
                    store.close()

    def _engine_name(self) -> str:
        """The engine that trains the members: "auto" is the population engine, wherever the process is."""
        return "population" if self.engine == "auto" else self.engine
