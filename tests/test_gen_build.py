# amaranth: UnusedElaboratable=no
"""generate / write_design / ``bs4nn verilog``: the top-level contract and parameter checks."""

import json
import re

import numpy as np
import pytest

from bs4nn.cli import main
from bs4nn.gen.build import LINT_WAIVERS, generate, write_design
from bs4nn.gen.schedule import Schedule
from bs4nn.gen.top import Accelerator
from bs4nn.model import packing
from bs4nn.model.errors import UserError
from bs4nn.sim.stimulus import random_network


@pytest.fixture(scope="module")
def network():
    return random_network(np.random.default_rng(1), (16, 8, 3))


def declared_ports(verilog):
    """``{name: (direction, width)}`` of module ``bs4nn``'s ports."""
    body = verilog[verilog.index("module bs4nn("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for direction, width, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);",
                                             body, re.MULTILINE):
        ports[name] = (direction, int(width) + 1 if width else 1)
    return ports


def test_rom_ports(network):
    design = generate(network, pixels_per_beat=4)
    width = 16  # 13 bits of fields, padded to whole bytes
    assert sum(w for _, w in packing.result_fields(3)) == 13
    assert declared_ports(design.verilog) == {
        "clk": ("input", 1), "rst": ("input", 1),
        "s_axis_tdata": ("input", 32), "s_axis_tvalid": ("input", 1),
        "s_axis_tready": ("output", 1), "s_axis_tlast": ("input", 1),
        "m_axis_tdata": ("output", width), "m_axis_tvalid": ("output", 1),
        "m_axis_tready": ("input", 1),
    }
    info = design.info
    assert info["parameters"]["lanes"] == 8 and info["parameters"]["pixels_per_beat"] == 4
    assert info["ports"]["m_axis_tdata"] == {"direction": "out", "width": width}
    assert info["fields"]["result"] == [list(f) for f in packing.result_fields(3)]
    assert "latency_formula" in info and info["schedule"]["beats_per_image"] == 4


def test_ram_and_debug_ports(network):
    design = generate(network, lanes=3, pixels_per_beat=1, weight_storage="ram",
                      debug_events=True)
    ports = declared_ports(design.verilog)
    weight_width = packing.tdata_width(
        sum(w for _, w in packing.weight_stream_fields(network.sizes, 3)))
    debug_width = packing.tdata_width(sum(w for _, w in packing.debug_event_fields([8])))
    assert weight_width % 8 == 0 and debug_width % 8 == 0
    assert ports["w_axis_tdata"] == ("input", weight_width)
    assert ports["w_axis_tlast"] == ("input", 1)
    assert ports["w_axis_tvalid"] == ("input", 1)
    assert ports["w_axis_tready"] == ("output", 1)
    assert ports["dbg_axis_tdata"] == ("output", debug_width)
    assert ports["dbg_axis_tvalid"] == ("output", 1)
    assert ports["dbg_axis_tready"] == ("input", 1)
    assert ports["s_axis_tdata"] == ("input", 8)


def test_parameters_are_checked_first(network):
    # The check itself is tested with the Accelerator (tests/test_gen_top.py).
    with pytest.raises(UserError, match="lanes must be between 1 and 8"):
        generate(network, lanes=9)
    with pytest.raises(UserError, match="has no hidden layer"):
        generate(random_network(np.random.default_rng(0), (8, 3)))


def test_schedule_and_formula_come_from_the_design(network):
    info = generate(network, lanes=3, pixels_per_beat=4).info
    accelerator = Accelerator(network, lanes=3, pixels_per_beat=4)
    assert info["schedule"] == accelerator.schedule.as_dict()
    assert info["latency_formula"] == Schedule.formula()
    assert "S_k = max(W_{k-1} + finish_to_start" in info["latency_formula"]


def test_write_design_and_cli(network, tmp_path):
    weights = tmp_path / "net.npz"
    network.save(weights)
    verilog_path, info_path, waivers_path = write_design(weights, tmp_path / "out",
                                                         pixels_per_beat=2)
    assert "module bs4nn(" in verilog_path.read_text()
    info = json.loads(info_path.read_text())
    assert info["weights"] == str(weights) and info["parameters"]["pixels_per_beat"] == 2
    assert waivers_path.read_text() == LINT_WAIVERS.read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bs4nn.json", "bs4nn.v",
                                                                    "bs4nn.vlt"]
    assert main(["verilog", "--weights", str(weights), "--lanes", "4", "--pixels-per-beat", "16",
                 "-o", str(tmp_path / "cli")]) == 0
    assert json.loads((tmp_path / "cli" / "bs4nn.json").read_text())["parameters"]["lanes"] == 4


def test_cli_errors(network, tmp_path, capsys):
    missing = tmp_path / "nothing.npz"
    assert main(["verilog", "--weights", str(missing), "-o", str(tmp_path)]) == 1
    assert str(missing) in capsys.readouterr().err
    weights = tmp_path / "net.npz"
    network.save(weights)
    assert main(["verilog", "--weights", str(weights), "--lanes", "99", "-o",
                 str(tmp_path)]) == 1
    assert "lanes must be between 1 and 8" in capsys.readouterr().err


def test_the_written_waivers_make_the_verilator_lint_clean(network, tmp_path):
    import os
    import subprocess

    from bs4nn.sim import toolchain

    weights = tmp_path / "net.npz"
    network.save(weights)
    verilog_path, _, waivers_path = write_design(weights, tmp_path / "out", lanes=3,
                                                 weight_storage="ram", debug_events=True)
    root = toolchain.verilator_root()
    env = dict(os.environ, VERILATOR_ROOT=str(root),
               PATH=os.pathsep.join([str(root / "bin"), os.environ.get("PATH", "")]))
    for extra in ([], ["-Wall"]):
        lint = subprocess.run(["verilator", "--lint-only", *extra, str(waivers_path),
                               str(verilog_path)], env=env, capture_output=True, text=True)
        assert lint.returncode == 0 and "%Warning" not in lint.stderr, lint.stderr
        without = subprocess.run(["verilator", "--lint-only", *extra, str(verilog_path)],
                                 env=env, capture_output=True, text=True)
        assert without.returncode != 0  # the waivers are what makes it clean
