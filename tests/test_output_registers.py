"""Block RAM read data registers folded into the DP16KD's output register."""

import copy
import json

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib.memory import Memory

from bs4nn.sim import implement
from bs4nn.sim.output_registers import fold_output_registers

CLOCK, ENABLE, OTHER_CLOCK = 2, 3, 4


def _ff(data, q, clock=CLOCK, enable=ENABLE, regset="RESET", lsr="0", cemux="CE",
        lsrmux="LSR"):
    return {"type": "TRELLIS_FF",
            "parameters": {"CEMUX": cemux, "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": lsrmux,
                           "REGSET": regset},
            "port_directions": {"CLK": "input", "CE": "input", "LSR": "input", "DI": "input",
                                "Q": "output"},
            "connections": {"CLK": [clock], "CE": [enable], "LSR": [lsr], "DI": [data],
                            "Q": [q]}}


def _netlist(**ff_options):
    """A DP16KD whose two read data bits (port B) each feed a flip-flop; the flip-flops' outputs
    are module outputs."""
    ram = {"type": "DP16KD",
           "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG", "CLKBMUX": "CLKB",
                          "DATA_WIDTH_B": "00000000000000000000000000010010"},
           "port_directions": {"CLKB": "input", "OCEB": "input", "RSTB": "input",
                               "DOB0": "output", "DOB1": "output"},
           "connections": {"CLKB": [CLOCK], "OCEB": ["1"], "RSTB": ["0"], "DOB0": [10],
                           "DOB1": [11]}}
    return {"modules": {"top": {
        "ports": {"q": {"direction": "output", "bits": [20, 21]}},
        "cells": {"ram": ram, "ff0": _ff(10, 20, **ff_options), "ff1": _ff(11, 21)}}}}


def test_the_flip_flops_of_a_read_port_become_its_output_register():
    netlist = _netlist()
    assert fold_output_registers(netlist, "top") == 2
    cells = netlist["modules"]["top"]["cells"]
    assert set(cells) == {"ram"}
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["parameters"]["REGMODE_A"] == "NOREG"
    assert ram["connections"]["OCEB"] == [ENABLE]
    assert ram["connections"]["DOB0"] == [20] and ram["connections"]["DOB1"] == [21]


def test_flip_flops_without_an_enable_leave_the_output_register_always_enabled():
    netlist = _netlist(cemux="1 ")
    cells = netlist["modules"]["top"]["cells"]
    cells["ff1"]["parameters"]["CEMUX"] = "1 "
    assert fold_output_registers(netlist, "top") == 2
    assert cells["ram"]["connections"]["OCEB"] == ["1"]


@pytest.mark.parametrize("change", [
    {"clock": OTHER_CLOCK},          # another clock
    {"enable": OTHER_CLOCK},         # another enable than the other bit's flip-flop
    {"regset": "SET"},               # initial value 1
    {"lsr": 5},                      # a set or reset
    {"cemux": "INV"},                # an inverted enable
    {"lsrmux": "INV"},               # a set or reset that is always on
])
def test_a_port_whose_flip_flops_differ_from_an_output_register_is_left(change):
    netlist = _netlist(**change)
    before = copy.deepcopy(netlist)
    assert fold_output_registers(netlist, "top") == 0
    assert netlist == before


def test_a_port_whose_data_also_feed_logic_is_left():
    netlist = _netlist()
    cells = netlist["modules"]["top"]["cells"]
    cells["lut"] = {"type": "LUT4", "parameters": {},
                    "port_directions": {"A": "input", "Z": "output"},
                    "connections": {"A": [11], "Z": [30]}}
    assert fold_output_registers(netlist, "top") == 0
    assert cells["ram"]["parameters"]["REGMODE_B"] == "NOREG"


@pytest.mark.xdist_group("tools")
def test_a_registered_block_ram_read_leaves_its_block_ram_from_the_output_register(tmp_path):
    """A block RAM read registered with an enable (no reset, as the generator's data
    registers), through synth_ecp5 and nextpnr: the flip-flops are gone, and the critical path
    no longer starts with the block RAM's 5.83 ns from clock to data (its output register's
    is under 1 ns)."""
    m = Module()
    memory = m.submodules.memory = Memory(shape=18, depth=512, init=[],
                                          attrs={"ram_style": "block", "no_rw_check": 1})
    write, read = memory.write_port(), memory.read_port()
    address, data, write_enable = Signal(9), Signal(18), Signal()
    hold, held, total = Signal(), Signal(18, reset_less=True), Signal(18)
    m.d.comb += [write.addr.eq(address), write.data.eq(data), write.en.eq(write_enable),
                 read.addr.eq(~address)]
    with m.If(hold):
        m.d.sync += held.eq(read.data)
    m.d.sync += total.eq(total + held)
    path = tmp_path / "bs4nn.v"
    path.write_text(verilog.convert(m, ports=[address, data, write_enable, hold, total],
                                    name="bs4nn"))
    cells = implement.synth_ecp5(path, tmp_path)
    assert cells["ff"] == 18   # `total` only
    netlist = json.loads((tmp_path / "ecp5.json").read_text())["modules"]["bs4nn"]
    [ram] = [cell for cell in netlist["cells"].values() if cell["type"] == "DP16KD"]
    assert "OUTREG" in (ram["parameters"]["REGMODE_A"], ram["parameters"]["REGMODE_B"])
    implement.place_and_route_ecp5(tmp_path)
    report = json.loads((tmp_path / "pnr.json").read_text())
    [critical] = [path for path in report["critical_paths"] if path["from"] == path["to"]]
    assert critical["path"][0]["type"] == "clk-to-q"
    assert critical["path"][0]["delay"] < 2.0
