"""Search: the space of points, what each key of a point does, the plan of members (point × fold × seed)
and the strategies that propose points (`strategies`: ask/tell; `halving`; `studies`: Optuna's; `hypermodels`: KerasTuner's `build(hp)`).

May import `reglab.kit` and Keras; never an engine, the store, `decide` or `show` — a strategy sees only
the summary it is given."""

from reglab.search.hypermodels import HyperModel  # noqa: E402  (light: KerasTuner is imported when one is read)
from reglab.search.studies import Optuna  # noqa: E402  (light: Optuna itself is imported when a study starts)

__all__ = ["HyperModel", "Optuna"]
