"""Frames of real speech and the speech_noise degradation: levels, speakers, SNRs, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import CorpusSignal, NoiseMix, SpeechNoiseDeg
from pipeline.corpus.frames import corpus_frames, music_pool
from pipeline.dsp import degradations
from pipeline.dsp.baselines import Identity, WienerSTFTNoiseTracking
from pipeline.dsp.metrics import si_sdr_db
from pipeline.dsp.mixing import active_mask
from pipeline.layout import CorpusPaths, RepoPaths

SR = 16_000


def _voice(rng, n, seconds=1.5):
    """Speech-like clips: harmonic bursts with pauses (enough for an energy VAD)."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = rng.uniform(90, 250, size=(n, 1))
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
    gate = (np.sin(2 * np.pi * rng.uniform(1.5, 3.0, size=(n, 1)) * t) > 0).astype(float)
    return (0.1 * x * gate).astype(np.float32)


@pytest.fixture
def corpus_root(tmp_path):
    """A corpus folder laid out like the corpus stage's: 8 speakers of speech, 2 music clips."""
    rng = np.random.default_rng(0)
    paths = CorpusPaths(RepoPaths(tmp_path).corpus)
    paths.root.mkdir(parents=True)
    rows = []
    for split in ("train", "val", "test"):
        clips = _voice(rng, 8)
        np.save(paths.array("speech", split), clips.reshape(-1))
        music = rng.standard_normal(2 * SR).astype(np.float32) * 0.05
        np.save(paths.array("music", split), music)
        for i in range(8):
            rows.append({"clip_id": f"{split}{i}", "kind": "speech", "package": "p",
                         "speaker": f"spk{i % 4}", "split": split, "source": f"s{i}.ogg",
                         "seconds": clips.shape[1] / SR, "start": i * clips.shape[1],
                         "length": clips.shape[1]})
        rows.append({"clip_id": f"{split}m", "kind": "music", "package": "p", "speaker": "m",
                     "split": split, "source": "m.ogg", "seconds": 2.0, "start": 0,
                     "length": 2 * SR})
    pd.DataFrame(rows).to_csv(paths.manifest, index=False)
    return tmp_path


def test_frames_have_the_drawn_level_and_the_speaker_of_their_first_clip(corpus_root):
    cfg = CorpusSignal(level_db=(-30.0, -20.0))
    frames, draws = corpus_frames(cfg, "train", 50, 4096, SR, np.random.default_rng(1), corpus_root)
    assert frames.shape == (50, 4096) and frames.dtype == np.float32
    rms_db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1))
    np.testing.assert_allclose(rms_db, draws["level_db"], atol=1e-3)
    assert ((draws["level_db"] >= -30) & (draws["level_db"] <= -20)).all()
    clip_len = int(1.5 * SR)
    assert (draws["speaker"] == np.array([f"spk{(s // clip_len) % 4}" for s in draws["start"]])).all()
    again, _ = corpus_frames(cfg, "train", 50, 4096, SR, np.random.default_rng(1), corpus_root)
    np.testing.assert_array_equal(frames, again)


def test_a_missing_corpus_and_a_too_long_frame_are_clear_errors(corpus_root, tmp_path):
    with pytest.raises(Exception, match="build the corpus first"):
        corpus_frames(CorpusSignal(), "train", 4, 1024, SR, np.random.default_rng(0), tmp_path / "x")
    with pytest.raises(Exception, match="fewer than one frame"):
        corpus_frames(CorpusSignal(), "train", 4, 10**7, SR, np.random.default_rng(0), corpus_root)
    assert music_pool("train", 3, 10**6, np.random.default_rng(0), corpus_root) is None


def test_speech_noise_hits_the_active_snr_and_babble_never_uses_the_own_speaker(corpus_root):
    rng = np.random.default_rng(2)
    frames, draws = corpus_frames(CorpusSignal(), "val", 64, 8192, SR, rng, corpus_root)
    deg = SpeechNoiseDeg(snr_db=(0.0, 10.0), noises=NoiseMix(music={"weight": 1.0}))
    music = music_pool("val", 4, 8192, rng, corpus_root)
    noisy, d = degradations.apply(deg, frames, rng, sample_rate=SR, speakers=draws["speaker"],
                                  music=music)
    assert noisy.shape == frames.shape and noisy.dtype == np.float32
    assert set(d["noise_kind"]) <= set(NoiseMix().kinds())
    act = active_mask(frames, SR)
    err = noisy - frames
    snr = 10 * np.log10(np.sum((frames * act) ** 2, 1) / np.sum((err * act) ** 2, 1))
    # the achieved SNR is what the manifest records; it is the drawn one unless the noise is
    # silent over the speech (a burst gap), where the gain cap keeps the noise finite
    np.testing.assert_allclose(snr, d["snr_db_active"], atol=0.2)
    hit = np.abs(d["snr_db_active"] - d["snr_db"]) < 0.2
    assert hit.mean() > 0.9 and set(d["noise_kind"][~hit]) <= {"bursts", "am", "clicks"}
    for i in np.flatnonzero(d["noise_kind"] == "babble"):
        rows = [r for r in d["noise_knobs"][i]["talker_rows"] if r >= 0]
        assert rows and all(draws["speaker"][r] != draws["speaker"][i] for r in rows)
    json.dumps(list(d["noise_knobs"]))  # the manifest stores them as JSON


def test_speech_noise_needs_the_sample_rate():
    with pytest.raises(ValueError, match="sample rate"):
        degradations.apply(SpeechNoiseDeg(), np.zeros((2, 256), np.float32), np.random.default_rng(0))


def test_apply_long_on_one_recording_leaves_out_babble_and_music():
    x = _voice(np.random.default_rng(3), 1, seconds=3.0)[0]
    y = degradations.apply_long(SpeechNoiseDeg(snr_db=(5.0, 5.0)), x, np.random.default_rng(0),
                                8192, SR)
    assert y.shape == x.shape and not np.allclose(x, y)


def test_the_tracking_wiener_beats_doing_nothing_on_stationary_noise():
    rng = np.random.default_rng(4)
    clean = _voice(rng, 40, seconds=1.0)
    noisy = clean + 0.03 * rng.standard_normal(clean.shape).astype(np.float32)
    w = WienerSTFTNoiseTracking().fit(clean[:20], noisy[:20])
    gain = si_sdr_db(w(noisy[20:]), clean[20:]) - si_sdr_db(Identity()(noisy[20:]), clean[20:])
    assert gain.mean() > 3.0, w.params
