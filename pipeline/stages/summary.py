"""Stage ``summary``: one row per evaluated experiment, reports/summary.{csv,md}."""

from __future__ import annotations

import logging

import pandas as pd

from pipeline.config import Params
from pipeline.io.atomic import atomic_write_text
from pipeline.layout import DataError, Metrics, RepoPaths

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "signal", "degradation", "n_test", "input_snr_median_db", "model_gain_db",
    "best_classical", "best_classical_gain_db", "model_minus_best_classical_db",
    "oracle_gain_db", "fraction_of_oracle_gain", "bound", "bound_gain_db", "model_snr_median_db",
]


def write_summary(params: Params, repo: RepoPaths) -> pd.DataFrame:
    """One row per evaluated experiment: the headline comparison across tasks, as csv and md."""
    rows = []
    for name, exp in params.experiments.items():
        path = repo.experiment(name).metrics
        if not path.is_file():
            log.warning("%s: missing; run `dvc repro evaluate@%s` (left out of the summary)",
                        path, name)
            continue
        m = Metrics.read(path).dump()
        rows.append({"experiment": name, "signal": exp.signal.family,
                     "degradation": exp.degradation.kind,
                     **{c: m.get(c) for c in SUMMARY_COLUMNS[2:]}})
    if not rows:
        raise DataError(f"{repo.summary_csv.parent}: no experiment has a metrics.json; run "
                        "`dvc repro evaluate` first")
    table = pd.DataFrame(rows).set_index("experiment")[SUMMARY_COLUMNS]
    atomic_write_text(repo.summary_csv, table.to_csv(float_format="%.4g"))
    shown = table.astype(object).where(table.notna(), None)  # tabulate's missingval wants None
    md = (
        "# audiorecon summary\n\n"
        "Test-split mean per-frame SNR gain (dB) over the degraded input. `best_classical` is "
        "the DSP baseline with the highest gain on the val split; `fraction_of_oracle_gain` is "
        "model gain / oracle gain (sine family only).\n\n"
        + shown.to_markdown(floatfmt=".2f", missingval="-") + "\n"
    )
    atomic_write_text(repo.summary_md, md)
    return table
