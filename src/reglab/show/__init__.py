"""Showing an `Outcome` (`reglab.decide.outcome`): the tables behind the figures, PNG plots, the HTML report,
summary.json, TensorBoard export.

May import `reglab.decide`, `reglab.kit`, the store; never an engine: nothing here trains."""
