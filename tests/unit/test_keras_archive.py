"""Two saves of the same weights and config give the same .keras bytes, and the file loads."""

import hashlib
import json
import zipfile

import numpy as np

from pipeline.io.keras_archive import canonical_entry, canonicalize


def _model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)  # names fixed: Keras numbers unnamed layers per process
    x = keras.Input((64, 1), name="x")
    h = keras.layers.Conv1D(4, 5, padding="same", activation="relu", name="c1")(x)
    return keras.Model(x, keras.layers.Conv1D(1, 5, padding="same", name="c2")(h), name="m")


def _as_if_saved_by_another_process(path) -> None:
    """What another run's save differs by: the clock and id() of the dtype policy."""
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    for name in ("config.json", "metadata.json"):
        entries[name] = (entries[name].decode().replace('"shared_object_id": ', '"shared_object_id": 1')
                         .replace('"date_saved": "', '"date_saved": "2031').encode())
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2031, 5, 6, 7, 8, 10)), data)


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_same_weights_same_bytes_and_the_file_loads(tmp_path):
    import keras

    a, b = _model(7), _model(7)
    pa, pb = tmp_path / "a.keras", tmp_path / "b.keras"
    a.save(pa)
    b.save(pb)
    _as_if_saved_by_another_process(pb)
    assert _md5(pa) != _md5(pb)
    canonicalize(pa)
    canonicalize(pb)
    assert _md5(pa) == _md5(pb)
    x = np.random.default_rng(0).standard_normal((2, 64, 1)).astype(np.float32)
    loaded = keras.models.load_model(pa, safe_mode=True, compile=False)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), a.predict(x, verbose=0))
    c = _model(8)  # other weights: other bytes
    pc = tmp_path / "c.keras"
    c.save(pc)
    canonicalize(pc)
    assert _md5(pc) != _md5(pa)
    with zipfile.ZipFile(pa) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_shared_object_ids_are_renumbered_keeping_the_pairs():
    config = {"layers": [{"dtype": {"shared_object_id": 140502242620496}},
                         {"dtype": {"shared_object_id": 99}},
                         {"dtype": {"shared_object_id": 140502242620496}}]}
    out = json.loads(canonical_entry("config.json", json.dumps(config).encode()))
    assert [d["dtype"]["shared_object_id"] for d in out["layers"]] == [1, 2, 1]
    meta = json.loads(canonical_entry("metadata.json", b'{"keras_version": "3", "date_saved": "x"}'))
    assert meta == {"keras_version": "3", "date_saved": "1980-01-01@00:00:00"}
    assert canonical_entry("model.weights.h5", b"\x89HDF") == b"\x89HDF"
