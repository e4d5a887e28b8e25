"""Receivers of labeling.hooks events: enqueue scoring, retraining, the demo run."""
