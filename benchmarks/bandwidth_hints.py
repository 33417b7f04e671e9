"""Is the missing band's magnitude or its phase what a bandwidth extender lacks? Oracle hints.

The experiment's own U-Net (params.yaml's model and train sections, its prefilter channel, seed
and data) is trained once per hint, with the hint as one more input channel: the clean frame's
STFT above the kept Nyquist (256-point, hop 64)

- `magnitude`: the true magnitude with a random phase per bin and STFT frame (no phase; the
  overlap-add of random phases adds incoherently, so the level is the true one times a constant);
- `phase`: the true phase with every bin at one level (no envelope), scaled to a tenth of the
  frame's RMS;
- `none`: zeros, the control (the same network and inputs, nothing handed over).

Each run prints its best val loss and the mean per-frame SNR gain over the cubic-spline input
on the val split. What a hint adds bounds what a perfect predictor of that half would add to
this family of model; the test split is never read.

    python -m benchmarks.bandwidth_hints [--experiment speech-bandwidth] [--hints none magnitude phase]
                                         [--epochs N] [--limit N]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from benchmarks.common import ROOT
from pipeline.config import load_params, resolve
from pipeline.dsp.metrics import snr_db

HINTS = ("none", "magnitude", "phase")
N_FFT = 256
HINT_SEED = 7  # the random phases of the magnitude hint


def oracle_hint(clean: np.ndarray, kind: str, rate: int, cut: float,
                rng: np.random.Generator, n_fft: int = N_FFT) -> np.ndarray:
    """The hint channel for frames `clean` (n, T): see the module docstring. float32 (n, T)."""
    from scipy.signal import istft, stft

    if kind not in HINTS:
        raise ValueError(f"hint must be one of {HINTS} (got {kind!r})")
    c = np.asarray(clean, np.float64)
    if kind == "none":
        return np.zeros(c.shape, np.float32)
    overlap = n_fft - n_fft // 4
    freqs, _, spec = stft(c, fs=rate, nperseg=n_fft, noverlap=overlap, axis=-1)
    above = (freqs >= cut)[:, None]
    mag = np.abs(spec)
    if kind == "magnitude":
        spec = mag * above * np.exp(1j * rng.uniform(-np.pi, np.pi, size=spec.shape))
    else:
        spec = above * spec / np.maximum(mag, 1e-12)
    _, h = istft(spec, fs=rate, nperseg=n_fft, noverlap=overlap)
    h = h[..., : c.shape[-1]]
    if kind == "phase":
        power = np.mean(h**2, -1, keepdims=True)
        h = h * 0.1 * np.sqrt(np.mean(c**2, -1, keepdims=True) / np.maximum(power, 1e-30))
    return h.astype(np.float32)


def hinted_unet(cfg, taps: np.ndarray, frame_length: int):
    """The experiment's U-Net (`build_unet`'s layers) with a third input channel, the hint, at
    the input's scale: inputs (degraded, hint), each (batch, T, 1)."""
    import keras
    from keras import layers

    from pipeline.nn.architectures import _unet_body
    from pipeline.nn.layers import EdgeBlend, FixedFIR, FrameRMS, Scale

    degraded = keras.Input((frame_length, 1), name="degraded")
    hint = keras.Input((frame_length, 1), name="hint")
    scale = FrameRMS(name="frame_rms")(degraded)
    x = Scale(divide=True, name="to_unit_rms")([degraded, scale])
    h = Scale(divide=True, name="hint_to_unit_rms")([hint, scale])
    g = FixedFIR(taps, name="prefilter")(x)
    if cfg.prefilter.ramp:
        g = EdgeBlend(cfg.prefilter.ramp, name="edge_blend")([x, g])
    y = _unet_body(x, cfg, layers.Concatenate(name="extra")([g, h]))
    return keras.Model([degraded, hint], Scale(name="from_unit_rms")([y, scale]), name="hinted")


def _dataset(degraded, hint, clean, batch_size: int, shuffle: bool, seed: int):
    import tensorflow as tf

    xs = (tf.constant(degraded[..., None]), tf.constant(hint[..., None]))
    y = tf.constant(clean[..., None])
    idx = tf.data.Dataset.range(len(clean))
    if shuffle:
        idx = idx.shuffle(len(clean), seed=seed, reshuffle_each_iteration=True)
    return idx.batch(batch_size).map(
        lambda i: ((tf.gather(xs[0], i), tf.gather(xs[1], i)), tf.gather(y, i))).prefetch(2)


def run_hint(r, kind: str, train, val, epochs: int) -> dict[str, Any]:
    """Train the hinted U-Net on `train` = (clean, degraded), score it on `val`."""
    import keras

    from pipeline.dsp.filters import wiener_fir
    from pipeline.nn.fit import set_determinism
    from pipeline.nn.losses import compile_model

    cfg, tcfg, seed = r.model, r.train, r.seed("train")
    rate, cut = r.exp.sample_rate, r.exp.sample_rate / (2 * r.exp.degradation.factor)
    (ct, dt), (cv, dv) = [tuple(np.asarray(a, np.float32) for a in s) for s in (train, val)]
    rng = np.random.default_rng(HINT_SEED)
    ht, hv = oracle_hint(ct, kind, rate, cut, rng), oracle_hint(cv, kind, rate, cut, rng)
    keras.backend.clear_session()  # each run from the same seed, no graphs of the last one
    set_determinism(tcfg.jit_compile)
    keras.utils.set_random_seed(seed)
    model = compile_model(hinted_unet(cfg, wiener_fir(ct, dt, cfg.prefilter.taps,
                                                      cfg.prefilter.max_gain_db), ct.shape[1]), tcfg)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=tcfg.patience,
                                               restore_best_weights=True)]
    if tcfg.lr_patience is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=tcfg.lr_patience, min_lr=1e-5))
    hist = model.fit(_dataset(dt, ht, ct, tcfg.batch_size, True, seed),
                     validation_data=_dataset(dv, hv, cv, tcfg.batch_size, False, seed),
                     epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
    estimate = model.predict([dv[..., None], hv[..., None]], batch_size=tcfg.batch_size,
                             verbose=0)[..., 0]
    gain = snr_db(estimate.astype(np.float64), cv) - snr_db(dv, cv)
    return {"hint": kind, "val_loss": [float(v) for v in hist.history["val_loss"]],
            "best_val_loss": float(min(hist.history["val_loss"])),
            "val_gain_db": float(gain.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", "-e", default="speech-bandwidth")
    ap.add_argument("--hints", nargs="+", default=list(HINTS), choices=HINTS)
    ap.add_argument("--epochs", type=int, default=None, help="default: the experiment's train.epochs")
    ap.add_argument("--limit", type=int, default=None, help="first N train and val frames only")
    a = ap.parse_args()
    r = resolve(load_params(ROOT / "params.yaml"), a.experiment, ROOT)
    if r.exp.degradation.kind != "bandwidth" or getattr(r.model, "prefilter", None) is None:
        raise SystemExit(f"{a.experiment}: needs a bandwidth experiment whose unet has a prefilter")
    from pipeline.layout import load_split

    train, val = (load_split(r.paths, s, a.limit) for s in ("train", "val"))
    print(f"{a.experiment}: {len(train[0])} train / {len(val[0])} val frames, hint above "
          f"{r.exp.sample_rate / (2 * r.exp.degradation.factor):.0f} Hz")
    for kind in a.hints:
        out = run_hint(r, kind, train, val, a.epochs or r.train.epochs)
        curve = " ".join(f"{v:.3f}" for v in out["val_loss"])
        print(f"  hint {kind:9s}: best val loss {out['best_val_loss']:.3f}, val SNR gain over the "
              f"spline {out['val_gain_db']:+.2f} dB  (val loss per epoch: {curve})", flush=True)


if __name__ == "__main__":
    main()
