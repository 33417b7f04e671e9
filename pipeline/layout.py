"""The on-disk layout and the records stored there: the one module that spells a path.

Every stage reads and writes through :class:`ExperimentPaths` / :class:`RepoPaths` and the typed
records below; ``dvc.yaml`` names the same files (a test checks its outs against
:data:`STAGE_OUTS`). Layout, per experiment ``E``::

    data/E/{train,val,test}_{clean,degraded}.npy  float32 (n, T), loadable with allow_pickle=False
    data/E/manifest.csv      one row per frame: split, index, every random draw
    data/E/digest.json       DataDigest: sha256 over the arrays + the params that made them
    models/E/model.keras     load with keras.saving.load_model(p, safe_mode=True)
    models/E/meta.json       ModelMeta: what was trained, on which data, how it went
    models/E/history.csv     one row per epoch
    reports/E/best_params.yaml  BestParams: the study's best tunables (tuned experiments)
    reports/E/tune/          trials.csv and plots of the study
    reports/E/metrics.json   Metrics: test-split figures of the model, baselines and bounds
    reports/E/{key_metrics.json,methods.csv,gain_by_snr.csv,figures/,audio/}
    reports/E/scores_{by_frame,by_kind,by_snr,headline,by_package}.csv  per-frame metrics and their tables
    reports/E/anchors.{csv,json,md}  outside denoisers on the test split (benchmarks/anchors_split.py)
    reports/{summary.csv,summary.md,index.html,report/}
    data/corpus/             the real-speech corpus (CorpusPaths); .cache/debian/ its .debs
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.errors import UserError

SPLITS = ("train", "val", "test")
KINDS = ("clean", "degraded")
MODEL_FILE, META_FILE = "model.keras", "meta.json"  # a model folder, also one a user passes


class DataError(UserError, ValueError):
    """Missing or inconsistent files of a stage's inputs."""


# ----------------------------------------------------------------------------- paths
@dataclass(frozen=True)
class ExperimentPaths:
    """Every file of one experiment, under the repository root `root`."""

    root: Path
    name: str

    @property
    def data(self) -> Path:
        return self.root / "data" / self.name

    def array(self, split: str, kind: str) -> Path:
        return self.data / f"{split}_{kind}.npy"

    @property
    def manifest(self) -> Path:
        return self.data / "manifest.csv"

    @property
    def digest(self) -> Path:
        return self.data / "digest.json"

    @property
    def model_dir(self) -> Path:
        return self.root / "models" / self.name

    @property
    def model(self) -> Path:
        return self.model_dir / MODEL_FILE

    @property
    def meta(self) -> Path:
        return self.model_dir / META_FILE

    @property
    def history(self) -> Path:
        return self.model_dir / "history.csv"

    @property
    def reports(self) -> Path:
        return self.root / "reports" / self.name

    @property
    def best_params(self) -> Path:
        return self.reports / "best_params.yaml"

    @property
    def tune_dir(self) -> Path:
        return self.reports / "tune"

    @property
    def metrics(self) -> Path:
        return self.reports / "metrics.json"

    @property
    def key_metrics(self) -> Path:
        return self.reports / "key_metrics.json"

    @property
    def methods(self) -> Path:
        return self.reports / "methods.csv"

    @property
    def gain_by_snr(self) -> Path:
        return self.reports / "gain_by_snr.csv"

    @property
    def scores_by_frame(self) -> Path:
        """Every method's per-frame metrics, with the frame's noise kind and SNR bucket."""
        return self.reports / "scores_by_frame.csv"

    @property
    def scores_by_kind(self) -> Path:
        return self.reports / "scores_by_kind.csv"

    @property
    def scores_by_snr(self) -> Path:
        return self.reports / "scores_by_snr.csv"

    @property
    def scores_headline(self) -> Path:
        return self.reports / "scores_headline.csv"

    @property
    def scores_by_package(self) -> Path:
        """The headline per source package of the test speech."""
        return self.reports / "scores_by_package.csv"

    @property
    def anchors_csv(self) -> Path:
        return self.reports / "anchors.csv"

    @property
    def anchors_json(self) -> Path:
        return self.reports / "anchors.json"

    @property
    def anchors_md(self) -> Path:
        return self.reports / "anchors.md"

    @property
    def figures(self) -> Path:
        return self.reports / "figures"

    @property
    def audio(self) -> Path:
        return self.reports / "audio"

    def relative(self, path: Path) -> str:
        """`path` relative to the root, POSIX-style: what committed records may carry."""
        return Path(os.path.relpath(path, self.root)).as_posix()


@dataclass(frozen=True)
class RepoPaths:
    """Files over all experiments."""

    root: Path

    def experiment(self, name: str) -> ExperimentPaths:
        return ExperimentPaths(self.root, name)

    @property
    def summary_csv(self) -> Path:
        return self.root / "reports" / "summary.csv"

    @property
    def summary_md(self) -> Path:
        return self.root / "reports" / "summary.md"

    @property
    def index_html(self) -> Path:
        return self.root / "reports" / "index.html"

    @property
    def report_assets(self) -> Path:
        return self.root / "reports" / "report"

    @property
    def optuna(self) -> Path:
        return self.root / "optuna"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def corpus(self) -> Path:
        """data/corpus/: the real-speech corpus (files: :class:`CorpusPaths`)."""
        return self.root / "data" / "corpus"

    @property
    def debian_cache(self) -> Path:
        """The corpus stage's downloaded and extracted .debs (not versioned)."""
        return self.root / ".cache" / "debian"


@dataclass(frozen=True)
class CorpusPaths:
    """Every file of a corpus folder (``data/corpus/``: see pipeline/corpus/records.py)."""

    root: Path

    def array(self, kind: str, split: str) -> Path:
        return self.root / f"{kind}_{split}.npy"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def report(self) -> Path:
        return self.root / "report.csv"

    @property
    def digest(self) -> Path:
        return self.root / "digest.json"

    @property
    def licenses(self) -> Path:
        return self.root / "LICENSES"


# What each stage writes, as ExperimentPaths / RepoPaths attribute names (dvc.yaml's outs,
# metrics and plots; tests/unit/test_dvc_yaml.py checks that they agree).
STAGE_OUTS: dict[str, tuple[str, ...]] = {
    "corpus": ("corpus",),
    "generate": ("data",),
    "tune": ("best_params", "tune_dir"),
    "train": ("model", "meta", "history"),
    "evaluate": ("figures", "audio", "methods", "metrics", "key_metrics", "gain_by_snr",
                 "scores_by_frame", "scores_by_kind", "scores_by_snr", "scores_headline",
                 "scores_by_package"),
    "anchors": ("anchors_csv", "anchors_json", "anchors_md"),
    "summary": ("summary_csv", "summary_md"),
    "report": ("index_html", "report_assets"),
}


# ----------------------------------------------------------------------------- arrays
def _paths(where: ExperimentPaths | str | os.PathLike[str]) -> ExperimentPaths:
    """An experiment's paths, or those of a ``<root>/data/<name>`` folder given directly."""
    if isinstance(where, ExperimentPaths):
        return where
    folder = Path(where)
    return ExperimentPaths(folder.parent.parent, folder.name)


def load_split(where: ExperimentPaths | str | os.PathLike[str], split: str,
               limit: int | None = None):
    """Return (clean, degraded) float32 arrays of one split, memory-mapped, optionally truncated."""
    paths = _paths(where)
    out = []
    for kind in KINDS:
        p = paths.array(split, kind)
        if not p.is_file():
            raise DataError(f"{p}: missing; run `dvc repro generate@{paths.name}` first")
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
        out.append(arr[:limit] if limit else arr)
    if out[0].shape != out[1].shape:
        raise DataError(f"{paths.data}: {split} clean/degraded shapes differ: "
                        f"{out[0].shape} vs {out[1].shape}")
    return out[0], out[1]


def save_split(folder: Path, split: str, clean: np.ndarray, degraded: np.ndarray) -> None:
    """Write one split's arrays into `folder` (a staging copy of ``data/E``)."""
    for kind, arr in zip(KINDS, (clean, degraded), strict=True):
        np.save(folder / f"{split}_{kind}.npy", arr, allow_pickle=False)


def digest_arrays(arrays: dict[str, np.ndarray], extra: str = "") -> str:
    """Content digest: the same params and code give the same bytes and so the same digest."""
    h = hashlib.sha256(extra.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- records
class Record(BaseModel):
    """A JSON/YAML file with a fixed shape: written and read only through its class."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def read(cls, path: Path, hint: str = ""):
        if not path.is_file():
            raise DataError(f"{path}: missing" + (f"; {hint}" if hint else ""))
        try:
            text = path.read_text(encoding="utf-8")
            raw = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
            return cls.model_validate(raw if raw is not None else {})
        except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: malformed {path.suffix[1:].upper()}: {err}") from None
        except ValidationError as err:
            e = err.errors()[0]
            where = ".".join(map(str, e["loc"])) or "(top level)"
            raise DataError(f"{path}: {where}: {e['msg']}") from None

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def text(self, fmt: Literal["json", "yaml"] = "json", sort_keys: bool = False) -> str:
        if fmt == "yaml":
            return yaml.safe_dump(self.dump(), sort_keys=sort_keys)
        return json.dumps(self.dump(), indent=2, sort_keys=sort_keys) + "\n"


class DataDigest(Record):
    """data/E/digest.json."""

    experiment: str
    digest: str
    seed: int
    frame_length: int
    sample_rate: int
    sizes: dict[str, int]
    config: dict[str, Any]


def read_digest(where: ExperimentPaths | str | os.PathLike[str]) -> str:
    paths = _paths(where)
    return DataDigest.read(paths.digest, f"run `dvc repro generate@{paths.name}` first").digest


class BestParams(Record):
    """reports/E/best_params.yaml: the values train applies for a tuned experiment."""

    params: dict[str, Any] = {}
    source: str | None = None  # optuna | untuned | disabled
    study: str | None = None
    storage: str | None = None
    best_value: float | None = None
    untuned_value: float | None = None
    n_trials: int | None = None


class ConfigSource(Record):
    """Where a trained model's tunable values came from."""

    source: str = "params.yaml"
    path: str | None = None
    study: str | None = None
    best_value: float | None = None
    untuned_value: float | None = None


class ModelMeta(Record):
    """models/E/meta.json. Extra keys are kept: model folders written by other versions load."""

    model_config = ConfigDict(extra="allow", frozen=True)

    experiment: str | None = None
    task: str | None = None
    sample_rate: int
    frame_length: int
    arch: str | None = None
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}
    tuned: bool = False
    config_source: ConfigSource = ConfigSource()
    budget: dict[str, Any] = {}
    seed: int | None = None
    params_hash: str | None = None
    data_digest: str | None = None
    mlflow_run_id: str | None = None
    mlflow_model_id: str | None = None
    best_val_loss: float | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    train_seconds: float | None = None
    samples_per_second: float | None = None
    stopped_by: str | None = None
    tune_best_value: float | None = None
    tune_untuned_value: float | None = None
    versions: dict[str, str] = {}


class Metrics(Record):
    """reports/E/metrics.json: flat test-split figures (`dvc metrics show`, summary, report).

    The figures every reader relies on are typed; the remaining per-method statistics are
    numbers or short strings (checked), so the file stays one flat mapping.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    experiment: str
    n_test: int
    model_gain_db: float | None
    best_classical: str
    best_classical_gain_db: float | None
    model_minus_best_classical_db: float | None
    oracle_gain_db: float | None = None
    fraction_of_oracle_gain: float | None = None
    bound: str | None = None
    bound_gain_db: float | None = None
    task_facts: list[str] = []
    data_digest: str
    model_data_digest: str | None = None
    train_run_id: str | None = None
    mlflow_run_id: str | None = None
    versions: dict[str, str] = {}

    def model_post_init(self, _context: Any) -> None:
        for key, value in (self.model_extra or {}).items():
            if not (value is None or isinstance(value, (int, float, str))):
                raise ValueError(f"{key}: a metrics value is a number or a string, "
                                 f"got {type(value).__name__}")


class CorpusDigest(Record):
    """data/corpus/digest.json: sha256 over the arrays, the params and the .deb hashes."""

    digest: str
    seed: int
    sample_rate: int
    packages: dict[str, str]
    sizes: dict[str, int]
    minutes: dict[str, float]
    params: dict[str, Any]
