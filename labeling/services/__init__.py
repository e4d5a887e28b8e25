"""Writes of the labeling app, one module per area."""
