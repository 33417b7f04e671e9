"""Model shapes, serialization and losses: the contracts train/evaluate rely on."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from pipeline.config import ModelCfg, TrainCfg
from pipeline.config.model import (
    MODEL_CFGS,
    MlpCfg,
    PrefilterCfg,
    SeedEncoderDecoderCfg,
    StftMaskCfg,
    UnetCfg,
    tunable_names,
)
from pipeline.nn.architectures import BUILDERS, build_model, unet_plan
from pipeline.nn.layers import (
    FFT_MIN_TAPS,
    EdgeBlend,
    FixedFIR,
    MaskedISTFT,
    PhaseAdvance,
    Spectrogram,
    SubPixel1D,
)
from pipeline.nn.losses import ReconLoss, make_loss

ARCHS = ("unet", "seed_encoder_decoder")
MODEL = TypeAdapter(ModelCfg)


def tiny(arch: str, **kw):
    """A small config of `arch`; only the size knobs that architecture has."""
    cls = {c.model_fields["arch"].default: c for c in MODEL_CFGS}[arch]
    base = {"depth": 3, "filters": 4, "kernel_size": 5}
    return cls(**{**{k: v for k, v in base.items() if k in cls.model_fields}, **kw})


def frames(n: int, t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.5, (n, t, 1)).astype(np.float32)


@pytest.fixture(scope="module", params=ARCHS)
def model(request) -> keras.Model:
    keras.utils.set_random_seed(1)
    return build_model(tiny(request.param, residual=False, normalize=False), frame_length=100)


@pytest.mark.parametrize("t", [100, 1024, 37, 1])
def test_any_frame_length_keeps_shape(model, t):
    y = model(frames(2, t), training=False)
    assert tuple(y.shape) == (2, t, 1)
    assert np.isfinite(np.asarray(y)).all()


def test_linear_output_can_go_negative(model):
    # The seed's sigmoid head could never emit the negative half of a waveform.
    head = model.get_layer("head")
    assert head.activation is keras.activations.linear
    kernel, bias = head.get_weights()
    head.set_weights([kernel, bias - 5.0])
    try:
        assert (np.asarray(model(frames(4, 100), training=False)) < 0).all()
    finally:
        head.set_weights([kernel, bias])


@pytest.mark.parametrize("arch", ARCHS)
def test_residual_net_starts_as_identity(arch):
    m = build_model(tiny(arch, residual=True, normalize=True), frame_length=100)
    x = frames(3, 100)
    np.testing.assert_allclose(np.asarray(m(x, training=False)), x, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_normalize_makes_mapping_level_independent(arch):
    keras.utils.set_random_seed(2)
    m = build_model(tiny(arch, residual=False, normalize=True), frame_length=100)
    x = frames(2, 100)
    y = np.asarray(m(x, training=False))
    for gain in (0.1, 7.0):
        np.testing.assert_allclose(
            np.asarray(m(gain * x, training=False)), gain * y, rtol=1e-3, atol=1e-5 * gain
        )


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_safe_mode_round_trip(arch, tmp_path):
    extra = {"batch_norm": True} if arch == "unet" else {}  # the seed net has none
    cfg = tiny(arch, dropout=0.1, residual=True, normalize=True, **extra)
    m = build_model(cfg, frame_length=100)
    # Perturb all weights so a silently re-initialised layer would show up as a difference.
    m.set_weights([w + 0.01 * np.ones_like(w) for w in m.get_weights()])
    path = tmp_path / "model.keras"
    m.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    x = frames(3, 77)
    np.testing.assert_array_equal(
        np.asarray(m(x, training=False)), np.asarray(loaded(x, training=False))
    )


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_compiled_model_with_custom_loss_reloads(tmp_path):
    m = build_model(tiny("unet"), frame_length=64)
    m.compile(optimizer="adam", loss=make_loss(TrainCfg(loss="snr")))
    path = tmp_path / "m.keras"
    m.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded.loss, ReconLoss)
    assert loaded.loss.kind == "snr"


def test_loss_config_of_files_saved_with_the_retired_stft_term_still_loads():
    old = {"kind": "l1", "stft_weight": 0.0, "fft_sizes": [64, 128, 256], "name": "recon_l1"}
    loss = ReconLoss.from_config(old)
    assert loss.kind == "l1" and loss.get_config()["kind"] == "l1"
    with pytest.warns(UserWarning, match="retired"):
        ReconLoss.from_config({**old, "stft_weight": 0.5})


def test_too_deep_for_frame_is_refused():
    with pytest.raises(ValueError, match="lower model.depth"):
        build_model(tiny("unet", depth=8), frame_length=100)


def test_unet_plan_doubles_filters_with_cap_and_shrinks_odd_kernels():
    plan = unet_plan(UnetCfg(depth=6, filters=32, kernel_size=9))
    assert [f for f, _ in plan] == [32, 64, 128, 256, 256, 256]
    assert [k for _, k in plan] == [9, 5, 3, 3, 3, 3]


def test_subpixel_interleaves_channels_into_time():
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 4)  # t0: 0 1 2 3, t1: 4 5 6 7
    y = np.asarray(SubPixel1D(2)(x))
    assert y.shape == (1, 4, 2)
    np.testing.assert_array_equal(y[0], [[0, 1], [2, 3], [4, 5], [6, 7]])


@pytest.mark.parametrize("kind", ["mse", "l1", "snr"])
def test_losses_are_finite(kind):
    loss = make_loss(TrainCfg(loss=kind))
    y = frames(4, 100)
    for y_hat in (0.9 * y, y, np.zeros_like(y)):
        value = float(loss(y, y_hat))
        assert np.isfinite(value), kind


def test_sample_losses_match_numpy():
    y, y_hat = frames(3, 50, seed=1), frames(3, 50, seed=2)
    mse = float(make_loss(TrainCfg(loss="mse"))(y, y_hat))
    l1 = float(make_loss(TrainCfg(loss="l1"))(y, y_hat))
    assert mse == pytest.approx(np.mean((y - y_hat) ** 2), rel=1e-5)
    assert l1 == pytest.approx(np.mean(np.abs(y - y_hat)), rel=1e-5)


def test_snr_loss_equals_hand_computed_value():
    y = np.array([[1.0, -2.0, 2.0], [0.5, 0.5, 0.5]], dtype=np.float32)[..., None]
    y_hat = np.array([[1.0, -2.0, 1.0], [0.0, 0.5, 0.5]], dtype=np.float32)[..., None]
    # frame 1: signal 9, error 1 -> -10 log10(9); frame 2: signal 0.75, error 0.25 -> -10 log10(3)
    expected = np.mean([-10 * np.log10(9.0), -10 * np.log10(3.0)])
    value = float(make_loss(TrainCfg(loss="snr"))(y, y_hat))
    assert value == pytest.approx(expected, abs=1e-4)


def test_one_training_step_is_finite():
    keras.utils.set_random_seed(3)
    m = build_model(tiny("unet"), frame_length=64)
    m.compile(optimizer="adam", loss=make_loss(TrainCfg(loss="snr")))
    x = frames(8, 64)
    before = [w.copy() for w in m.get_weights()]
    loss = m.train_on_batch(x, 0.5 * x)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, m.get_weights(), strict=True))


# ----------------------------------------------------------------------------- mlp and stft_mask
def test_mlp_needs_its_frame_length():
    with pytest.raises(ValueError, match="frame_length"):
        build_model(tiny("mlp"))
    m = build_model(tiny("mlp", filters=8, depth=2), frame_length=100)
    assert tuple(m(frames(2, 100), training=False).shape) == (2, 100, 1)
    with pytest.raises(ValueError):
        m(frames(2, 99), training=False)


def test_mlp_residual_starts_as_identity_and_is_level_independent():
    m = build_model(tiny("mlp", filters=8, depth=2, residual=True), frame_length=100)
    x = frames(3, 100)
    np.testing.assert_allclose(np.asarray(m(x, training=False)), x, atol=1e-5)
    keras.utils.set_random_seed(3)
    m = build_model(tiny("mlp", filters=8, depth=2, residual=False), frame_length=100)
    y = np.asarray(m(x, training=False))
    np.testing.assert_allclose(np.asarray(m(5.0 * x, training=False)), 5.0 * y, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize(
    "t, n_fft, overlap",
    # T a multiple of the hop, as PadToMultiple makes it inside the model. The nets use hop
    # n_fft/4; the layers keep a `hop` argument (saved configs carry it), so others are checked.
    [(t, n, o) for t in (64, 1024) for n in (64, 256) for o in (2, 4, 8) if t % (n // o) == 0],
)
def test_unit_mask_reconstructs_every_sample_exactly(t, n_fft, overlap):
    # The padding by n_fft - hop keeps the first and last samples under all windows too.
    x = frames(2, t)
    hop = n_fft // overlap
    re, im, _ = Spectrogram(n_fft, hop)(x)
    assert re.shape[1] == (t + 2 * (n_fft - hop) - n_fft) // hop + 1
    y = np.asarray(MaskedISTFT(n_fft, hop)([re, im, keras.ops.ones_like(re)]))
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1e-5)


@pytest.mark.parametrize("t", [1024, 1000, 37, 1])
def test_stft_mask_any_length_starts_open_and_is_level_independent(t):
    m = build_model(tiny("stft_mask", n_fft=64, filters=8, depth=1), frame_length=1024)
    x = frames(2, t)
    y = np.asarray(m(x, training=False))
    assert y.shape == x.shape and np.isfinite(y).all()
    # Untrained: mask = sigmoid(4) everywhere, so the output is the input scaled by it.
    np.testing.assert_allclose(y, x / (1 + np.exp(-4.0)), atol=1e-4)
    np.testing.assert_allclose(np.asarray(m(3.0 * x, training=False)), 3.0 * y, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("arch", ["mlp", "stft_mask", "stft_mask_phase"])
def test_new_archs_save_and_load_in_safe_mode(arch, tmp_path):
    extra = {"n_fft": 64} if arch.startswith("stft_mask") else {}
    if arch == "stft_mask_phase":
        arch, extra = "stft_mask", {**extra, "phase_features": True}
    m = build_model(tiny(arch, filters=8, depth=2, dropout=0.1, **extra), frame_length=128)
    m.set_weights([w + 0.01 * np.ones_like(w) for w in m.get_weights()])
    m.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    x = frames(3, 128)
    np.testing.assert_array_equal(np.asarray(m(x, training=False)), np.asarray(loaded(x, training=False)))


def test_stft_mask_trains_towards_lower_loss():
    keras.utils.set_random_seed(4)
    cfg = tiny("stft_mask", n_fft=64, filters=16, depth=1, kernel_size=3)
    m = build_model(cfg, frame_length=256)
    m.compile(optimizer=keras.optimizers.Adam(3e-3), loss=make_loss(TrainCfg(loss="snr")))
    t = np.arange(256) / 256
    clean = np.sin(2 * np.pi * 8 * t)[None, :, None].repeat(32, 0).astype(np.float32)
    noisy = clean + frames(32, 256, seed=5)
    hist = m.fit(noisy, clean, epochs=15, batch_size=16, verbose=0).history["loss"]
    assert hist[-1] < hist[0] - 1.0


@pytest.mark.parametrize("offset", [0.0, 0.25, -0.4])
@pytest.mark.parametrize("overlap", [4, 8])
def test_phase_advance_of_a_steady_partial_is_its_offset_from_the_bin_centre(offset, overlap):
    # A partial offset by `offset` bins advances 2 pi / overlap * offset more per hop than the
    # bin centre does.
    n, k, t = 64, 9, 1024
    hop = n // overlap
    x = np.sin(2 * np.pi * (k + offset) / n * np.arange(t))[None, :, None].astype(np.float32)
    re, im, _ = Spectrogram(n, hop)(x)
    feats = np.asarray(PhaseAdvance(n, hop)([re, im]))
    bins = n // 2 + 1
    assert feats.shape == (1, re.shape[1], 2 * bins)
    np.testing.assert_array_equal(feats[0, 0], 0.0)  # no predecessor
    angle = np.arctan2(feats[0, 8:-8, bins + k], feats[0, 8:-8, k])  # away from the padded edges
    np.testing.assert_allclose(angle, 2 * np.pi / overlap * offset, atol=1e-3)


def test_masked_istft_refuses_the_retired_complex_mask():
    re, im, _ = Spectrogram(64)(frames(1, 256))
    one = keras.ops.ones_like(re)
    with pytest.raises(ValueError, match="complex masks were retired"):
        MaskedISTFT(64)([re, im, one, 0.0 * one])


def test_stft_mask_with_phase_features_starts_as_the_plain_one():
    x = frames(2, 256)
    plain = build_model(tiny("stft_mask", n_fft=64, filters=8, depth=1), frame_length=256)
    rich = build_model(tiny("stft_mask", n_fft=64, filters=8, depth=1, phase_features=True),
                       frame_length=256)
    assert rich.count_params() > plain.count_params()
    np.testing.assert_allclose(np.asarray(rich(x, training=False)), np.asarray(plain(x, training=False)),
                               atol=1e-5)
    # The phase advances (2 per bin) skip the wide conv: a 1x1 projection adds them.
    bins = 64 // 2 + 1
    assert tuple(rich.get_layer("conv_0").kernel.shape) == (5, bins, 8)
    assert tuple(rich.get_layer("phase_in").kernel.shape) == (1, 2 * bins, 8)
    assert rich.get_layer("stft").hop == 64 // 4


# ----------------------------------------------------------------------------- prefilter channel
def _odd_extend(v: np.ndarray, p: int) -> np.ndarray:
    return np.concatenate([2 * v[:1] - v[p:0:-1], v, 2 * v[-1:] - v[-2 : -p - 2 : -1]])


@pytest.mark.parametrize("taps", [1, 3, 9])
def test_fixed_fir_is_convolution_of_the_odd_extended_frame(taps):
    rng = np.random.default_rng(7)
    h = rng.normal(size=taps).astype(np.float32)
    x = frames(3, 40)
    y = np.asarray(FixedFIR(h)(x))
    half = taps // 2
    ref = np.stack([np.convolve(_odd_extend(x[i, :, 0], half) if half else x[i, :, 0], h, "valid")
                    for i in range(3)])
    np.testing.assert_allclose(y[..., 0], ref, atol=1e-5)


@pytest.mark.parametrize("taps, t", [(65, 40), (511, 1024), (511, 300), (511, 2000), (127, 5)])
def test_fixed_fir_by_fft_equals_the_direct_convolution(taps, t):
    # Long filters go through the FFT path (taps >= FFT_MIN_TAPS), frames shorter than the
    # filter included: the same odd extension, the same 'valid' samples.
    assert taps >= FFT_MIN_TAPS
    rng = np.random.default_rng(taps + t)
    h = (rng.normal(size=taps) / taps).astype(np.float32)
    x = frames(2, t)
    y = np.asarray(FixedFIR(h)(x))
    half = taps // 2
    idx = lambda k: np.clip(k, 0, t - 1)  # noqa: E731  (the layer clips reflections of short frames)
    ref = []
    for v in x[..., 0].astype(np.float64):
        ext = np.concatenate([2 * v[0] - v[idx(np.arange(half, 0, -1))], v,
                              2 * v[-1] - v[idx(t - 1 - np.arange(1, half + 1))]])
        ref.append(np.convolve(ext, h, "valid"))
    np.testing.assert_allclose(y[..., 0], np.stack(ref), atol=2e-5)


def test_fixed_fir_keeps_a_line_intact_at_the_edges_and_takes_short_frames():
    # Odd reflection continues a straight line exactly, so a unit-DC-gain filter leaves it alone.
    h = np.hanning(11)[1:-1] / np.hanning(11)[1:-1].sum()
    line = np.linspace(-1, 1, 64, dtype=np.float32)[None, :, None]
    np.testing.assert_allclose(np.asarray(FixedFIR(h)(line)), line, atol=1e-5)
    short = np.asarray(FixedFIR(h)(frames(2, 3)))
    assert short.shape == (2, 3, 1) and np.isfinite(short).all()
    with pytest.raises(ValueError, match="odd"):
        FixedFIR([1.0, 2.0])


def test_unet_with_prefilter_starts_as_identity_and_survives_safe_mode(tmp_path):
    h = np.zeros(9, np.float32)
    h[4], h[3], h[5] = 2.0, 0.5, 0.5
    cfg = tiny("unet", depth=2, filters=4, prefilter=PrefilterCfg(taps=9))
    m = build_model(cfg, frame_length=64, prefilter=h)
    assert "prefilter" in [layer.name for layer in m.layers]
    x = frames(2, 64)
    np.testing.assert_allclose(np.asarray(m(x, training=False)), x, atol=1e-6)
    m.set_weights([w + 0.01 for w in m.get_weights()])
    m.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(m(x, training=False)))
    with pytest.raises(ValueError, match="unet"):
        build_model(tiny("seed_encoder_decoder"), prefilter=h)
    with pytest.raises(ValueError, match="needs that many FIR taps"):
        build_model(cfg, frame_length=64)  # taps are designed by train, not guessed here
    with pytest.raises(ValueError, match="needs that many FIR taps"):
        build_model(cfg, frame_length=64, prefilter=h[:7])
    with pytest.raises(ValueError, match="no model.prefilter"):
        build_model(tiny("unet", depth=2, filters=4), frame_length=64, prefilter=h)
    with pytest.raises(ValidationError, match="prefilter"):
        MODEL.validate_python({"arch": "stft_mask", "prefilter": {"taps": 9}})
    with pytest.raises(ValidationError, match="odd"):
        MODEL.validate_python({"arch": "unet", "prefilter": {"taps": 8}})


def test_edge_blend_takes_the_input_at_the_ends_and_the_prefiltered_inside():
    x, g = np.zeros((1, 20, 1), np.float32), np.ones((1, 20, 1), np.float32)
    w = np.asarray(EdgeBlend(4)([x, g]))[0, :, 0]
    np.testing.assert_allclose(w[:6], [0, 0.25, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(w[::-1], w)
    short = np.asarray(EdgeBlend(4)([x[:, :3], g[:, :3]]))[0, :, 0]
    np.testing.assert_allclose(short, [0, 0.25, 0])


def test_unet_prefilter_channel_is_faded_to_the_input_at_the_frame_ends():
    h = np.zeros(9, np.float32)
    h[4] = 2.0  # doubles the input
    cfg = tiny("unet", depth=2, filters=4, prefilter=PrefilterCfg(taps=9, ramp=8))
    m = build_model(cfg, frame_length=64, prefilter=h)
    channel = keras.Model(m.input, m.get_layer("edge_blend").output)
    y = np.asarray(channel(np.ones((1, 60, 1), np.float32)))[0, :, 0]
    expected = [1.0, 1.5, 2.0, 2.0, 2.0, 1.0]
    np.testing.assert_allclose(y[[0, 4, 8, 30, 51, 59]], expected, atol=1e-4)  # unit-RMS frames
    np.testing.assert_allclose(np.asarray(m(np.ones((1, 60, 1)), training=False)), 1.0, atol=1e-5)


# ----------------------------------------------------------------------------- typed configs
def test_every_architecture_config_has_a_builder_and_only_its_own_knobs():
    assert set(BUILDERS) == set(MODEL_CFGS)
    assert isinstance(MODEL.validate_python({"arch": "mlp"}), MlpCfg)
    assert isinstance(MODEL.validate_python({"arch": "seed_encoder_decoder"}), SeedEncoderDecoderCfg)
    with pytest.raises(ValidationError, match="kernel_size"):  # the mlp's builder never read it
        MODEL.validate_python({"arch": "mlp", "kernel_size": 3})
    with pytest.raises(ValidationError, match="batch_norm"):
        MODEL.validate_python({"arch": "stft_mask", "batch_norm": True})
    with pytest.raises(ValidationError, match="arch"):
        MODEL.validate_python({"arch": "transformer"})
    with pytest.raises(TypeError, match="no builder"):
        build_model(PrefilterCfg(taps=3))


def test_tunable_names_are_the_architectures_own_fields_plus_train():
    assert tunable_names(MlpCfg()) == ["dropout", "normalize", "depth", "filters", "residual",
                                       "learning_rate", "batch_size", "loss"]
    assert "kernel_size" in tunable_names(StftMaskCfg())
    assert "n_fft" not in tunable_names(UnetCfg()) and "arch" not in tunable_names(UnetCfg())


# ----------------------------------------------------------------------------- default configs
def _default_experiments():
    from helpers import ROOT

    from pipeline.config import load_params

    return ROOT, load_params(ROOT / "params.yaml").experiments


@pytest.mark.parametrize("name", sorted(_default_experiments()[1]))
def test_each_default_config_builds_saves_and_reloads_in_safe_mode(name, tmp_path):
    exp = _default_experiments()[1][name]
    h = None
    if isinstance(exp.model, UnetCfg) and exp.model.prefilter is not None:
        h = np.eye(1, exp.model.prefilter.taps, exp.model.prefilter.taps // 2)[0]
    keras.utils.set_random_seed(5)
    m = build_model(exp.model, frame_length=exp.frame_length, prefilter=h)
    m.set_weights([w + 0.01 * np.ones_like(w) for w in m.get_weights()])
    m.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    x = frames(2, exp.frame_length)
    np.testing.assert_array_equal(np.asarray(m(x, training=False)),
                                  np.asarray(loaded(x, training=False)))


@pytest.mark.parametrize("name", sorted(_default_experiments()[1]))
def test_trained_models_saved_by_earlier_versions_load_and_predict(name):
    """models/E/model.keras (DVC outputs, absent in a fresh clone) written by the code of
    before the split of pipeline.nn.models: registered names and layer configs still match.
    AUDIORECON_MODELS_DIR points at another checkout's models/ (read only)."""
    root, experiments = _default_experiments()
    path = Path(os.environ.get("AUDIORECON_MODELS_DIR", root / "models")) / name / "model.keras"
    if not path.is_file():
        pytest.skip(f"{path} not trained here")
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    x = frames(2, experiments[name].frame_length)
    y = np.asarray(loaded.predict(x, verbose=0))
    assert y.shape == x.shape and np.isfinite(y).all()


# ----------------------------------------------------------------------------- spectral term
def _compressed_numpy(y: np.ndarray, n_fft: int, power: float) -> np.ndarray:
    """|STFT|^power by hand: reflect-padded centred frames, periodic Hann, hop n_fft/4."""
    from scipy.signal import get_window

    hop, w = n_fft // 4, get_window("hann", n_fft)
    x = np.pad(y[..., 0].astype(np.float64), ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    starts = np.arange(0, x.shape[1] - n_fft + 1, hop)
    segs = x[:, starts[:, None] + np.arange(n_fft)] * w
    return np.abs(np.fft.rfft(segs, axis=-1)) ** power


def test_spectral_term_matches_numpy_per_frame():
    from pipeline.nn.losses import spectral_db

    y, y_hat = frames(3, 600, seed=4), frames(3, 600, seed=5)
    c, c_hat = _compressed_numpy(y, 64, 0.3), _compressed_numpy(y_hat, 64, 0.3)
    expected = 10 * np.log10(((c - c_hat) ** 2).sum(axis=(1, 2)) / (c**2).sum(axis=(1, 2)))
    np.testing.assert_allclose(np.asarray(spectral_db(y, y_hat, 64, 0.3)), expected, atol=1e-3)


def test_spectral_term_ignores_level_and_sign_but_not_added_noise():
    """Level-free like the SNR loss; blind to a sign flip (phase), which the SNR loss punishes."""
    from pipeline.nn.losses import spectral_db

    y = frames(2, 2048, seed=6)
    noisy = y + 0.3 * frames(2, 2048, seed=7)
    np.testing.assert_allclose(np.asarray(spectral_db(y, noisy)),
                               np.asarray(spectral_db(10 * y, 10 * noisy)), atol=1e-3)
    assert np.all(np.asarray(spectral_db(y, -y)) < -60)
    assert np.all(np.asarray(spectral_db(y, noisy)) > -30)
    assert float(make_loss(TrainCfg(loss="snr"))(y, -y)) > 0  # the SNR loss sees the flip


def test_loss_with_spectral_term_adds_weight_times_it_and_round_trips():
    from pipeline.config.model import SpectralLossCfg
    from pipeline.nn.losses import spectral_db

    y, y_hat = frames(2, 512, seed=8), frames(2, 512, seed=9)
    cfg = TrainCfg(loss="snr", spectral=SpectralLossCfg(weight=0.7, n_fft=128, power=0.5))
    loss = make_loss(cfg)
    plain = float(make_loss(TrainCfg(loss="snr"))(y, y_hat))
    extra = float(np.mean(np.asarray(spectral_db(y, y_hat, 128, 0.5))))
    assert float(loss(y, y_hat)) == pytest.approx(plain + 0.7 * extra, abs=1e-4)
    again = ReconLoss.from_config(loss.get_config())
    assert (again.spectral_weight, again.spectral_n_fft, again.spectral_power) == (0.7, 128, 0.5)


def test_spectral_config_errors_name_the_key():
    with pytest.raises(ValidationError, match="spectral.n_fft"):
        TrainCfg(spectral={"n_fft": 510})
    with pytest.raises(ValidationError, match="spectral.weight"):
        TrainCfg(spectral={"weight": -1})
