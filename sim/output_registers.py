"""Fold the flip-flops that register a DP16KD's read data into the block RAM's own output
register (``REGMODE_x = "OUTREG"``), in a ``synth_ecp5`` netlist.

A DP16KD without its output register (Yosys's mapping always leaves it off) delivers its read
data 5.83 ns after the clock in nextpnr-ecp5's timing model at speed grade 6, most of a
125 MHz cycle, even when the data only enter flip-flops. With the output register the block
RAM delivers them a cycle later, straight from that register, which is what the flip-flops
did. Vendor tools make this fold themselves; Yosys does not, so it is done here on the JSON
netlist, between synthesis and placement, and changes no cycle of the design: a port is
folded only when every data output it drives feeds exactly one flip-flop, on the port's
clock, without a set or reset and with an initial value of 0 (the output register's), all
with one clock enable, which becomes the port's output clock enable (``OCEx``).
"""

from collections import defaultdict

__all__ = ["fold_output_registers"]

DATA_BITS = 18


def _sinks(module):
    """Every net bit's loads: ``(cell, port)`` pairs (``None`` for a module port)."""
    sinks = defaultdict(list)
    for name, cell in module["cells"].items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) != "output":
                for bit in bits:
                    sinks[bit].append((name, port))
    for port in module.get("ports", {}).values():
        if port["direction"] != "input":
            for bit in port["bits"]:
                sinks[bit].append((None, None))
    return sinks


def _foldable(module, sinks, ram, side):
    """The flip-flops that register the data outputs of ``ram``'s port ``side`` and their
    common clock enable, or ``None`` if the port cannot be folded."""
    cells = module["cells"]
    params = ram["parameters"]
    if params.get(f"REGMODE_{side}", "NOREG") != "NOREG":
        return None
    if params.get(f"CLK{side}MUX", f"CLK{side}") != f"CLK{side}":
        return None
    if int(str(params.get("DATA_WIDTH_A", "0")), 2) == 36:
        return None   # pseudo dual port: both halves' outputs belong to port B's read
    clock = ram["connections"].get(f"CLK{side}")
    if ram["connections"].get(f"OCE{side}") != ["1"] or ram["connections"].get(
            f"RST{side}") != ["0"]:
        return None
    flip_flops, enables = {}, set()
    for index in range(DATA_BITS):
        bits = ram["connections"].get(f"DO{side}{index}")
        if not bits or not isinstance(bits[0], int) or not sinks[bits[0]]:
            continue
        loads = sinks[bits[0]]
        if len(loads) != 1 or loads[0][0] is None:
            return None
        name, port = loads[0]
        cell = cells[name]
        ff = cell["parameters"]
        if cell["type"] != "TRELLIS_FF" or port != "DI":
            return None
        if (cell["connections"]["CLK"] != clock or ff.get("CLKMUX") != "CLK"
                or ff.get("REGSET") != "RESET" or ff.get("GSR") != "DISABLED"
                or ff.get("LSRMUX") != "LSR" or cell["connections"].get("LSR") != ["0"]):
            return None
        if ff.get("CEMUX") == "CE":
            enable = cell["connections"]["CE"][0]
        elif ff.get("CEMUX", "").strip() == "1":
            enable = "1"
        else:
            return None
        enables.add(enable)
        flip_flops[index] = name
    if not flip_flops or len(enables) != 1:
        return None
    return flip_flops, enables.pop()


def fold_output_registers(netlist, top):
    """Fold every foldable DP16KD port of module ``top`` (see the module doc); returns how
    many flip-flops were folded."""
    module = netlist["modules"][top]
    cells = module["cells"]
    sinks = _sinks(module)
    folded = 0
    for ram in [cell for cell in cells.values() if cell["type"] == "DP16KD"]:
        for side in "AB":
            found = _foldable(module, sinks, ram, side)
            if found is None:
                continue
            flip_flops, enable = found
            ram["parameters"][f"REGMODE_{side}"] = "OUTREG"
            ram["connections"][f"OCE{side}"] = [enable]
            for index, name in flip_flops.items():
                ram["connections"][f"DO{side}{index}"] = cells.pop(name)["connections"]["Q"]
            folded += len(flip_flops)
    return folded
