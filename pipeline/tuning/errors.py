"""The tune stage's errors and the trial states it counts."""

from __future__ import annotations

from optuna.trial import TrialState

from pipeline.errors import UserError

COUNTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what tune.n_trials / min_trials count


class TuneError(UserError, RuntimeError):
    """A tuning problem the user can fix (storage, search space, every trial failing)."""


class DivergedError(RuntimeError):
    """A trial's loss became NaN/inf: recorded as FAIL, the study goes on."""
