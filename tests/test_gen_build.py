# amaranth: UnusedElaboratable=no
"""generate / write_design / ``bs4nn verilog``: the top-level contract and parameter checks."""

import json
import re

import numpy as np
import pytest

from bs4nn.cli import main
from bs4nn.gen.build import generate, write_design
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
    width = sum(w for _, w in packing.result_fields(3))
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
    weight_width = sum(w for _, w in packing.weight_stream_fields(network.sizes, 3))
    debug_width = sum(w for _, w in packing.debug_event_fields([8]))
    assert ports["w_axis_tdata"] == ("input", weight_width)
    assert ports["w_axis_tlast"] == ("input", 1)
    assert ports["w_axis_tvalid"] == ("input", 1)
    assert ports["w_axis_tready"] == ("output", 1)
    assert ports["dbg_axis_tdata"] == ("output", debug_width)
    assert ports["dbg_axis_tvalid"] == ("output", 1)
    assert ports["dbg_axis_tready"] == ("input", 1)
    assert ports["s_axis_tdata"] == ("input", 8)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lanes": 9}, "lanes must be between 1 and 8 (or 0 for all 8), got 9"),
    ({"lanes": -2}, "lanes must be between 1 and 8 (or 0 for all 8), got -2"),
    ({"lanes": True}, "lanes must be between 1 and 8 (or 0 for all 8), got True"),
    ({"pixels_per_beat": 32}, "pixels_per_beat must be one of 1, 2, 4, 8, 16, got 32"),
    ({"weight_storage": "flash"}, "weight_storage must be one of rom, ram, got 'flash'"),
    ({"debug_events": 1}, "debug_events must be True or False, got 1"),
])
def test_parameter_errors(network, kwargs, message):
    with pytest.raises(UserError) as info:
        generate(network, **kwargs)
    assert str(info.value) == message


def test_network_without_hidden_layer():
    with pytest.raises(UserError, match="has no hidden layer"):
        generate(random_network(np.random.default_rng(0), (8, 3)))


def test_write_design_and_cli(network, tmp_path):
    weights = tmp_path / "net.npz"
    network.save(weights)
    verilog_path, info_path = write_design(weights, tmp_path / "out", pixels_per_beat=2)
    assert "module bs4nn(" in verilog_path.read_text()
    info = json.loads(info_path.read_text())
    assert info["weights"] == str(weights) and info["parameters"]["pixels_per_beat"] == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bs4nn.json", "bs4nn.v"]
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
