"""params.yaml schema: the real file validates; each bad value gives one message naming its key."""

from __future__ import annotations

import copy

import pytest
import yaml
from helpers import ROOT, real_params
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import ParamsError, load_params, parse_params


def test_real_params_validate():
    p = load_params(ROOT / "params.yaml")
    assert {"seed-noise", "seed-quantize", "audio-noise", "audio-bandwidth"} <= set(p.experiments)
    e = p.experiment("seed-noise")
    assert e.frame_length == 100 and e.signal.family == "sine" and e.degradation.kind == "noise"
    assert p.experiment("audio-bandwidth").degradation.factor == 4


def _bad(mutate) -> str:
    raw = copy.deepcopy(real_params())
    mutate(raw)
    with pytest.raises(ParamsError) as exc:
        parse_params(raw)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_unknown_key_suggests_the_right_one():
    msg = _bad(lambda r: r["experiments"]["seed-noise"].update(frame_lenght=100))
    assert "experiments.seed-noise.frame_lenght" in msg and "frame_length" in msg


def test_negative_frame_length():
    msg = _bad(lambda r: r["experiments"]["seed-noise"].update(frame_length=-5))
    assert "experiments.seed-noise.frame_length" in msg and "8" in msg


def test_probability_above_one():
    def mutate(r):
        r["experiments"]["seed-noise"]["degradation"]["impulse_prob"] = [0.0, 1.5]

    msg = _bad(mutate)
    assert "impulse_prob" in msg and "1.0" in msg


def test_unknown_degradation():
    msg = _bad(lambda r: r["experiments"]["seed-noise"]["degradation"].update(kind="reverb"))
    assert "degradation" in msg and "reverb" in msg and "quantize" in msg


def test_noise_needs_exactly_one_level():
    msg = _bad(lambda r: r["experiments"]["seed-noise"]["degradation"].update(snr_db=[0, 10]))
    assert "exactly one of `std` or `snr_db`" in msg


def test_factor_must_fit_the_frame():
    msg = _bad(lambda r: r["experiments"]["seed-quantize"]["degradation"].update(factor=100))
    assert "factor" in msg and "frame_length" in msg


def test_prefilter_is_a_unet_sub_block_with_odd_taps():
    def on_stft(r):
        r["experiments"]["audio-noise"]["model"]["prefilter"] = {"taps": 255}

    msg = _bad(on_stft)
    assert "experiments.audio-noise.model" in msg and "prefilter" in msg and "unknown key" in msg
    msg = _bad(lambda r: r["experiments"]["audio-bandwidth"]["model"]["prefilter"].update(taps=256))
    assert "prefilter.taps" in msg and "odd" in msg


def test_each_architecture_takes_only_its_own_knobs():
    msg = _bad(lambda r: r["experiments"]["seed-noise"]["model"].update(kernel_size=9))
    assert "experiments.seed-noise.model" in msg and "kernel_size" in msg
    msg = _bad(lambda r: r["experiments"]["audio-noise"]["model"].update(arch="cnn"))
    assert "experiments.audio-noise.model" in msg and "stft_mask" in msg


@pytest.mark.parametrize("where, key", [("model", "stft_overlap"), ("model", "mask"),
                                        ("model", "mask_max"), ("model", "feature_skip"),
                                        ("model", "global_context"), ("train", "remix_noise"),
                                        ("train", "lr_schedule"), ("train", "ema_momentum"),
                                        ("train", "stft_weight")])
def test_retired_options_are_unknown_keys(where, key):
    exp = "audio-noise" if where == "model" else "seed-noise"
    msg = _bad(lambda r: r["experiments"][exp][where].update({key: 1}))
    assert f"experiments.{exp}.{where}" in msg and key in msg and "unknown key" in msg


def test_clock_keys_are_refused_with_what_to_write_instead():
    # No clock in results: training length is epochs only; the music piece length was renamed.
    msg = _bad(lambda r: r["experiments"]["seed-noise"]["train"].update(max_seconds=60))
    assert "experiments.seed-noise.train.max_seconds" in msg and "epochs" in msg
    msg = _bad(lambda r: r["corpus"]["music_render"].update(max_seconds=30.0))
    assert "corpus.music_render.max_seconds" in msg and "piece_seconds" in msg


def test_space_key_must_be_a_tunable_of_each_tuned_experiment():
    def mutate(r):  # the tuned seed experiments are mlps: no kernel_size
        r["tune"]["space"]["kernel_size"] = {"type": "categorical", "choices": [3, 5]}

    msg = _bad(mutate)
    assert "tune.space.kernel_size" in msg and "seed-noise" in msg and "mlp" in msg
    ok = copy.deepcopy(real_params())
    ok["tune"]["space"]["kernel_size"] = {"type": "categorical", "choices": [3, 5]}
    ok["tune"]["experiments"] = []
    parse_params(ok)  # a knob of some architecture, and no tuned experiment lacks it


def test_unknown_tunable():
    msg = _bad(lambda r: r["tune"]["space"].update(momentum={"type": "float", "low": 0, "high": 1}))
    assert "momentum" in msg and "learning_rate" in msg


def test_quick_caps_sizes_and_epochs():
    raw = real_params()
    raw["base"]["quick"] = True
    p = parse_params(raw)
    e = p.experiment("audio-noise")
    assert e.sizes.train == p.quick.train and e.train.epochs <= p.quick.epochs
    assert p.tune_settings().n_trials <= p.quick.n_trials


def test_unknown_experiment_name():
    with pytest.raises(ParamsError, match="did you mean `seed-noise`"):
        load_params(ROOT / "params.yaml").experiment("seed-nois")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("base: {seed: 1\nexperiments: [", "malformed YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("base: {seed: -1}\nexperiments: {}\n", "base.seed"),
    ],
)
def test_cli_check_one_clear_error(tmp_path, text, needle):
    f = tmp_path / "params.yaml"
    f.write_text(text)
    before = sorted(tmp_path.iterdir())
    res = CliRunner().invoke(app, ["check", "--params", str(f)])
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_cli_check_valid(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(real_params()))
    res = CliRunner().invoke(app, ["check", "--params", str(f)])
    assert res.exit_code == 0, res.output
    assert "seed-quantize" in res.output
