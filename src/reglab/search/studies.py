"""Optuna studies as populations: trials asked several at a time, trained together with k-fold CV, told their fold mean.

`Sweep(model, search=Optuna(space, n_trials=32, population=8))`: reglab asks the study for `population`
trials (Optuna's ask-and-tell), trains them as one population — every trial on every fold —, reports each
trial's fold mean of the selection quantity at every epoch as its intermediate values, and tells the study
the fold mean at the last epoch; then asks for the next `population`, until `n_trials` are told. Between
rounds the sampler sees every result; within a round it sees the trials asked but not yet told (Optuna's
TPE lies for them by default — `constant_liar` —, so the trials of one round spread out).

With `Sweep(prune="halving")` the round's `population` trials start together and are halved inside their
population (`reglab.search.halving`): a trial stopped at a rung is told PRUNED at once (its fold means so far
reported first), one that trains every epoch its last fold mean, and each freed slot goes to a trial asked
then (`more`) — the sampler has seen every trial that stopped —, admitted into the running population without
compiling again (`reglab.engine.admission`), until `n_trials` are asked; a trial the population cannot take
(another architecture) trains in the next round. With `prune="optuna"` the study's own pruner decides inside
the population (`Pruning`): after every epoch each trial reports its fold mean and `should_prune()` stops all
its folds; freed slots are refilled the same way. The round's first trials train side by side, so a pruner
that compares with completed trials (a median pruner) prunes none of them; the trials asked into freed slots
are judged against those that completed. The sweep's decision is reglab's: the best and the one-standard-error
points among the trials that trained every epoch, whatever the study says is best.

A sweep whose study lives in a storage (`storage="sqlite:///study.db"`, with `study_name`) shows in
`optuna-dashboard`. Trials a stopped or killed run of the sweep left RUNNING are told FAIL when it runs again
(no zombie trials; another process's running trials of the same study are left alone); a sweep run again counts
the rounds it finished (its trials are marked with its spec hash, their round and their ask's number), replays
the round it was stopped in — each ask gives the point it gave before, a trial told before the stop is kept as
told, one left running is asked again with its point (`enqueue_trial`) —, asks with a sampler seeded from its
`seed` and the ask's number when the sampler is named by the sweep, and trains only what its run directory
lacks — a population stopped mid-training goes on from its checkpoint, the trials it had taken into freed slots
with it: the same decisions as a sweep never stopped (tested).

>>> search = Optuna({"l2": {"log_uniform": [1e-5, 1e-1]}, "dropout": [0.0, 0.3]}, n_trials=4, population=2)
>>> search.to_config()["optuna"]["space"]
{'l2': {'log_uniform': [1e-05, 0.1]}, 'dropout': {'choice': [0.0, 0.3]}}
>>> trials = search.strategy(select="val_loss", mode="min", seed=0)
>>> points = trials.ask(None)
>>> len(points), sorted(points[0])
(2, ['dropout', 'l2'])
"""

from __future__ import annotations

import math

from reglab import validation
from reglab.search import space as space_module
from reglab.search.halving import Turns, fold_mean, seated
from reglab.search.space import point_id

SAMPLERS = {  # Optuna's samplers by name (a sampler object is accepted too)
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "gp": "GPSampler",
    "cmaes": "CmaEsSampler",
    "qmc": "QMCSampler",
    "nsga2": "NSGAIISampler",
}


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ValueError(
            "search=Optuna(...) needs Optuna: pip install 'reglab[optuna]'. Received: search=Optuna(...)"
        ) from None
    return optuna


class Optuna:
    """An Optuna study as the sweep's search.

    Args:
        space: `{key: distribution}` as for `Sweep(random=...)` (`LogUniform`, `Uniform`, `Choice`, their
            configs, or a list of choices).
        n_trials: trials to tell in all.
        population: trials asked at once and trained together (each on every fold).
        sampler: "tpe" (default), "random", "gp", "cmaes", "qmc", or an Optuna sampler object; a sampler
            named here is seeded from the sweep's `seed` and the round (so a resumed sweep asks what it asked).
        study: an `optuna.Study` to ask (instead of `sampler`, `storage` and `study_name`); its direction
            must be the selection's ("minimize" for `val_loss`).
        storage, study_name: where Optuna keeps the study (an RDB URL such as "sqlite:///study.db"); loaded
            if it exists. None (the default) keeps it in memory.
        objectives: two or more quantities to optimize at once, the sweep's `select` first — e.g.
            `["val_loss", "zeros"]`: validation loss against exact sparsity (`zeros`, the entries exactly 0.0 in the
            trained weights, maximized; a validation metric or `train_penalty` works too). The study is then
            multi-objective (`sampler="nsga2"` is NSGA-II), each trial told every objective's fold mean, and the
            sweep's result and report show the Pareto front (`reglab.decide.pareto`); the choice stays reglab's, by
            `select`. Optuna keeps no intermediate values for such a study (`prune="optuna"` is refused; halving
            still judges by `select`). None (the default): one objective, `select`.
    """

    def __init__(
        self,
        space,
        n_trials=32,
        population=8,
        sampler="tpe",
        study=None,
        storage=None,
        study_name=None,
        objectives=None,
    ):
        if not isinstance(space, dict) or not space:
            raise ValueError(f"`space` is a non-empty dict of distributions. Received: space={space!r}")
        self.space = {str(k): space_module.distribution(v, k) for k, v in space.items()}
        self.n_trials = validation.number(n_trials, "n_trials", low=1, integer=True)
        self.population = validation.number(population, "population", low=1, integer=True)
        if isinstance(sampler, str):
            if sampler not in SAMPLERS:
                raise ValueError(
                    f"`sampler` is one of {list(SAMPLERS)} or an Optuna sampler. Received: sampler={sampler!r}"
                )
        elif not hasattr(sampler, "sample_independent"):
            raise ValueError(
                f"`sampler` is one of {list(SAMPLERS)} or an Optuna sampler. Received: sampler={sampler!r}"
            )
        if study is not None:
            if not hasattr(study, "ask") or not hasattr(study, "tell"):
                raise ValueError(f"`study` is an optuna.Study. Received: study={study!r}")
            if storage is not None or study_name is not None or sampler != "tpe":
                raise ValueError(
                    "A study given is asked as it is: leave `sampler`, `storage` and `study_name` out. "
                    f"Received: sampler={sampler!r}, storage={storage!r}, study_name={study_name!r}"
                )
        for name, value in (("storage", storage), ("study_name", study_name)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"`{name}` is a string. Received: {name}={value!r}")
        self.sampler, self.study, self.storage, self.study_name = sampler, study, storage, study_name
        self.objectives = _objectives(objectives)

    def to_config(self) -> dict:
        """JSON-ready (`Sweep.get_config`); a sampler or study object by its class name (pass it again to rebuild)."""
        sampler = self.sampler if isinstance(self.sampler, str) else type(self.sampler).__name__
        if self.study is not None:
            sampler = type(self.study.sampler).__name__
        return {
            "optuna": {
                "space": {k: d.to_config() for k, d in self.space.items()},
                "n_trials": self.n_trials,
                "population": self.population,
                "sampler": sampler,
                **({"study": self.study.study_name} if self.study is not None else {}),
                **({"storage": self.storage} if self.storage is not None else {}),
                **({"study_name": self.study_name} if self.study_name is not None else {}),
                **({"objectives": self.objectives} if self.objectives else {}),
            }
        }

    @classmethod
    def of(cls, search) -> "Optuna | None":
        """`Sweep(search=…)`: an `Optuna`, its config (`{"optuna": {...}}`, the TOML's `[search] optuna`) or None."""
        if search is None or isinstance(search, cls):
            return search
        if isinstance(search, dict) and set(search) == {"optuna"} and isinstance(search["optuna"], dict):
            settings = dict(search["optuna"])
            if "study" in settings:
                raise ValueError(
                    f"This config names a study object ({settings['study']!r}): pass search=Optuna(..., study=...) "
                    f"again. Received: search={search!r}"
                )
            known = {"space", "n_trials", "population", "sampler", "storage", "study_name", "objectives"}
            unknown = sorted(set(settings) - known)
            if unknown or "space" not in settings:
                raise ValueError(
                    f"[search] optuna takes `space` and {sorted(known - {'space'})}. "
                    f"Received: {'unknown ' + str(unknown) if unknown else 'no space'}"
                )
            if settings.get("sampler", "tpe") not in SAMPLERS:
                raise ValueError(
                    f"`sampler` is one of {list(SAMPLERS)} in a config. Received: sampler={settings['sampler']!r}"
                )
            return cls(**settings)
        raise ValueError(f"`search` is reglab.search.Optuna(...) or {{'optuna': {{...}}}}. Received: search={search!r}")

    def example_point(self) -> dict:
        """A point of the space (each distribution's lower end or first choice): what the sweep checks its keys
        on and builds its first model from before any trial is asked."""
        return space_module.normalize_point(
            {k: d.values[0] if isinstance(d, space_module.Choice) else d.low for k, d in self.space.items()}
        )

    def strategy(self, select: str, mode: str, seed: int, tag: str | None = None, modes=None) -> "Trials":
        """The ask/tell strategy of one run; `tag` (the sweep's spec hash) marks its trials in a stored study, so
        that the sweep run again counts the trials it told before and asks only the rest. `modes`: with
        `objectives`, "min" or "max" for each (`reglab.decide.pareto.direction`)."""
        return Trials(self, select, mode, seed, tag, modes)


def _objectives(objectives) -> list[str] | None:
    """Two or more distinct quantities a trial's fold mean is taken of (`reglab.decide.pareto`), or None."""
    if objectives is None:
        return None
    names = list(objectives) if isinstance(objectives, (list, tuple)) else None
    plain = ("zeros", "train_loss", "train_penalty")
    if (
        not names
        or len(names) < 2
        or len(set(names)) != len(names)
        or not all(isinstance(n, str) and (n in plain or n.startswith("val_")) for n in names)
    ):
        raise ValueError(
            "`objectives` lists two or more distinct quantities, the sweep's `select` first: validation quantities "
            f"('val_loss', 'val_accuracy', …), {list(plain)}. Received: objectives={objectives!r}"
        )
    return names


def _distribution(optuna, d):
    if isinstance(d, space_module.LogUniform):
        return optuna.distributions.FloatDistribution(d.low, d.high, log=True)
    if isinstance(d, space_module.Uniform):
        return optuna.distributions.FloatDistribution(d.low, d.high)
    return optuna.distributions.CategoricalDistribution(d.values)


class Trials:
    """The ask/tell strategy of an `Optuna` search (`reglab.search.strategies`' protocol): `ask(summary, curves)`
    tells the study the trials of the round before (from the sweep's summary and per-epoch curves) and asks
    the next round's, or returns None when `n_trials` are told."""

    def __init__(self, search: Optuna, select: str, mode: str, seed: int, tag: str | None = None, modes=None):
        optuna = self.optuna = _optuna()
        self.search, self.select = search, select
        self.objectives = search.objectives or [select]
        modes = [mode] if search.objectives is None else modes
        if len(modes or []) != len(self.objectives):
            raise ValueError(f"A mode per objective ('min' or 'max'). Received: modes={modes!r}")
        directions = ["minimize" if m == "min" else "maximize" for m in modes]
        if search.study is not None:
            self.study = search.study
            given = [d.name.lower() for d in self.study.directions]
            if given != directions:
                raise ValueError(
                    f"The study's directions must be the objectives': {directions} for {self.objectives}. "
                    f"Received: directions={given!r}"
                )
        else:
            # an in-memory study is the sweep's own: Optuna's line announcing it (and its random name) is noise in
            # the sweep's output; a stored one is announced, it is the user's to find again
            verbosity = optuna.logging.get_verbosity()
            if search.storage is None:
                optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
            try:
                self.study = optuna.create_study(
                    storage=search.storage,
                    sampler=None if isinstance(search.sampler, str) else search.sampler,
                    study_name=search.study_name,
                    directions=directions,
                    load_if_exists=True,
                )
            finally:
                optuna.logging.set_verbosity(verbosity)
        state = optuna.trial.TrialState
        self.tag, self.seed = tag, seed
        mine = [t for t in self.study.get_trials(deepcopy=False) if tag and t.user_attrs.get("reglab_sweep") == tag]
        running = [t for t in mine if t.state == state.RUNNING]
        for trial in running:  # this sweep's, stopped: never left running (another process's are its own)
            self.study.tell(trial.number, state=state.FAIL)
        # each of this sweep's asks (its round, its number): the last trial asked for it (a stopped round's trials
        # were asked again when it was replayed)
        asks = {(t.user_attrs.get("reglab_round", 0), t.user_attrs.get("reglab_ask", t.number)): t for t in mine}
        # the round a stopped run left unfinished (a trial of its was running): its asks are replayed in order — the
        # same points, those told already not told again (`_next`) —, so that it goes as it would have gone
        stopped = max((t.user_attrs.get("reglab_round", 0) for t in running), default=None)
        self.replay = [t for key, t in sorted(asks.items()) if key[0] == stopped]
        before = [key for key in asks if key[0] != stopped]  # rounds finished: their members are in the run directory
        self.earlier = [space_module.normalize_point(asks[key].params) for key in sorted(before)]
        self.asked = 1 + max((k for _, k in before), default=-1)
        self.round = max((r for r, _ in before), default=-1)  # the round being asked and trained
        # a sampler named by the sweep is seeded afresh for each ask from the sweep's seed and the ask's number: a
        # sweep run again (resumed) asks what it asked before, whatever its study holds of killed rounds
        named = search.study is None and isinstance(search.sampler, str)
        self.sampler_class = getattr(optuna.samplers, SAMPLERS[search.sampler]) if named else None
        self.distributions = {k: _distribution(optuna, d) for k, d in search.space.items()}
        self.pending: list[tuple[object, dict]] = []  # (trial, point) asked and not yet told
        self.told: set[int] = set()  # trial numbers of the pending told already (as they stopped, `stopped`)
        self.deferred: set[int] = set()  # trial numbers a round could not train, trained in the next
        self.reported: dict[int, set] = {}  # trial number -> the epochs reported while it trained (`Pruning`)

    def ask(self, summary, curves=None):
        if self.replay and self.pending:  # the stopped round's last asks, never reached (stored before it stopped)
            return [self._next() for _ in range(len(self.replay))]
        if self.pending:
            self._tell(summary, curves)
        self.round += 1
        if self.pending:  # trials planned late that their round's population could not take: the next round's
            return list({point_id(p): p for _, p in self.pending}.values())
        if self.asked >= self.search.n_trials:
            return None
        for _ in range(min(self.search.population, self.search.n_trials - self.asked)):
            self._next()
        earlier, self.earlier = self.earlier, []  # trained already: the sweep finds them in its run directory
        return list({point_id(p): p for p in [*earlier, *(p for _, p in self.pending)]}.values())

    def more(self, again: dict | None = None) -> dict | None:
        """One trial asked now — a slot freed during a round (`Sweep(prune="halving")`) — or None when `n_trials`
        are asked. The sampler has been told every trial that stopped so far (`stopped`). `again`: the point of a
        trial asked before the checkpoint a population resumes from (its replayed trial, or one asked for it)."""
        if again is not None:
            return self._next(again)
        return self._next() if self.replay or self.asked < self.search.n_trials else None

    def _next(self, again: dict | None = None) -> dict:
        """Ask the study for a trial (or, replaying a stopped round, take its next trial's point again; `again`:
        for this point)."""
        replayed = [point_id(space_module.normalize_point(t.params)) for t in self.replay]
        if again is not None and point_id(again) not in replayed:
            self.study.enqueue_trial(dict(again), skip_if_exists=False)  # a study that did not keep it
        elif self.replay:
            before = self.replay.pop(0 if again is None else replayed.index(point_id(again)))
            point = space_module.normalize_point(before.params)
            if before.state.is_finished() and before.state != self.optuna.trial.TrialState.FAIL:  # told before it
                # stopped: kept as it was told, not asked again
                self.pending.append((before, point))
                self.told.add(before.number)
                self.asked += 1
                return point
            self.study.enqueue_trial(dict(before.params), skip_if_exists=False)
        elif self.sampler_class is not None:
            self.study.sampler = self.sampler_class(seed=(self.seed * 1_000_003 + self.asked) % 2**32)
        trial = self.study.ask(self.distributions)
        point = space_module.normalize_point(trial.params)
        trial.set_user_attr("reglab_point", point_id(point))
        if self.tag:
            trial.set_user_attr("reglab_sweep", self.tag)
            trial.set_user_attr("reglab_round", self.round)
            trial.set_user_attr("reglab_ask", self.asked)
        self.pending.append((trial, point))
        self.asked += 1
        return point

    def stopped(self, curve: dict, point: str, how: str, epochs: int) -> None:
        """A trial whose members all stopped during the round (halving's `over`): its fold means so far (`curve`,
        epoch → value) reported as intermediate values and `how` "pruned" told PRUNED, "done" told its fold mean at
        the last of `epochs` (FAIL where a fold did not train every epoch: diverged). Told now, so that the next
        `more` is sampled knowing it; a study with several objectives (some only known after training) is told at
        the round's end."""
        state = self.optuna.trial.TrialState
        if how not in ("pruned", "done") or len(self.objectives) > 1:
            return
        for trial, p in self.pending:
            if point_id(p) != point or trial.number in self.told:
                continue
            self._report(trial, curve.items())
            if how == "pruned":
                self.study.tell(trial, state=state.PRUNED)
            else:
                value = curve.get(epochs, math.nan)
                self.study.tell(trial, value) if math.isfinite(value) else self.study.tell(trial, state=state.FAIL)
            self.told.add(trial.number)

    def _report(self, trial, values) -> None:
        done = self.reported.setdefault(trial.number, set())  # those the pruner was given already
        for epoch, value in values:
            if math.isfinite(value) and int(epoch) not in done:
                trial.report(float(value), step=int(epoch))
                done.add(int(epoch))

    def pruning(self, members, epochs: int, more=None, over=None) -> "Pruning":
        """The study's pruner inside this round's population (`Sweep(prune="optuna")`), as the engine's slots."""

        def trials():
            out = {}
            for trial, point in self.pending:
                out.setdefault(point_id(point), trial)  # two trials asking for one point: the first reports
            return out

        return Pruning(trials, members, epochs, self.select, self.reported, more, over)

    def _tell(self, summary, curves) -> None:
        """Tell the round's trials not told yet; a trial the round could not train (planned late, not admitted to
        its population) stays pending for the next round, once."""
        state = self.optuna.trial.TrialState
        rows = {row["point"]: row for row in summary.to_dict("records")}
        left = []
        for trial, point in self.pending:
            pid = point_id(point)
            row = rows.get(pid)
            if trial.number in self.told:
                continue
            if row is None and trial.number not in self.deferred:
                self.deferred.add(trial.number)
                left.append((trial, point))
                continue
            if curves is not None and len(self.objectives) == 1:  # every epoch's fold mean, as intermediate values
                self._report(trial, curves[curves["point"] == pid][["epoch", self.select]].itertuples(index=False))
            if row is None or row["failed"] or row["diverged"]:
                self.study.tell(trial, state=state.FAIL)
            elif row["pruned"]:
                self.study.tell(trial, state=state.PRUNED)
            else:  # a quantity the records lack (a metric not compiled, zeros not recorded): NaN, told FAIL
                values = [float(row.get(f"{o}_mean", math.nan)) for o in self.objectives]
                if all(math.isfinite(v) for v in values):
                    self.study.tell(trial, values if len(values) > 1 else values[0])
                else:
                    self.study.tell(trial, state=state.FAIL)
        self.pending, self.told = left, set()


class Pruning(Turns):
    """Optuna's pruner deciding inside a population (`Sweep(prune="optuna")`): after every epoch each trial still
    training reports its fold mean at its own epoch (all its folds having recorded it) and, if
    `trial.should_prune()`, its slots are emptied — its members stop there. The round's trials start together; with
    `more` (`Turns`) each freed slot goes to a trial asked then, and each trial is told as it stops (`over`), so a
    pruner that compares with completed trials (a median pruner) judges the later trials against the first ones,
    inside one population. A trial told before a stopped run (a replayed round) is pruned where it was. `size`
    and `decide(epoch, board)` are the engine's slots (`reglab.engine.slots`)."""

    def __init__(self, trials, members, epochs: int, select: str, reported: dict, more=None, over=None):
        from optuna.trial import FrozenTrial

        super().__init__(members, epochs, more, over)
        self.frozen = FrozenTrial  # a trial told before the run stopped, replayed
        self.trials, self.select, self.reported = trials, select, reported
        self.size = len(members)

    def decide(self, epoch: int, board) -> dict:
        changes = {}
        self._admitted(board)
        trials = self.trials()
        for pid, slots in seated(board, self.members).items():
            own = board.local(slots[0], epoch)
            trial = trials.get(pid)
            value = fold_mean(self.members, self.points[pid], own, board, self.select)
            if trial is None or not math.isfinite(value) or own >= self.epochs:
                continue  # a fold diverged or failed: it stops on its own; the last epoch: trained in full
            if isinstance(trial, self.frozen):  # told before the run stopped (a replayed round): pruned where it was
                prune = trial.state.name == "PRUNED" and own == max(trial.intermediate_values, default=0)
            else:
                trial.report(value, step=own)
                self.reported.setdefault(trial.number, set()).add(own)
                prune = trial.should_prune()
            if prune:
                changes.update({slot: None for slot in slots})
                self._over(board, pid, "pruned")
        self._refill(board, changes)
        return changes
