# amaranth: UnusedElaboratable=no
"""The short formal proofs (``make formal`` runs the deep ones), a design broken on purpose,
and the plumbing of ``bs4nn formal``."""

import re
import subprocess

import numpy as np
import pytest

from bs4nn.cli import main
from bs4nn.gen.event_layer import counter_shape
from bs4nn.model import packing
from bs4nn.model.errors import UserError
from bs4nn.sim import formal, toolchain
from bs4nn.sim.golden_verilog import golden_module
from bs4nn.sim.stimulus import expected_results, random_images, random_network


def test_every_potential_range_lies_inside_its_width():
    """The derived widths leave room for every value a potential can take (property 4's
    ranges are what the proof then checks the registers against)."""
    for case in formal.CASES.values():
        for name, shape, low, high in formal._potentials(case.accelerator()):
            half = 1 << (shape.width - 1)
            assert shape.signed and -half <= low <= high <= half - 1, name
    # Run-time thresholds can take any value of their width: the counters still fit.
    for n_in in range(1, 300):
        width = counter_shape(n_in).width
        largest_threshold = (1 << max(1, (n_in - 1).bit_length())) - 1
        low, high = formal._range_of_counter(n_in, (0, largest_threshold))
        # Strictly inside, so that a counter stepping by ±1 from within its range never wraps.
        assert -(1 << (width - 1)) < low and high < (1 << (width - 1)) - 1, n_in


def test_the_deep_proofs_cover_a_whole_image_of_every_case():
    for case in formal.CASES.values():
        assert case.depth("safety") >= case.first_result_bound(), case.name
        assert case.depth("cover") >= case.first_result_bound(), case.name


@pytest.mark.parametrize(("task", "depth"), [("safety", 16), ("liveness", 22), ("ranges", 10)])
def test_short_proofs(task, depth, tmp_path):
    outcome = formal.prove(formal.CASES["tiny"], task, depth, tmp_path)
    assert outcome.status == "bounded", outcome.log.read_text()[-3000:]
    properties = formal.TASKS[task][0]
    assert all("bounded to depth" in line for line in outcome.lines()[:len(properties)])


def test_the_stream_rules_are_proved_by_induction(tmp_path):
    outcome = formal.prove(formal.CASES["tiny"], "induction", formal.DEPTHS["induction"],
                           tmp_path)
    assert outcome.status == "proved", outcome.log.read_text()[-3000:]
    assert outcome.lines()[0].startswith("tiny       stream      proved (k-induction, k = 12)")


def test_an_induction_that_does_not_close_is_reported(tmp_path):
    """At k = 2 the step fails on an unreachable state: reported, not taken for a proof."""
    outcome = formal.prove(formal.CASES["tiny"], "induction", 2, tmp_path)
    assert outcome.status == "unproved"
    assert "k-induction did not close at k = 2" in outcome.lines()[0]


def test_covers_are_reached(tmp_path):
    # `small` (one beat per image) reaches a full result queue first, at step 59: behind the
    # two results the output port's slice holds.
    outcome = formal.prove(formal.CASES["small"], "cover", 60, tmp_path)
    assert outcome.status == "covered", outcome.log.read_text()[-3000:]


def _flip_the_frame_length_check(verilog):
    """The framer flags a frame whose last beat is not beat N_BEATS - 1; flip that test."""
    framer = re.search(r"^module \\bs4nn\.core\.framer.*?^endmodule", verilog, re.S | re.M)
    body, count = re.subn(r"= beat != 2'h2;", "= beat == 2'h2;", framer[0])
    assert count == 1, "the framer's length check was not found"
    return verilog[:framer.start()] + body + verilog[framer.end():]


def test_a_broken_design_gives_a_counterexample(tmp_path):
    outcome = formal.prove(formal.CASES["tiny"], "safety", 30, tmp_path,
                           transform=_flip_the_frame_length_check)
    assert outcome.status == "failed" and outcome.failed == "frames"
    assert outcome.trace.is_file() and outcome.trace.suffix == ".vcd"
    assert any("FAILED at step" in line and "gtkwave" in line for line in outcome.lines())


def test_the_command_line(tmp_path, capsys):
    assert main(["formal", "--depth", "1"]) == 1
    assert capsys.readouterr().err.strip() == ("bs4nn formal: error: --depth must be at least 2, "
                                               "got 1")
    assert main(["formal", "--case", "debug", "--task", "liveness"]) == 1
    assert "nothing to prove" in capsys.readouterr().err
    with pytest.raises(UserError, match="the liveness task does not apply"):
        formal.write_job(formal.CASES["debug"], "liveness", 10, tmp_path)
    assert main(["formal", "--case", "tiny", "--task", "safety", "--depth", "8", "-o",
                 str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "tiny       stream      bounded to depth 8 (BMC)" in printed
    assert "1/1 proofs held" in printed


def _flip_a_weight(verilog):
    """One weight bit of the first layer's ROM, flipped."""
    body, count = re.subn(r"(rom\[1\] = 3'h)1;", r"\g<1>0;", verilog, count=1)
    assert count == 1, "the first layer's ROM word 1 was not found"
    return body


def test_a_wrong_weight_breaks_the_equivalence(tmp_path):
    """The equivalence is not vacuous: with one weight flipped, some image's result differs
    from the golden model's, and the solver finds one."""
    outcome = formal.prove(formal.CASES["small"], "equivalence", 29, tmp_path,
                           transform=_flip_a_weight)
    assert outcome.status == "failed" and outcome.failed == "equivalence", outcome.log
    assert outcome.trace.is_file()


@pytest.mark.parametrize("sizes", [(6, 4, 3), (4, 3, 3, 2), (7, 5, 4)])
def test_the_golden_logic_is_the_golden_model(sizes, tmp_path):
    """``bs4nn_golden``, simulated by Icarus, gives the golden model's result word for random
    networks and images (the extremes among them): property 5 compares against the rule."""
    seed = 1000 + sum(sizes)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    network = random_network(rng, sizes)
    images = random_images(rng, 300, sizes[0])
    bits = sum(width for _, width in packing.result_fields(sizes[-1]))
    bench = [f"module bench; reg [{8 * sizes[0] - 1}:0] pixels; wire [{bits - 1}:0] result;",
             "bs4nn_golden golden(.pixels(pixels), .result(result));", "initial begin"]
    for image in images:
        word = sum(int(p) << (8 * i) for i, p in enumerate(image))
        bench.append(f'pixels = {8 * sizes[0]}\'h{word:x}; #1 $display("%0d", result);')
    source = tmp_path / "golden.v"
    source.write_text(golden_module(network) + "\n".join([*bench, "end", "endmodule"]) + "\n")
    toolchain.prepare("icarus")
    subprocess.run(["iverilog", "-o", str(tmp_path / "bench"), str(source)], check=True)
    printed = subprocess.run(["vvp", "-n", str(tmp_path / "bench")], capture_output=True,
                             text=True, check=True).stdout.split()
    expected = [packing.pack_result(sizes[-1], **fields)
                for fields in expected_results(network, images)]
    assert [int(word) for word in printed] == expected


def test_the_time_limit_reports_the_depth_reached(tmp_path):
    """Stopped by its time limit (the ranges task reaches about step 19 in 5 minutes in this
    case), a BMC reports the steps that held. The limit leaves room for Yosys's preparation
    on a loaded machine (it took more than 25 s beside another make test)."""
    outcome = formal.prove(formal.CASES["tiny"], "ranges", 30, tmp_path, time_limit=60)
    assert outcome.status == "bounded" and outcome.stopped and 5 <= outcome.depth < 30
    assert f"bounded to depth {outcome.depth} (BMC; the time limit stopped step" in (
        outcome.lines()[0])
