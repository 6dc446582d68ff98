# amaranth: UnusedElaboratable=no
"""The short formal proofs (``make formal`` runs the deep ones), a design broken on purpose,
and the plumbing of ``bs4nn formal``."""

import re

import pytest

from bs4nn.cli import main
from bs4nn.gen.event_layer import counter_shape
from bs4nn.model.errors import UserError
from bs4nn.sim import formal


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
        assert formal.DEPTHS["safety"] >= case.first_result_bound(), case.name
        assert formal.DEPTHS["cover"] >= case.first_result_bound(), case.name


@pytest.mark.parametrize(("task", "depth"), [("safety", 16), ("liveness", 22), ("ranges", 10)])
def test_short_proofs(task, depth, tmp_path):
    outcome = formal.prove(formal.CASES["tiny"], task, depth, tmp_path)
    assert outcome.status == "bounded", outcome.log.read_text()[-3000:]
    assert all("bounded to depth" in line for line in outcome.lines())


def test_covers_are_reached(tmp_path):
    outcome = formal.prove(formal.CASES["tiny"], "cover", 30, tmp_path)
    assert outcome.status == "covered", outcome.log.read_text()[-3000:]


def _flip_the_frame_length_check(verilog):
    """The framer flags a frame whose last beat is not beat N_BEATS - 1; flip that test."""
    framer = re.search(r"^module \\bs4nn\.core\.framer.*?^endmodule", verilog, re.S | re.M)
    body, count = re.subn(r"= beat != 2'h2;", "= beat == 2'h2;", framer[0])
    assert count == 1, "the framer's length check was not found"
    return verilog[:framer.start()] + body + verilog[framer.end():]


def test_a_broken_design_gives_a_counterexample(tmp_path):
    outcome = formal.prove(formal.CASES["tiny"], "safety", 18, tmp_path,
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
    assert "tiny       stream     bounded to depth 8 (BMC)" in printed
    assert "1/1 proofs held" in printed
