"""Sampling reads: the pool, coverage counts, strategy previews, runs; estimates and reports."""
