"""Deciding, from the members' tables alone: the constant-predictor baseline, selection (best, one standard
error), diagnosis, the `Outcome` every report is made of, and the refit of the chosen point, tested once.

May import `reglab.kit`, `reglab.search`, `reglab.data` and `reglab.engine` (the refit trains); never the
store, `show` or the sweep."""
