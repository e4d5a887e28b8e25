"""Sampling writes: strategies, sampling runs, proxy training and scoring."""
