"""`make bench`'s table: the figures it derives, the published anchors beside them, bad input."""

import json

import pytest

from bs4nn.cli import main
from bs4nn.sim import bench


def test_throughput_comes_from_the_report_and_sits_beside_the_anchors(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"rows": [
        {"lanes": 600, "pixels_per_beat": 8, "fmax_mhz": 50.0, "lut4": 17000,
         "xc7_lut": 16000, "dp16kd": 50},
        {"lanes": 600, "pixels_per_beat": 4, "fmax_mhz": 99.0, "lut4": 1, "xc7_lut": 1,
         "dp16kd": 1},
    ]}))
    out = tmp_path / "bench"
    assert main(["bench", "--skip-training", "--rtl-sample", "0", "--report", str(report),
                 "--out-dir", str(out)]) == 0
    result = json.loads((out / "bench.json").read_text())
    figures = result["measured"]
    assert figures["fmax_mhz"] == 50.0
    assert figures["images_per_s"] == round(50e6 / figures["cycles_per_image_mean"])
    assert figures["latency_us"] == round(figures["latency_cycles_mean"] / 50, 2)
    assert figures["images_per_s_per_xc7_lut"] == round(figures["images_per_s"] / 16000, 1)
    assert figures["cycles_per_image_p50"] <= figures["cycles_per_image_mean"] \
        <= figures["cycles_per_image_p99"]
    assert figures["mnist_strict_accuracy"] >= 0.97
    designs = [(row["source"], row["design"]) for row in result["comparison"]]
    assert designs[0][0] == "measured here" and "LANES=600" in designs[0][1]
    assert ("published", "FINN SFC-max, ZC706, 200 MHz") in designs
    markdown = (out / "bench.md").read_text()
    assert f"| {figures['images_per_s']:,} |" in markdown
    assert (out / "accuracy_vs_decision_step.png").stat().st_size > 0


@pytest.mark.parametrize("arguments, message", [
    (["--lanes", "601"], "--lanes must lie in 0..600 (0: all), got 601"),
    (["--pixels-per-beat", "3"], "--pixels-per-beat must be one of 1, 2, 4, 8, 16, got 3"),
    (["--rtl-sample", "-1"], "--rtl-sample must be non-negative, got -1"),
])
def test_bad_arguments_get_one_line_and_no_output(tmp_path, capsys, arguments, message):
    out = tmp_path / "bench"
    assert main(["bench", *arguments, "--out-dir", str(out)]) == 1
    assert capsys.readouterr().err.strip() == f"bs4nn bench: error: {message}"
    assert not out.exists()


def test_a_report_without_the_configuration_leaves_the_hardware_columns_empty():
    figures = {"cycles_per_image_mean": 110.0}
    accuracy = {"mnist": {"strict": 0.97, "lenient": 0.971}}
    rows = bench.comparison_rows(figures, accuracy, 600, 8)
    assert rows[0]["accuracy"] == "97.00% strict (97.10% lenient)"
    assert rows[0]["images_per_s"] is None and rows[0]["luts"] is None


def test_the_training_figure_comes_from_the_trainer_library(monkeypatch):
    from bs4nn.commands.bench import one_epoch_of_recipe
    from bs4nn.model import train
    from bs4nn.model.network import DEFAULT_WEIGHTS, Network

    calls = []

    def fake_train(config, run_dir, **kwargs):
        calls.append(config)
        return "network", [{"train_seconds": 12.5}], {}

    monkeypatch.setattr(train, "train", fake_train)
    monkeypatch.setattr(train, "evaluate", lambda network, images, labels: None)
    # The recipe is the one recorded in the shipped file, for one epoch, without calibration.
    config = one_epoch_of_recipe(Network.load(DEFAULT_WEIGHTS))
    epoch, whole = bench.training_seconds_per_epoch(config)
    assert epoch == 12.5 and whole >= 0
    assert calls == [config]
    assert (config.dataset, config.hidden, config.epochs, config.lr, config.threshold_lr,
            config.shift, config.calibrate) == ("mnist", (600,), 1, 0.003, 0.0, 1, 0)


def test_the_rtl_check_runs_the_testbench_through_the_runner(monkeypatch):
    from bs4nn.sim import runner

    calls = {}

    def fake_run_test(build, name, **kwargs):
        calls.update(kwargs, name=name, build=build)
        return runner.Outcome(name, 1, 0, build, {})

    monkeypatch.setattr(runner, "prepare_build", lambda network, config, **kwargs: config)
    monkeypatch.setattr(runner, "run_test", fake_run_test)
    assert bench.rtl_check("network", 20, 0, 4) == "20/20 RTL == model and cycle model"
    assert calls["name"] == "mnist_inference" and calls["n"] == 20
    assert calls["build"] == runner.SimConfig(lanes=0, pixels_per_beat=4)
