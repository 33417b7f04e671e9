"""The report's own figures (matplotlib, Agg): the summary chart and training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DPI = 90


def _style():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                         "axes.spines.right": False, "font.size": 9})
    return plt


def _summary_chart(path: Path, exps: list[dict[str, Any]]) -> None:
    """Model vs best classical vs oracle gain, one group of bars per experiment."""
    import numpy as np

    plt = _style()
    keys = [("model_gain_db", "model", "tab:blue"),
            ("best_classical_gain_db", "best classical", "tab:orange"),
            ("oracle_gain_db", "oracle", "tab:green")]
    x = np.arange(len(exps))
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for j, (key, label, colour) in enumerate(keys):
        vals = [e["metrics"].get(key) for e in exps]
        ax.bar(x + (j - 1) * 0.27, [v if v is not None else 0.0 for v in vals], 0.27,
               label=label, color=colour)
    ax.set_xticks(x, [e["name"] for e in exps])
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_ylabel("mean SNR gain (dB)")
    ax.set_title("Test-split SNR gain over the degraded input (oracle: sine family only)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _loss_label(meta: dict[str, Any]) -> str:
    loss = (meta.get("train") or {}).get("loss")
    return "loss = −SNR (dB)" if loss == "snr" else f"loss ({loss})" if loss else "loss"


def _training_chart(path: Path, e: dict[str, Any]) -> None:
    plt = _style()
    h = e["history"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for col, label in (("loss", "train"), ("val_loss", "validation")):
        if col in h:
            ax.plot(h["epoch"], h[col], marker="o", ms=3, label=label)
    best = e["meta"].get("best_epoch")
    if best:
        ax.axvline(best, color="0.5", ls=":", lw=1, label=f"best epoch {best}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(_loss_label(e["meta"]))
    ax.set_title(f"{e['name']}: training curves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


SPEECH_PANELS = (("si_sdr_db", "SI-SDR (dB)"), ("pesq", "PESQ-WB"), ("stoi", "STOI"))


def _speech_chart(path: Path, e: dict[str, Any]) -> bool:
    """SI-SDR / PESQ-WB / STOI per input-SNR bucket: input, model, best classical, anchors."""
    t = e["speech"].by_snr
    panels = [(c, label) for c, label in SPEECH_PANELS if c in t and t[c].notna().any()]
    best = e["metrics"].get("best_classical")
    shown = ["input", "model", "input" if best == "identity" else best,
             *(e.get("anchor_methods") or [])]
    shown = [m for m in dict.fromkeys(shown) if m in set(t["method"])]
    if not panels or not shown:
        return False
    plt = _style()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False)
    for ax, (col, label) in zip(axes[0], panels, strict=True):
        for m in shown:
            rows = t[t["method"] == m].sort_values("snr_bucket_db")
            if rows[col].notna().any():
                ax.plot(rows["snr_bucket_db"], rows[col], marker="o", ms=3,
                        label=f"{m} (best classical)" if m == best else m)
        ax.set_xlabel("input SNR bucket (dB)")
        ax.set_ylabel(label)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{e['name']}: speech metrics per input-SNR bucket", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def make_figures(assets: Path, exps: list[dict[str, Any]]) -> dict[str, str]:
    """Draw this stage's own figures into `assets`; returns {key: file name}."""
    made = {"summary": "summary.png"}
    _summary_chart(assets / made["summary"], exps)
    for e in exps:
        h = e["history"]
        if h is not None and "epoch" in h and len(h):
            made[f"{e['name']}/training"] = f"{e['name']}-training.png"
            _training_chart(assets / made[f"{e['name']}/training"], e)
        if e.get("speech") is not None and _speech_chart(assets / f"{e['name']}-speech.png", e):
            made[f"{e['name']}/speech"] = f"{e['name']}-speech.png"
    return made


# ----------------------------------------------------------------------------- html
