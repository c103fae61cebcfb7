"""Showing: the tables behind the figures, PNG plots, the HTML report, TensorBoard export."""
