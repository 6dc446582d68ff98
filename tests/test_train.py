"""The trainer: exact forward pass, smoke training, reproducibility, resume, bad arguments."""

import argparse
import dataclasses
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from bs4nn.commands import train as train_command
from bs4nn.model import data, train
from bs4nn.model.errors import UserError
from bs4nn.model.inference import decide, infer, layer_forward
from bs4nn.model.network import NO_SPIKE, SHIPPED_WEIGHTS, Layer, Network

SMOKE = ["--train-subset", "2000", "--validation-subset", "2000", "--hidden", "100",
         "--lr", "0.01", "--batch-size", "20", "--shift", "0", "--no-progress"]
#: Smaller still, for the tests that compare bits rather than accuracy.
TINY = ["--train-subset", "600", "--validation-subset", "500", "--hidden", "40",
        "--batch-size", "50", "--shift", "1", "--calibrate", "0", "--no-progress"]


def parse(argv):
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    return parser.parse_args(argv)


def run_training(tmp_path, name, *extra, base=SMOKE):
    out = tmp_path / f"{name}.npz"
    argv = [*base, *extra, "--out", str(out), "--run-dir", str(tmp_path / name)]
    assert train_command.run(parse(argv)) == 0
    return out


def layer_arrays(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files if name.startswith("layer")}


def test_forward_matches_exact_inference():
    images, _ = data.load("mnist", "validation")
    images = images[:300]
    rng = np.random.default_rng(5)
    parameters = train.init_parameters([784, 64, 32, 10], images[:200], rng)
    # Non-integer thresholds are rounded exactly as the deployed network rounds them.
    parameters.thresholds[0] += rng.uniform(-0.4, 0.4, size=64)
    network = train.to_network(parameters)
    expected = infer(network, images)
    states = train.forward(parameters, images)
    for state, spikes in zip(states, expected.spike_times, strict=True):
        np.testing.assert_array_equal(state.spike_times, spikes)
    np.testing.assert_array_equal(decide(states[-1])[0], expected.predicted)


def test_shift_images_moves_content():
    image = np.zeros((1, 784), np.uint8)
    image[0, 14 * 28 + 14] = 200
    rng = np.random.default_rng(0)
    shifted = train.shift_images(np.repeat(image, 50, axis=0), rng, 1)
    rows, cols = np.nonzero(shifted.reshape(50, 28, 28))[1:]
    assert set(rows) == {13, 14, 15} and set(cols) == {13, 14, 15}
    assert np.all(shifted.sum(axis=1) == 200)
    assert train.shift_images(image, rng, 0) is image


def test_flip_images_mirrors_about_half_of_them():
    images = np.zeros((200, 784), np.uint8)
    images[:, 5 * 28 + 3] = 100  # row 5, column 3
    rng = np.random.default_rng(2)
    print("seed 2")
    flipped = train.flip_images(images, rng)
    mirrored = flipped[:, 5 * 28 + 24] == 100
    assert np.all(mirrored ^ (flipped[:, 5 * 28 + 3] == 100))
    assert 70 < mirrored.sum() < 130
    assert np.all(flipped.sum(axis=1) == 100)


def test_dropped_hidden_spikes_reach_no_output_and_get_no_error():
    images, labels = data.load("mnist", "validation")
    images, labels = images[:100], labels[:100]
    rng = np.random.default_rng(7)
    print("seed 7")
    parameters = train.init_parameters([784, 64, 10], images, rng)
    states = train.forward(parameters, images, dropout=0.3, rng=rng)
    hidden, output = states
    assert 0.6 < hidden.kept.mean() < 0.8
    # The output layer saw exactly the kept spikes.
    seen = np.where(hidden.kept, hidden.spike_times, NO_SPIKE)
    expected = layer_forward(seen, parameters.layer(1), is_output=True)
    np.testing.assert_array_equal(output.spike_times, expected.spike_times)
    # A neuron dropped on every image gets no gradient on its input weights.
    kept = hidden.kept.copy()
    kept[:, 0] = False
    states = [dataclasses.replace(hidden, kept=kept), layer_forward(
        np.where(kept, hidden.spike_times, NO_SPIKE), parameters.layer(1), is_output=True)]
    _, weight_grads, _ = train.snapshot_gradients(parameters, states, labels, 0.25, 3.0)
    assert not np.any(weight_grads[0][0]) and np.any(weight_grads[0][1:])


def test_calibration_never_loses_on_its_images():
    images, labels = data.load("mnist", "train")
    images, labels = images[:1000], labels[:1000]
    parameters = train.init_parameters([784, 50, 10], images[:500], np.random.default_rng(2))
    network = train.to_network(parameters)
    calibrated, before, after = train.calibrate_output_thresholds(network, images, labels)
    assert before == infer(network, images).strict_accuracy(labels)
    assert after == infer(calibrated, images).strict_accuracy(labels)
    assert after >= before
    np.testing.assert_array_equal(calibrated.layers[0].signs, network.layers[0].signs)
    np.testing.assert_array_equal(calibrated.layers[1].signs, network.layers[1].signs)


def test_evaluate_counts_hidden_neurons_silent_on_every_image():
    images, labels = data.load("mnist", "validation")
    images, labels = images[:200], labels[:200]
    signs = np.ones((3, 784), np.int8)
    signs[1] = -1  # can never exceed a non-negative threshold
    hidden = Layer(signs, np.array([10, 0, 783]))  # 783: would need more than every input
    output = Layer(np.ones((10, 3), np.int8), np.zeros(10, np.int64))
    figures = train.evaluate(Network((hidden, output)), images, labels)
    assert figures["silent"] == [2]


def test_smoke_training_beats_chance(tmp_path):
    out = run_training(tmp_path, "smoke", "--epochs", "2")
    network = Network.load(out)
    meta = network.metadata
    assert network.sizes == [784, 100, 10] and meta["sizes"] == [784, 100, 10]
    assert meta["validation_accuracy"] > 0.6
    assert meta["strict_test_accuracy"] > 0.6
    assert meta["lenient_test_accuracy"] >= meta["strict_test_accuracy"]
    assert meta["command"].startswith("bs4nn train --dataset mnist --hidden 100 --epochs 2 ")
    assert meta["dataset"] == "mnist" and meta["epochs"] == 2 and meta["seed"] == 0
    # The recorded figure is the deployed network's exact accuracy.
    images, labels = data.load("mnist", "validation")
    exact = infer(network, images[:2000]).strict_accuracy(labels[:2000])
    assert exact == meta["validation_accuracy"]
    calibration = meta["output_threshold_calibration"]
    assert calibration["split"] == "train" and calibration["fit_images"] == 2000
    assert calibration["fit_after"] >= calibration["fit_before"]
    assert calibration["kept"] == (calibration["check_after"] >= calibration["check_before"])
    assert (tmp_path / "smoke" / "curves.png").stat().st_size > 0
    log = (tmp_path / "smoke" / "train.log").read_text()
    assert "epoch   2/2" in log and "test strict" in log


def test_calibration_on_validation_halves_after_resume(tmp_path):
    """A finished run is calibrated again on the validation split, without retraining."""
    run_training(tmp_path, "run", "--epochs", "1", base=TINY)
    out = run_training(tmp_path, "run", "--epochs", "1", "--resume", "--calibrate", "1",
                       "--calibrate-split", "validation", base=TINY)
    network = Network.load(out)
    calibration = network.metadata["output_threshold_calibration"]
    assert calibration["split"] == "validation"
    assert calibration["fit_images"] == 250 and calibration["check_images"] == 250
    assert calibration["fit_after"] >= calibration["fit_before"]
    assert calibration["kept"] == (calibration["check_after"] >= calibration["check_before"])
    images, labels = data.load("mnist", "validation")
    exact = infer(network, images[:500]).strict_accuracy(labels[:500])
    assert exact == network.metadata["validation_accuracy"]
    assert "--calibrate-split validation" in network.metadata["command"]


def test_same_seed_same_bits(tmp_path):
    first = layer_arrays(run_training(tmp_path, "a", "--epochs", "1", "--seed", "3", base=TINY))
    second = layer_arrays(run_training(tmp_path, "b", "--epochs", "1", "--seed", "3", base=TINY))
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    images, _ = data.load("mnist", "train")
    seeds = [train.init_parameters([784, 40, 10], images[:100], np.random.default_rng(seed))
             for seed in (3, 4)]
    assert not np.array_equal(seeds[0].signs(0), seeds[1].signs(0))


def test_moving_averages_follow_their_parameters():
    images, _ = data.load("mnist", "train")
    parameters = train.init_parameters([784, 40, 10], images[:100], np.random.default_rng(0))
    parameters.update_averages(0.75)
    start = parameters.averaged()
    np.testing.assert_array_equal(start.weights[1], parameters.weights[1])
    before = np.copy(parameters.weights[0])
    parameters.weights[0] += 0.4
    parameters.update_averages(0.75)
    np.testing.assert_allclose(parameters.averaged().weights[0], before + 0.1, atol=1e-6)
    restored = train.Parameters.from_arrays(parameters.arrays(), 2)
    np.testing.assert_array_equal(restored.averaged().weights[0],
                                  parameters.averaged().weights[0])
    assert train.Parameters.from_arrays(train.init_parameters(
        [784, 40, 10], images[:100], np.random.default_rng(0)).arrays(), 2).averages is None


def test_teacher_learns_and_softens_its_predictions():
    images, labels = data.load("mnist", "train")
    teacher = train.train_teacher(images[:2000], labels[:2000], np.random.default_rng(0))
    val_images, val_labels = data.load("mnist", "validation")
    assert teacher.accuracy(val_images[:1000], val_labels[:1000]) > 0.8
    sharp, soft = (train.soft_predictions(teacher, images[:50], t) for t in (1.0, 3.0))
    np.testing.assert_allclose(soft.sum(axis=1), 1, rtol=1e-5)
    assert np.all(soft.max(axis=1) <= sharp.max(axis=1))
    restored = train.Teacher.from_arrays(teacher.arrays())
    np.testing.assert_array_equal(restored.logits(images[:5]), teacher.logits(images[:5]))
    assert train.Teacher.from_arrays({}) is None


def test_distillation_weights_the_two_losses():
    """Weight 0 is the plain loss; weight 1 at temperature 1 with one-hot predictions too."""
    images, labels = data.load("mnist", "train")
    parameters = train.init_parameters([784, 40, 10], images[:100], np.random.default_rng(0))
    states = train.forward(parameters, images[:60])
    plain = train.snapshot_gradients(parameters, states, labels[:60], 0.25, 3.0)
    one_hot = np.eye(10, dtype=np.float32)[labels[:60]]
    rng = np.random.default_rng(1)
    other = rng.dirichlet(np.ones(10), size=60).astype(np.float32)
    for soft, weight, temperature in ((other, 0.0, 3.0), (one_hot, 1.0, 1.0)):
        distilled = train.snapshot_gradients(parameters, states, labels[:60], 0.25, 3.0, soft,
                                             weight, temperature)
        assert distilled[0] == pytest.approx(plain[0], rel=1e-5)
        for first, second in zip(plain[1], distilled[1], strict=True):
            np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-7)
    halfway = train.snapshot_gradients(parameters, states, labels[:60], 0.25, 3.0, other,
                                       0.5, 2.0)
    assert halfway[0] != pytest.approx(plain[0])


@pytest.mark.parametrize("extra", [[], ["--average", "0.9"], ["--distill", "0.5"]],
                         ids=["latent", "averaged", "distilled"])
def test_resume_continues_exactly(tmp_path, extra):
    straight = run_training(tmp_path, "straight", "--epochs", "2", *extra, base=TINY)
    out = tmp_path / "resumed.npz"
    argv = [*TINY, *extra, "--epochs", "2", "--out", str(out), "--run-dir", str(tmp_path / "r")]
    assert train_command.run(parse([*argv, "--stop-after", "1"])) == 0
    assert not out.exists()
    assert (tmp_path / "r" / train.CHECKPOINT_NAME).exists()
    assert train_command.run(parse([*argv, "--resume"])) == 0
    for name, value in layer_arrays(straight).items():
        np.testing.assert_array_equal(layer_arrays(out)[name], value)
    assert Network.load(out).metadata == Network.load(straight).metadata


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--hidden", "0"], "--hidden sizes must be positive"),
    (["--lr", "-1"], "--lr must be positive"),
    (["--temperature", "0"], "--temperature must be positive"),
    (["--shift", "9"], "--shift must lie in 0..4"),
    (["--train-subset", "60000"], "--train-subset must lie in 0..50000"),
    (["--train-subset", "10", "--batch-size", "50"], "smaller than --batch-size"),
    (["--firing-fraction", "1"], "--firing-fraction must lie in"),
    (["--dropout", "1"], "--dropout must lie in [0, 1)"),
    (["--average", "1"], "--average must lie in [0, 1), got 1.0"),
    (["--dropout", "0.1", "--loss", "spike-time"], "--dropout needs --loss snapshot"),
    (["--distill", "1"], "--distill must lie in [0, 1), got 1.0"),
    (["--distill", "0.5", "--distill-temperature", "0"],
     "--distill-temperature must be positive, got 0.0"),
    (["--distill", "0.5", "--loss", "spike-time"], "--distill needs --loss snapshot"),
    (["--initial-thresholds", "-1", "15"],
     "--initial-thresholds must be non-negative, got [-1.0, 15.0]"),
    (["--stop-after", "0"], "--stop-after must be at least 1, got 0"),
])
def test_bad_arguments(tmp_path, argv, message):
    args = parse([*argv, "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "w.npz")])
    with pytest.raises(UserError, match=re.escape(message)):
        train_command.run(args)
    assert not (tmp_path / "run").exists()


def test_the_library_checks_as_the_command_line_does():
    with pytest.raises(UserError, match=r"^--epochs must be at least 1, got 0$"):
        train.TrainConfig(epochs=0)
    with pytest.raises(UserError, match=r"^--loss must be one of snapshot, spike-time, "):
        train.TrainConfig(loss="snap")
    assert train.TrainConfig(dataset="fashion-mnist").hidden == (1000,)


@pytest.mark.parametrize("config", [
    train.TrainConfig(),
    train.TrainConfig(dataset="fashion-mnist", hidden=(100, 50), flip=True, dropout=0.1,
                      calibrate_split="validation", initial_thresholds=(60.0, 15.0),
                      surrogate=10.0, eval_train=500, train_subset=1000, lr=0.003,
                      average=0.999, distill=0.5, distill_temperature=2.0),
    train.TrainConfig(loss="spike-time", beta=0.5, recruit_strength=0.5, window=1.0,
                      validation_subset=100, calibrate=0, seed=7),
], ids=["default", "snapshot", "spike-time"])
def test_recorded_command_reproduces_the_configuration(config):
    words = shlex.split(config.command())
    assert words[:2] == ["bs4nn", "train"]
    assert train_command.config_from_args(parse(words[2:])) == config


def test_resume_without_checkpoint(tmp_path):
    args = parse([*SMOKE, "--resume", "--run-dir", str(tmp_path / "empty"),
                  "--out", str(tmp_path / "w.npz")])
    with pytest.raises(UserError, match="no checkpoint to resume from"):
        train_command.run(args)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_make_train_recipes_are_those_of_the_shipped_files(dataset):
    """`make train` (the Makefile's recipe per dataset) trains what the shipped file records."""
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    flags = re.search(rf"^TRAIN_FLAGS_{dataset} := (.*)$", makefile.replace("\\\n", " "),
                      re.MULTILINE).group(1)
    recipe = train_command.config_from_args(parse(["--dataset", dataset, *shlex.split(flags)]))
    recorded = shlex.split(Network.load(SHIPPED_WEIGHTS[dataset]).metadata["command"])
    assert recipe == train_command.config_from_args(parse(recorded[2:]))
