"""Scoring, figures and listening examples of the evaluate stage (no TensorFlow)."""
