"""`make report`'s plumbing: the real Yosys and nextpnr on a small design, the table, resuming."""

import dataclasses
import json
import re
import sys

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal

from bs4nn.sim import implement, placement, report
from bs4nn.sim.stimulus import random_images, random_network


def test_weight_block_rams_are_counted_by_memory_name():
    netlist = {"modules": {"bs4nn": {"cells": {
        "core.event_layer.rom.0.0": {"type": "DP16KD"},
        "core.event_layer.rom.1.0": {"type": "DP16KD"},
        "core.scheduler.heads0.0.0": {"type": "DP16KD"},
        "core.event_layer.rom_lut.0": {"type": "LUT4"},
    }}}}
    assert implement._block_rams_of(netlist, implement.WEIGHT_MEMORY) == 2


def test_markdown_table_has_a_column_per_figure_present():
    rows = [{"lanes": 16, "fmax_mhz": 52.5, "images_per_s": 123456.0, "lut4": 17135,
             "weights_in": "27 DP16KD"}, {"lanes": 600}]
    assert report.markdown_table(rows).splitlines() == [
        "| LANES | LUT4 | weights in | Fmax MHz | images/s |",
        "|---|---|---|---|---|",
        "| 16 | 17,135 | 27 DP16KD | 52.5 | 123,456 |",
        "| 600 | – | – | – | – |",
    ]


@pytest.mark.parametrize("cell, part", [
    ("core.scheduler.links3.0.0_DIA8_LUT4_Z", "scheduler: walkers"),
    ("core.scheduler.rsel_replica0_TRELLIS_FF_Q", "scheduler: walkers"),
    ("core.scheduler.chunks1_TRELLIS_FF_Q_4", "scheduler: step finder"),
    ("core.scheduler.s2_rows1_TRELLIS_FF_Q_197", "scheduler: loader and other"),
    ("core.event_layer.acc12_CCU2C_S0", "hidden layer"),
    ("core.output_layer.sums3_LUT4_Z", "output layer"),
    ("m_axis_tdata_TRELLIS_FF_Q_1", "ports, framing, result queue, other"),
])
def test_cells_are_sorted_into_the_parts_of_the_design(cell, part):
    assert placement.part_of(cell) == part


@pytest.mark.slow
@pytest.mark.xdist_group("tools")
def test_small_design_goes_through_the_tools_and_is_then_reused(tmp_path, monkeypatch):
    seed = 5
    print(f"seed {seed}")
    # The share of +1 weights this test always had: with the default (weights leaning further
    # positive), seed 5 makes nextpnr find output-layer popcount nets driven twice after
    # synth_ecp5 ("core.output_layer.sums[63] is multiply driven"), a tool-flow problem that is
    # not this test's subject.
    network = random_network(np.random.default_rng(seed), (256, 64, 10), positive=0.55)
    row = report.implement_configuration(network, 0, 4, 2, tmp_path, xilinx=True, frequency=125)
    assert row["lanes"] == 64 and row["pixels_per_beat"] == 4 and row["events_per_cycle"] == 2
    assert row["lut4"] > 100 and row["ff"] > 100 and row["comb"] >= row["lut4"]
    assert 10 < row["fmax_mhz"] < 500
    assert row["input_to_reg_ns"] > 0 and row["reg_to_output_ns"] > 0
    assert row["xc7_lut"] > 100
    # The 256 x 64 weight ROM (two banks) is in block RAM, and the table says so.
    assert row["weight_dp16kd"] >= 1
    assert row["weights_in"] == f"{row['weight_dp16kd']} DP16KD"
    # Every placed cell has a site on the die and a part of the design; the picture is drawn.
    sites = placement.cell_sites(tmp_path / "routed.json")
    assert len(sites) > row["lut4"] // 2
    parts = {placement.part_of(name) for name, *_ in sites}
    assert {"hidden layer", "output layer", "scheduler: walkers"} <= parts
    overused = placement.congestion(tmp_path / "router2" / "router2_congestion_by_coordinate_1.csv")
    assert overused.shape == (97, 128) and overused.sum() > 0   # the LFE5U-85F's tiles
    assert (tmp_path / "placement.png").stat().st_size > 10_000

    def no_tools(*args, **kwargs):
        raise AssertionError("the tools ran again for an unchanged design")

    monkeypatch.setattr(implement, "synth_ecp5", no_tools)
    assert report.implement_configuration(network, 0, 4, 2, tmp_path, xilinx=True,
                                          frequency=125) == row
    # A different target frequency is a different run.
    with pytest.raises(AssertionError, match="ran again"):
        report.implement_configuration(network, 0, 4, 2, tmp_path, xilinx=True, frequency=100)
    # So is another speed grade (test_the_fastest_speed_grade_closes_faster places one).
    with pytest.raises(AssertionError, match="ran again"):
        report.implement_configuration(network, 0, 4, 2, tmp_path, xilinx=True, frequency=125,
                                       device="ecp5-85f-8")


@pytest.mark.xdist_group("tools")
def test_the_fastest_speed_grade_closes_faster(tmp_path):
    """The same netlist (a 24-bit multiply-accumulate) placed and routed at grade 6, the
    slowest LFE5U-85F, and at grade 8, the fastest: nextpnr gets the grade."""
    m = Module()
    a, b, total = Signal(12), Signal(12), Signal(24)
    m.d.sync += total.eq(total + a * b)
    (tmp_path / "bs4nn.v").write_text(verilog.convert(m, ports=[a, b, total], name="bs4nn"))
    implement.synth_ecp5(tmp_path / "bs4nn.v", tmp_path)
    slowest = implement.place_and_route_ecp5(tmp_path, 125, speed_grade=6)
    fastest = implement.place_and_route_ecp5(tmp_path, 125, speed_grade=8)
    assert fastest["fmax_mhz"] > slowest["fmax_mhz"] > 10


def test_router2_is_stopped_once_its_overused_wires_set_no_new_low(tmp_path, monkeypatch):
    lines = [f"Info:     iter={i} wires=1000 overused={n} overuse={n} archfail=NA"
             for i, n in enumerate([640, 190, 155, 175, 300, 155, 1300], start=1)]
    assert implement.router2_stall("\n".join(lines[:5]), patience=3) is None
    assert implement.router2_stall("\n".join(lines[:6]), patience=3) == {
        "iteration": 6, "overused": 155, "fewest": 155, "fewest_at": 3}
    assert implement.router2_stall("\n".join(lines), patience=5) is None
    assert implement.router2_stall("Info: Routing globals...", patience=1) is None
    # A watched command is stopped with the verdict; one left alone runs to its end.
    monkeypatch.setattr(implement, "WATCH_SECONDS", 0.1)
    script = ("import time\n"
              "for i, n in enumerate([9, 5, 7, 8, 9, 9], 1):\n"
              "    print(f'iter={i} wires=1 overused={n}', flush=True)\n"
              "time.sleep(60)\n")
    verdict = implement._run([sys.executable, "-c", script], tmp_path, "tool.log",
                             watch=lambda text: implement.router2_stall(text, patience=4))
    assert verdict == {"iteration": 6, "overused": 9, "fewest": 5, "fewest_at": 2}
    assert implement._run([sys.executable, "-c", "print('done')"], tmp_path, "tool.log",
                          watch=implement.router2_stall) is None


def test_an_ecp5_speed_grade_outside_the_part_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"speed_grade must be one of \(6, 7, 8\), got 5"):
        implement.place_and_route_ecp5(tmp_path, speed_grade=5)


@pytest.mark.parametrize("arguments, message", [
    (["--lanes", "700"], "--lanes: each must be between 1 and 600, got 700"),
    (["--pixels-per-beat", "3"], "--pixels-per-beat: each must be one of 1, 2, 4, 8, 16, got 3"),
    (["--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["--events-per-cycle", "3"],
     "--events-per-cycle: each must be one of 1, 2, 4, 8, 16, got 3"),
])
def test_bad_configurations_are_refused_before_any_tool_runs(tmp_path, capsys, arguments,
                                                              message):
    from bs4nn.cli import main

    out = tmp_path / "report"
    assert main(["report", *arguments, "--out-dir", str(out)]) == 1
    assert capsys.readouterr().err.strip() == f"bs4nn report: error: {message}"
    assert not out.exists()


def test_configurations_sweep_lanes_then_pixels_per_beat_then_events_then_compact():
    assert report.configurations([16, 600], [8, 4]) == [(16, 8, 1), (600, 8, 1), (600, 4, 1)]
    assert report.configurations([600], [16], [1, 4]) == [(600, 16, 1), (600, 16, 4)]
    assert report.configurations(list(report.LANES), list(report.PIXELS_PER_BEAT),
                                 [4]) == [
        (16, 8, 1), (64, 8, 1), (150, 8, 1), (600, 8, 1), (600, 4, 1), (600, 16, 4)]
    assert report.configurations([600], [8], [], [16, 64]) == [
        (600, 8, 1), (16, 1, 1), (64, 1, 1)]
    assert report.work_dir_name(600, 16, 4) == "lanes600_ppb16_e4"
    assert report.work_dir_name(16, 8, 1) == "lanes16_ppb8"


def test_configurations_run_as_ray_tasks_and_their_saved_figures_are_reused(tmp_path):
    """The report's Ray tasks on a local Ray: figures saved for an unchanged design (here
    written by the test, so that no tool runs) are what the report shows, and a failing
    configuration's own error reaches the caller once the other one is done."""
    from bs4nn.gen.build import generate

    rng = np.random.default_rng(3)
    print("seed 3")
    network = random_network(rng, (64, 16, 10))
    images = random_images(rng, 20, 64)
    work_dir = tmp_path / "report" / "lanes16_ppb8"
    work_dir.mkdir(parents=True)
    design = generate(network, lanes=16, pixels_per_beat=8)
    grade = report.DEVICES[report.DEFAULT_DEVICE].speed_grade   # write_report's device
    saved = {"lanes": 16, "pixels_per_beat": 8, "lut4": 1234, "ff": 567, "fmax_mhz": 77.5,
             "weights_in": "LUTs", "tool_seconds": 1.0,
             "key": report.cache_key(design, xilinx=False, frequency=125, speed_grade=grade)}
    (work_dir / "row.json").write_text(json.dumps(saved))
    # A configuration router2 did not route has no Fmax and says why.
    unrouted = {"lanes": 4, "pixels_per_beat": 8, "lut4": 2345, "ff": 678,
                "not_routed": "router2 stopped at iteration 130", "weights_in": "LUTs",
                "tool_seconds": 1.0, "key": report.cache_key(
                    generate(network, lanes=4, pixels_per_beat=8), xilinx=False, frequency=125,
                    speed_grade=grade)}
    (tmp_path / "report" / "lanes4_ppb8").mkdir()
    (tmp_path / "report" / "lanes4_ppb8" / "row.json").write_text(json.dumps(unrouted))
    rows = report.write_report(network, images, tmp_path / "report", [(16, 8, 1), (4, 8, 1)],
                               jobs=2, xilinx=False)
    assert [(row["lanes"], row["lut4"], row.get("fmax_mhz")) for row in rows] == [
        (16, 1234, 77.5), (4, 2345, None)]
    assert rows[0]["events_per_cycle"] == 1
    assert "images_per_s" in rows[0] and "images_per_s" not in rows[1]
    table = (tmp_path / "report" / "report.md").read_text().splitlines()
    assert table[-1].endswith("| – | router2 stopped at iteration 130 |")
    assert not (work_dir / "bs4nn.v").exists()  # written only when the tools run
    assert json.loads((tmp_path / "report" / "report.json").read_text())["rows"] == rows
    assert (tmp_path / "report" / "cycles_vs_lanes.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "report" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # A configuration whose folder cannot be made fails with its own error.
    (tmp_path / "report" / "lanes8_ppb8").write_text("not a folder")
    with pytest.raises(FileExistsError, match="lanes8_ppb8"):
        report.write_report(network, images, tmp_path / "report", [(8, 8, 1), (16, 8, 1)],
                            jobs=2, xilinx=False)


@pytest.mark.parametrize("arguments, message", [
    (["--device", "ice40-hx8k"],
     "--device must be one of ecp5-85f, ecp5-85f-8, ice40-up5k, got 'ice40-hx8k'"),
    (["--device", "ice40-up5k", "--frequency", "0"], "--frequency must be positive, got 0"),
])
def test_bad_device_options_are_one_line(tmp_path, capsys, arguments, message):
    from bs4nn.cli import main

    out = tmp_path / "report"
    assert main(["report", *arguments, "--out-dir", str(out)]) == 1
    assert capsys.readouterr().err.strip() == f"bs4nn report: error: {message}"
    assert not out.exists()


def test_up5k_rows_get_a_board_core_with_run_time_weights():
    # The tools themselves run in the slow tier; here only the core the UP5K row measures.
    from bs4nn.gen.board import BOARDS
    from bs4nn.sim.bitstream import board_core

    network = random_network(np.random.default_rng(2), (16, 4, 2))
    core = board_core(BOARDS["icebreaker"], network,
                      weight_storage=report.DEVICES["ice40-up5k"].weight_storage)
    assert core.weight_upload and core.accelerator.weight_storage != "rom"


@pytest.mark.slow
@pytest.mark.xdist_group("tools")
# The board top's pins (bs4nn.gen.board) are still requested the Amaranth 0.4 way.
@pytest.mark.filterwarnings("ignore:Using platform.request without:DeprecationWarning")
def test_tiny_design_goes_through_the_ice40_tools(tmp_path, monkeypatch):
    """A 16-4-2 network (weights in ROM: constants in LUTs) on the
    iCEBreaker board build, and its bare IP through synth_ice40 (about 40 s in all)."""
    from bs4nn.gen.build import generate

    seed = 2
    print(f"seed {seed}")
    network = random_network(np.random.default_rng(seed), (16, 4, 2))
    monkeypatch.setitem(report.DEVICES, "ice40-up5k",
                        dataclasses.replace(report.DEVICES["ice40-up5k"], weight_storage="rom"))
    row = report.implement_configuration(network, 0, 1, 1, tmp_path / "board", xilinx=False,
                                         frequency=30, device="ice40-up5k")
    assert row["device"] == "ice40-up5k" and row["lanes"] == 4
    assert 1000 < row["logic_cells"] <= 5280 and row["sb_lut4"] > 1000
    assert 5 < row["fmax_mhz"] < 200
    assert row["sb_spram256ka"] == 0 and row["weights_in"] == "LUTs"  # 64 bits: constants
    (tmp_path / "ip").mkdir()
    verilog = tmp_path / "ip" / "bs4nn.v"
    verilog.write_text(generate(network, pixels_per_beat=1).verilog)
    cells = implement.synth_ice40(verilog, tmp_path / "ip")
    assert cells["sb_lut4"] > 1000 and cells["sb_dff"] > 100
    assert (tmp_path / "ip" / "ice40.json").is_file()


def test_port_paths_are_the_routed_ones():
    """nextpnr states the port paths after placement and again after routing."""
    log = """Info: Max delay <async>                           -> posedge $glbnet$clk: 14.90 ns
Info: Max delay posedge $glbnet$clk -> <async>                          : 12.68 ns
Info: Routing..
Info: Max delay <async>                           -> posedge $glbnet$clk: 16.71 ns
Info: Max delay posedge $glbnet$clk -> <async>                          : 9.43 ns
"""
    assert implement.port_paths(log) == {"input_to_reg_ns": 16.71, "reg_to_output_ns": 9.43}
    assert implement.port_paths("Info: Max frequency for clock 'clk': 62.28 MHz") == {}


def test_replicated_registers_survive_synthesis(tmp_path):
    """Three equal copies of an enable, each gating 8 flip-flops: synth_ecp5 keeps all three
    (plain Yosys merges them into one)."""
    from amaranth.back import verilog
    from amaranth.hdl import Module, Signal

    from bs4nn.gen.replicas import replicated_register

    m = Module()
    enable, data, held = Signal(), Signal(24), Signal(24)
    for k, copy in enumerate(replicated_register(m, enable, 3, "enable")):
        with m.If(copy):
            m.d.sync += held[8 * k:8 * (k + 1)].eq(data[8 * k:8 * (k + 1)])
    path = tmp_path / "bs4nn.v"
    path.write_text(verilog.convert(m, ports=[enable, data, held], name="bs4nn"))
    assert implement.synth_ecp5(path, tmp_path)["ff"] == 3 + 24


def test_replicas_emitted_under_a_memory_port_name_survive_synthesis(tmp_path):
    """The scheduler's copies of a step memory's write address, one per position, reach the
    Verilog as aliases of the memory ports' registers; synth_ecp5 still keeps one register per
    position."""
    from bs4nn.gen.build import generate

    network = random_network(np.random.default_rng(0), [16, 6, 3])
    (tmp_path / "bs4nn.v").write_text(generate(network, pixels_per_beat=4).verilog)
    implement.synth_ecp5(tmp_path / "bs4nn.v", tmp_path)
    netlist = json.loads((tmp_path / "ecp5.json").read_text())["modules"]["bs4nn"]
    drivers = {cell["connections"]["Q"][0]: name for name, cell in netlist["cells"].items()
               if cell["type"] == "TRELLIS_FF"}
    copies = {tuple(drivers[bit] for bit in net["bits"])
              for name, net in netlist["netnames"].items()
              if re.fullmatch(r"core\.scheduler\.s1_step_address_replica\d+", name)}
    assert len(copies) == 4
