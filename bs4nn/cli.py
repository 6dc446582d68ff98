"""The ``bs4nn`` command line: a thin layer that maps sub-commands onto their modules.

Each sub-command is a module of :mod:`bs4nn.commands` providing ``add_arguments(parser)`` and
``run(args) -> int``; it parses options and calls the libraries below (``bs4nn.model``,
``bs4nn.gen``, ``bs4nn.sim``). A module is imported only when its sub-command runs, so
``bs4nn data`` does not pay for Amaranth or cocotb. A :class:`~bs4nn.model.errors.UserError`
becomes one line, ``bs4nn NAME: error: ...``, and exit status 1.
"""

import argparse
import importlib
import sys

from .model.errors import UserError

#: name: (module, description)
COMMANDS = {
    "data": ("bs4nn.commands.data", "load and verify the datasets"),
    "evaluate": ("bs4nn.commands.evaluate", "strict accuracy of a weights file"),
    "train": ("bs4nn.commands.train", "train a network (exact integer forward)"),
    "sweep": ("bs4nn.commands.sweep", "hyperparameter search over train's options (Ray Tune)"),
    "export": ("bs4nn.commands.export", "write $readmemh ROM files of a weights file"),
    "import-reference": ("bs4nn.commands.import_reference",
                         "convert the authors' reference weights to a weights file"),
    "raster": ("bs4nn.commands.raster", "PNG spike raster of one image"),
    "verilog": ("bs4nn.commands.verilog", "generate the accelerator's Verilog"),
    "sim": ("bs4nn.commands.sim", "run a cocotb testbench under Verilator or Icarus"),
    "report": ("bs4nn.commands.report", "synthesis and place-and-route figures"),
    "bench": ("bs4nn.commands.bench", "benchmarks side by side"),
    "formal": ("bs4nn.commands.formal", "prove the interface properties (SymbiYosys)"),
    "bitstream": ("bs4nn.commands.bitstream", "build a board's bitstream (ULX3S, iCEBreaker)"),
    "board": ("bs4nn.commands.board", "run the accelerator on a board over its serial link"),
}


def _usage():
    lines = ["usage: bs4nn COMMAND [options]   (bs4nn COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:17} {description}" for name, (_, description) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"bs4nn: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, description = COMMANDS[name]
    command = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"bs4nn {name}", description=description)
    command.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return command.run(args) or 0
    except UserError as error:
        print(f"bs4nn {name}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bs4nn {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
