"""The pre-split import path, kept only for tests/integration/test_params_reads.py (not this
change's to edit); import from :mod:`pipeline.tuning` instead. Delete once that test moves."""

from pipeline.tuning import tune_experiment

__all__ = ["tune_experiment"]
