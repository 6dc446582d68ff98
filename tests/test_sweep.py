"""`bs4nn sweep`: tiny real sweeps on Ray Tune (interrupted and resumed; ASHA with random
options), the search-space file and specs, and every kind of bad input in one line."""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bs4nn.cli import main
from bs4nn.commands import sweep as sweep_command
from bs4nn.model.errors import UserError
from bs4nn.model.network import Network
from bs4nn.model.train.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
#: A 784-20-10 network on a small part of MNIST: about a second an epoch.
TINY = ["--hidden", "20", "--train-subset", "6000", "--validation-subset", "500",
        "--batch-size", "50", "--calibrate", "0", "--eval-train", "200"]


def bs4nn(*arguments):
    return [sys.executable, "-m", "bs4nn.cli", *map(str, arguments)]


def parse(argv):
    parser = argparse.ArgumentParser()
    sweep_command.add_arguments(parser)
    return parser.parse_args(argv)


def test_tiny_sweep_is_interrupted_resumed_and_summarized(tmp_path):
    out = tmp_path / "sweep"
    command = bs4nn("sweep", *TINY, "--epochs", 4, "--grid", "surrogate=3,10", "--out-dir", out)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    deadline = time.monotonic() + 300
    while not list(out.glob("trials/*/checkpoint.npz")):
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no trial finished an epoch in 300 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves the experiment and stops
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 130, output[-3000:]
    assert "interrupted; run the same command again to resume" in output
    interrupted = json.loads((out / "sweep.json").read_text())
    assert interrupted["interrupted"]
    assert {trial["status"] for trial in interrupted["trials"]} <= {"unfinished", "finished"}
    started = {trial["trial"]: trial for trial in interrupted["trials"] if trial["epochs"]}
    assert started

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert f"resuming the sweep in {out / 'tune'}" in resumed.stdout
    summary = json.loads((out / "sweep.json").read_text())
    assert not summary["interrupted"]
    trials = {trial["trial"]: trial for trial in summary["trials"]}
    assert sorted(trial["options"]["surrogate"] for trial in trials.values()) == [3.0, 10.0]
    for trial in trials.values():
        assert trial["status"] == "finished" and trial["epochs"] == 4
        assert len(trial["validation_per_epoch"]) == 4
        assert Path(trial["weights"]).exists() and Path(trial["log"]).exists()
    for trial_id, before in started.items():
        if before["status"] == "unfinished":
            # The trial went on from its own checkpoint, the epochs before it unchanged.
            log = Path(trials[trial_id]["log"]).read_text()
            assert f"after epoch {before['epochs']}" in log
            assert (trials[trial_id]["validation_per_epoch"][:before["epochs"]]
                    == before["validation_per_epoch"])
    # The best trial is the best on validation, and its weights carry its train command.
    best = max(trials.values(), key=lambda trial: trial["validation"])
    assert summary["best"]["trial"] == best["trial"]
    metadata = Network.load(out / "best.npz").metadata
    assert metadata["validation_accuracy"] == best["validation"]
    assert metadata["command"] == best["command"] == summary["best"]["command"]
    assert metadata["command"].startswith("bs4nn train --dataset mnist --hidden 20 --epochs 4")
    assert f"--surrogate {best['options']['surrogate']}" in metadata["command"]
    table = (out / "sweep.md").read_text().splitlines()
    assert table[0].startswith(f"`{summary['command']}`: 2 trials")
    rows = [line for line in table if line.startswith("| ") and "finished" in line]
    assert len(rows) == 2 and sum(f"**{best['trial']}**" in row for row in rows) == 1
    assert (out / "validation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The recorded command is this sweep: run again, it finds every trial done.
    again = subprocess.run(["bash", "-c", summary["command"].replace(
        "bs4nn", f"{sys.executable} -m bs4nn.cli", 1)], capture_output=True, text=True,
        timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert json.loads((out / "sweep.json").read_text())["trials"] == summary["trials"]


def test_asha_with_random_options_keeps_every_trial_and_picks_a_finished_one(tmp_path):
    out = tmp_path / "asha"
    result = subprocess.run(bs4nn("sweep", *TINY, "--train-subset", 600, "--epochs", 3,
                                  "--grid", "surrogate=3,10", "--random",
                                  "lr=loguniform:0.005,0.02", "--samples", 2, "--asha",
                                  "--out-dir", out), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    summary = json.loads((out / "sweep.json").read_text())
    assert len(summary["trials"]) == 4
    for trial in summary["trials"]:
        assert 0.005 <= trial["options"]["lr"] <= 0.02
        assert Path(trial["log"]).exists()
        if trial["status"] == "finished":
            assert trial["epochs"] == 3
            assert f"--lr {trial['options']['lr']}" in Network.load(
                trial["weights"]).metadata["command"]
        else:
            assert trial["status"] == "stopped early" and trial["epochs"] < 3
            assert trial["weights"] is None
    finished = [trial for trial in summary["trials"] if trial["status"] == "finished"]
    assert summary["best"]["trial"] == max(finished, key=lambda t: t["validation"])["trial"]


def test_a_failing_trial_is_named_and_the_sweep_fails(tmp_path):
    """The trials see the driver's BS4NN_DATA_DIR: an empty one makes every trial fail."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "failing"
    result = subprocess.run(bs4nn("sweep", *TINY, "--epochs", 1, "--grid", "surrogate=3,10",
                                  "--out-dir", out), capture_output=True, text=True, timeout=600,
                            env={**os.environ, "BS4NN_DATA_DIR": str(empty)})
    assert result.returncode == 1, (result.stdout + result.stderr)[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"bs4nn sweep: error: 2 of 2 trials failed, e\.g\. \w+_0000\d: .*"
                        + re.escape(str(empty)) + ".*", error), error
    summary = json.loads((out / "sweep.json").read_text())
    assert all(trial["status"].startswith("error: ") for trial in summary["trials"])
    assert summary["best"] is None and not (out / "best.npz").exists()


def write(tmp_path, text):
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("[grids]\nsurrogate = [3]\n", "unknown entry 'grids' (expected samples, fixed, grid, "
                                   "random)"),
    ("[grid]\nsurogate = [3]\n", "[grid]: unknown option 'surogate' (the options are bs4nn "
                                 "train's: see bs4nn train --help)"),
    ("[grid]\nsurrogate = 3\n", "[grid] --surrogate must be a list of values, got 3"),
    ("[grid]\nsurrogate = [3, -1]\n", "--surrogate must be positive, got -1.0 (trial "
                                      "--surrogate -1.0)"),
    ("[grid]\nshift = [1.5]\n", "grid --shift: --shift takes an integer, got 1.5"),
    ("[grid]\ninitial-thresholds = [[30, 15, 2]]\n",
     "grid --initial-thresholds: --initial-thresholds takes 2 values, got [30, 15, 2]"),
    ("[grid]\nsurrogate = []\n", "grid --surrogate has no values"),
    ("[fixed]\nepochs = 0\n[grid]\nsurrogate = [3]\n", "--epochs must be at least 1, got 0"),
    ("[fixed]\ndataset = \"cifar\"\n[grid]\nsurrogate = [3]\n",
     "unknown dataset 'cifar' (choose from mnist, fashion-mnist)"),
    ("[random]\nlr = { gaussian = [0, 1] }\n",
     "random --lr: unknown distribution 'gaussian' (one of uniform, loguniform, randint, "
     "choice)"),
    ("[random]\nlr = { loguniform = [0, 0.1] }\n", "random --lr: loguniform needs LOW > 0, "
                                                    "got 0.0"),
    ("[random]\nlr = { uniform = [0.1, 0.01] }\n", "random --lr: uniform needs LOW < HIGH, "
                                                   "got [0.1, 0.01]"),
    ("[random]\nlr = { randint = [1, 3] }\n", "random --lr: randint needs an integer option"),
    ("[random]\nshift = { randint = [0, 9] }\n", "--shift must lie in 0..4, got 9 (trial "
                                                 "--shift 9)"),
    ("[random]\nlr = 0.01\n", "random --lr: expected one distribution, e.g. { uniform = [0.1, "
                              "1] } (one of uniform, loguniform, randint, choice), got 0.01"),
    ("[grid]\nlr = [0.01]\n[random]\nlr = { choice = [0.1] }\n",
     "--lr is both grid and random"),
    ("samples = 0\n[grid]\nlr = [0.01]\n", "samples must be at least 1, got 0"),
])
def test_a_bad_search_space_file_gives_one_line_naming_it(tmp_path, capsys, text, message):
    space = write(tmp_path, text)
    out = tmp_path / "out"
    assert main(["sweep", "--space", str(space), "--out-dir", str(out)]) == 1
    assert capsys.readouterr().err.splitlines() == [f"bs4nn sweep: error: {space}: {message}"]
    assert not out.exists()


@pytest.mark.parametrize("arguments, message", [
    (["--grid", "surrogate"], "--grid 'surrogate': expected NAME=V1,V2,..."),
    (["--grid", "lrr=0.1,0.2"], "--grid 'lrr=0.1,0.2': unknown option 'lrr' (the options are "
                                "bs4nn train's: see bs4nn train --help)"),
    (["--grid", "lr=fast"], "command line: grid --lr: --lr takes a number, got 'fast'"),
    (["--grid", "flip=yes"], "command line: grid --flip: --flip takes true or false, got "
                             "'yes'"),
    (["--random", "lr=0.1,0.2"], "--random 'lr=0.1,0.2': expected NAME=KIND:A,B with KIND one "
                                 "of uniform, loguniform, randint, choice"),
    (["--random", "lr=uniform:0.1"], "command line: random --lr: uniform takes [LOW, HIGH], "
                                     "got ['0.1']"),
    (["--lr", "0.01", "--grid", "lr=0.1,0.2"], "command line: --lr is both fixed and grid"),
    (["--lr", "-1", "--grid", "surrogate=3"], "command line: --lr must be positive, got -1.0"),
    (["--epochs", "3"], "nothing to sweep: give --grid, --random, --samples or --space"),
    (["--grid", "lr=0.1", "--cpus-per-trial", "0"], "--cpus-per-trial must be at least 1, "
                                                    "got 0"),
    (["--grid", "lr=0.1", "--asha", "--reduction-factor", "1"],
     "--reduction-factor must be greater than 1, got 1.0"),
])
def test_bad_command_line_specs_give_one_line(tmp_path, capsys, arguments, message):
    out = tmp_path / "out"
    assert main(["sweep", *arguments, "--out-dir", str(out)]) == 1
    assert capsys.readouterr().err.splitlines() == [f"bs4nn sweep: error: {message}"]
    assert not out.exists()


def test_missing_or_unusable_space_files(tmp_path, capsys):
    for path, problem in ((tmp_path / "none.toml", "no such search-space file"),
                          (tmp_path, "is a directory, not a search-space file")):
        assert main(["sweep", "--space", str(path), "--out-dir", str(tmp_path / "o")]) == 1
        assert capsys.readouterr().err.splitlines() == [
            f"bs4nn sweep: error: {path}: {problem}"]
    space = write(tmp_path, "[grid]\nsurrogate = [3, 10\n")
    assert main(["sweep", "--space", str(space)]) == 1
    error, = capsys.readouterr().err.splitlines()
    assert error.startswith(f"bs4nn sweep: error: {space}: not valid TOML (")
    space = write(tmp_path, "[grid]\nlr = [0.01]\n")
    assert main(["sweep", "--space", str(space), "--grid", "lr=0.1"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "bs4nn sweep: error: --lr is given both in the search-space file and on the command "
        "line"]


def test_a_folder_holding_another_sweep_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "space.json").write_text(json.dumps({"space": {}}))
    assert main(["sweep", "--grid", "lr=0.1,0.2", "--out-dir", str(out)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"bs4nn sweep: error: {out}: holds a sweep of another search space or base options "
        f"({out / 'space.json'}); use another --out-dir, or remove it to start over"]


def test_the_shipped_spaces_read_and_their_command_gives_them_back():
    for path in sorted((ROOT / "sweeps").glob("*.toml")):
        space = SearchSpace.from_file(path)
        assert space.swept
        again = sweep_command.space_from_args(parse(space.command_words()))
        assert again.to_json() == space.to_json(), path
    space = SearchSpace.from_file(ROOT / "sweeps" / "fashion-mnist.toml")
    assert space.grid["initial_thresholds"] == [[45.0, 15.0], [60.0, 15.0], [75.0, 15.0]]
    assert space.fixed["calibrate_split"] == "validation" and space.max_epochs() == 18


def test_ray_is_imported_only_by_the_commands_that_run_on_it():
    code = ("import sys\n"
            "from bs4nn.cli import main\n"
            "import bs4nn.commands.sweep, bs4nn.commands.report, bs4nn.sim.report\n"
            "import bs4nn.model.train.sweep\n"
            "assert main(['sweep', '--grid', 'lrr=1']) == 1\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_missing_ray_is_named_with_its_install_command(monkeypatch):
    from bs4nn.model.cluster import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserError, match=r"^Ray is not installed \(bs4nn sweep and bs4nn "
                                        r"report run on it\): pip install 'bs4nn\[ray\]' "
                                        r"\(make env installs it\)$"):
        import_ray()


def test_an_address_without_a_cluster_is_one_line(tmp_path):
    # (`--address auto` is not tried: it finds any Ray running on this machine, such as
    # another test's.)
    result = subprocess.run(bs4nn("sweep", "--grid", "lr=0.1", "--address", "127.0.0.1:1",
                                  "--out-dir", tmp_path / "out"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "bs4nn sweep: error: --address 127.0.0.1:1: no Ray cluster answers there (Connection "
        "refused)"]
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out").exists()
