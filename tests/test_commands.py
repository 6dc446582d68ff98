"""The command line: evaluate, export, import-reference, raster, sim's checks and bad input."""

import subprocess
import sys

import numpy as np
import pytest

from bs4nn.cli import COMMANDS, main
from bs4nn.model import packing
from bs4nn.model.network import DEFAULT_WEIGHTS, Layer, Network


@pytest.fixture
def weights(tmp_path):
    rng = np.random.default_rng(11)
    path = tmp_path / "w.npz"
    Network((Layer(rng.choice([-1, 1], (20, 784)), np.full(20, 12)),
             Layer(rng.choice([-1, 1], (10, 20)), np.full(10, 2))), {"dataset": "mnist"}).save(path)
    return path


def test_evaluate_prints_summary_and_writes_predictions(weights, tmp_path, capsys):
    predictions = tmp_path / "p.csv"
    assert main(["evaluate", "--weights", str(weights), "--limit", "50",
                 "--predictions", str(predictions)]) == 0
    out = capsys.readouterr().out
    assert "strict accuracy 0." in out and "lenient, paper-style" in out
    rows = predictions.read_text().splitlines()
    assert rows[0] == "index,label,predicted,decision_step,fired"
    assert len(rows) == 51
    assert rows[1].startswith("0,7,")


def test_bad_weights_give_one_line_and_status_1(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    assert main(["evaluate", "--weights", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "not a readable weights file" in err[0]


def test_input_size_mismatch(tmp_path, capsys):
    path = tmp_path / "small.npz"
    Network((Layer(np.ones((2, 5)), np.zeros(2, dtype=int)),)).save(path)
    assert main(["evaluate", "--weights", str(path)]) == 1
    assert "network takes 5 inputs but mnist images have 784 pixels" in capsys.readouterr().err


def test_no_traceback_from_the_installed_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bs4nn.cli", "evaluate", "--weights",
                             str(tmp_path / "none.npz")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"bs4nn evaluate: error: {tmp_path / 'none.npz'}: " \
                                    "no such weights file"


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_export_writes_rom_layout(weights, tmp_path):
    out = tmp_path / "rom"
    assert main(["export", "--weights", str(weights), "--lanes", "8", "-o", str(out)]) == 0
    network = Network.load(weights)
    layer0 = (out / "layer0.hex").read_text().split()
    assert len(layer0) == 784 * 3  # ceil(20 / 8) lane groups per input
    expected = packing.column_rom_words(network.layers[0].bits, 8)
    assert [int(word, 16) for word in layer0] == expected
    layer1 = (out / "layer1.hex").read_text().split()
    assert [int(word, 16) for word in layer1] == packing.row_rom_words(network.layers[1].bits)
    assert (out / "thresholds0.hex").read_text().split() == ["00c"] * 20


def test_export_rejects_bad_lanes(weights, tmp_path, capsys):
    assert main(["export", "--weights", str(weights), "--lanes", "21", "-o",
                 str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == ("bs4nn export: error: lanes must be between 1 "
                                               "and 20 (0 means all), got 21")


def test_import_reference(tmp_path, capsys):
    rng = np.random.default_rng(5)
    w0 = rng.normal(size=(600, 784, 1))
    w0[0, 0, 0] = 0.0
    w1 = rng.normal(size=(10, 600, 1))
    np.save(tmp_path / "w0.npy", w0)
    np.save(tmp_path / "w1.npy", w1)
    out = tmp_path / "ref.npz"
    assert main(["import-reference", str(tmp_path / "w0.npy"), str(tmp_path / "w1.npy"),
                 "--factors", "4.1", "9", "-o", str(out)]) == 0
    network = Network.load(out)
    assert network.sizes == [784, 600, 10]
    assert network.layers[0].thresholds.tolist() == [24] * 600  # floor(100 / 4.1)
    assert network.layers[1].thresholds.tolist() == [11] * 10
    assert network.layers[0].signs[0, 0] == 1  # 0 counts as +1
    assert np.array_equal(network.layers[1].signs, np.where(w1[:, :, 0] >= 0, 1, -1))


@pytest.mark.parametrize(("factors", "message"), [
    (["4", "0"], "factor must be positive"),
    (["4"], "2 weight arrays but 1 factors"),
    (["0.1", "9"], "thresholds must lie in 0..783"),
])
def test_import_reference_bad_input(tmp_path, capsys, factors, message):
    np.save(tmp_path / "w0.npy", np.ones((6, 784, 1)))
    np.save(tmp_path / "w1.npy", np.ones((10, 6, 1)))
    out = tmp_path / "ref.npz"
    assert main(["import-reference", str(tmp_path / "w0.npy"), str(tmp_path / "w1.npy"),
                 "--factors", *factors, "-o", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_raster_png(weights, tmp_path):
    out = tmp_path / "raster.png"
    assert main(["raster", "--weights", str(weights), "--index", "3", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_command_has_a_module_and_help(capsys):
    import importlib
    import importlib.util

    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    for name, (module_name, description) in COMMANDS.items():
        assert f"  {name:17} {description}" in usage
        if name == "train" and importlib.util.find_spec(module_name) is None:
            continue  # bs4nn.commands.train arrives with the trainer's own change
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments) and callable(module.run)
        with pytest.raises(SystemExit) as exit_status:
            main([name, "--help"])
        assert exit_status.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: bs4nn {name}")


def test_the_shipped_weights_are_found_from_any_folder(tmp_path, monkeypatch, capsys):
    assert DEFAULT_WEIGHTS.is_absolute() and DEFAULT_WEIGHTS.is_file()
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--limit", "20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{DEFAULT_WEIGHTS} (784-600-10) on mnist test: strict accuracy")


def test_another_dataset_gets_one_warning(tmp_path, capsys):
    path = tmp_path / "fashion.npz"
    rng = np.random.default_rng(2)
    Network((Layer(rng.choice([-1, 1], (12, 784)), np.full(12, 9)),
             Layer(rng.choice([-1, 1], (10, 12)), np.full(10, 2))),
            {"dataset": "fashion-mnist"}).save(path)
    assert main(["evaluate", "--weights", str(path), "--limit", "10"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (f"bs4nn evaluate: warning: {path} was trained on fashion-mnist, "
                            f"not mnist\n")
    assert "strict accuracy" in captured.out


def test_same_dataset_gets_no_warning(weights, capsys):
    assert main(["evaluate", "--weights", str(weights), "--limit", "10"]) == 0
    assert capsys.readouterr().err == ""


def test_a_text_file_named_npz_is_not_called_pickled(tmp_path, capsys):
    text = tmp_path / "notes.npz"
    text.write_text("these are not weights\n")
    assert main(["evaluate", "--weights", str(text)]) == 1
    assert capsys.readouterr().err == (f"bs4nn evaluate: error: {text}: not a readable weights "
                                       f"file (not a zip archive, as an .npz file is)\n")


def test_sim_refuses_unknown_tests_before_building(capsys):
    assert main(["sim", "mnist"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("bs4nn sim: error: unknown test 'mnist' (choose from "
                                   "mnist_inference, ")


def test_sim_checks_n_against_the_test_set_before_building(tmp_path, capsys):
    assert main(["sim", "mnist_inference", "--n", "20000", "--build-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("bs4nn sim: error: --n 20000: the mnist test set has 10000 "
                            "images\n")
    assert list(tmp_path.iterdir()) == []
