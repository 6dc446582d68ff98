"""The weights file: round trips, bit packing and every way a file can be bad."""

import json
import zipfile

import numpy as np
import pytest

from bs4nn.model import packing
from bs4nn.model.errors import UserError
from bs4nn.model.network import Layer, Network


@pytest.fixture
def net():
    rng = np.random.default_rng(3)
    return Network((Layer(rng.choice([-1, 1], (6, 13)), rng.integers(0, 13, 6)),
                    Layer(rng.choice([-1, 1], (3, 6)), rng.integers(0, 6, 3))),
                   {"dataset": "test", "seed": 3})


def test_round_trip(tmp_path, net):
    path = tmp_path / "w.npz"
    net.save(path)
    back = Network.load(path)
    assert back.sizes == [13, 6, 3]
    assert back.metadata == {"dataset": "test", "seed": 3}
    for a, b in zip(net.layers, back.layers, strict=True):
        assert np.array_equal(a.signs, b.signs)
        assert np.array_equal(a.thresholds, b.thresholds)
    with np.load(path, allow_pickle=False) as archive:
        assert archive["layer0_bits"].shape == (6, 2)


def test_bit_order_is_little_endian_per_row():
    bits = np.zeros((1, 10), dtype=bool)
    bits[0, [0, 9]] = True
    assert packing.pack_rows(bits).tolist() == [[1, 2]]
    assert np.array_equal(packing.unpack_rows(packing.pack_rows(bits), 10), bits)


def test_column_rom_words_lane_layout():
    # 5 neurons, 2 inputs, 2 lanes -> 3 groups per input; neuron 4's lane group is padded.
    bits = np.array([[1, 0], [0, 0], [1, 1], [0, 1], [1, 0]], dtype=bool)
    words = packing.column_rom_words(bits, lanes=2)
    assert words == [0b01, 0b01, 0b01, 0b00, 0b11, 0b00]


def test_pixel_beats_and_results():
    assert packing.pixel_beats(np.array([1, 2, 3], dtype=np.uint8), 2) == [0x0201, 0x03]
    word = packing.pack_result(10, predicted=7, decision_step=256, fired=1, error=0)
    assert packing.unpack_result(10, word) == {"predicted": 7, "decision_step": 256,
                                               "fired": 1, "error": 0}
    with pytest.raises(ValueError, match="predicted=16"):
        packing.pack_result(10, predicted=16, decision_step=0, fired=0, error=0)
    # The MNIST result word (15 bits) travels in a 16-bit TDATA.
    assert sum(width for _, width in packing.result_fields(10)) == 15
    assert [packing.tdata_width(bits) for bits in (1, 8, 9, 15, 16, 17)] == [8, 8, 16, 16, 16, 24]


def rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays.update(changes)
    for name in [name for name, value in changes.items() if value is None]:
        del arrays[name]
    np.savez(path, **arrays)


@pytest.mark.parametrize(("changes", "message"), [
    ({"format_version": np.array(99)}, "unknown format version 99"),
    ({"layer1_bits": None}, "layer 1 is missing"),
    ({"layer0_bits": np.zeros((6, 3), dtype=np.uint8)}, "layer 0 bits have shape"),
    ({"layer0_thresholds": np.full(6, 13)}, "thresholds must lie in 0..12"),
    ({"layer1_thresholds": np.full(6, 1)}, "6 neurons has \\(6,\\) thresholds|has \\(6,\\)"),
    ({"layer_sizes": np.array([13, 7, 3])}, "layer 0 bits have shape"),
    ({"metadata": np.array("{not json")}, "metadata is not valid JSON"),
    ({"layer_sizes": None}, "not a bs4nn weights file"),
])
def test_bad_files_name_the_file_and_problem(tmp_path, net, changes, message):
    path = tmp_path / "w.npz"
    net.save(path)
    rewrite(path, **changes)
    with pytest.raises(UserError, match=message) as error:
        Network.load(path)
    assert str(error.value).startswith(str(path))


def test_truncated_and_foreign_files(tmp_path, net):
    path = tmp_path / "w.npz"
    net.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable weights file"):
        Network.load(path)
    path.write_text("hello")
    with pytest.raises(UserError, match="not a readable weights file"):
        Network.load(path)
    with pytest.raises(UserError, match="no such weights file"):
        Network.load(tmp_path / "missing.npz")


def test_a_file_that_is_no_zip_archive_is_named_so(tmp_path):
    path = tmp_path / "w.npz"
    path.write_text("index,label\n0,7\n")
    with pytest.raises(UserError) as error:
        Network.load(path)
    assert str(error.value) == (f"{path}: not a readable weights file (not a zip archive, as "
                                f"an .npz file is)")


def test_user_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="no such weights file"):
        Network.load(tmp_path / "missing.npz")


def test_pickled_content_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, format_version=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UserError, match="not a readable weights file"):
        Network.load(path)


def test_save_leaves_no_partial_file(tmp_path, net, monkeypatch):
    path = tmp_path / "w.npz"

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert list(tmp_path.iterdir()) == []


def test_mismatched_layers_are_refused():
    with pytest.raises(UserError, match="layer 1 takes 4 inputs but layer 0 has 3 neurons"):
        Network((Layer(np.ones((3, 2)), np.zeros(3, dtype=int)),
                 Layer(np.ones((2, 4)), np.zeros(2, dtype=int))))
    with pytest.raises(UserError, match=r"\+1 or -1"):
        Layer(np.zeros((2, 2)), np.zeros(2, dtype=int))


def test_metadata_is_json(tmp_path, net):
    path = tmp_path / "w.npz"
    net.save(path)
    with zipfile.ZipFile(path) as archive:
        assert "metadata.npy" in archive.namelist()
    with np.load(path, allow_pickle=False) as archive:
        assert json.loads(str(archive["metadata"]))["seed"] == 3


def test_saved_files_are_readable_by_others(tmp_path, net):
    path = tmp_path / "w.npz"
    net.save(path)
    assert path.stat().st_mode & 0o044 == 0o044
