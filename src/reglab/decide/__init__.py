"""Deciding: the constant-predictor baseline, selection (best, one standard error) and diagnosis."""
