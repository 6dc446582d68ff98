"""The ``bs4nn`` command line: a thin layer that maps sub-commands onto the modules below.

Each sub-command lives in the module that owns the work; that module provides
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their
sub-command runs, so ``bs4nn data`` does not pay for Amaranth or cocotb.
"""

import argparse
import importlib
import sys

from .model.errors import UserError

COMMANDS = {
    "data": ("bs4nn.model.commands", "data", "load and verify the datasets"),
    "evaluate": ("bs4nn.model.commands", "evaluate", "strict accuracy of a weights file"),
    "train": ("bs4nn.commands.train", None, "train a network (exact integer forward)"),
    "export": ("bs4nn.model.commands", "export", "write $readmemh ROM files of a weights file"),
    "import-reference": ("bs4nn.model.commands", "import_reference",
                         "convert the authors' reference weights to a weights file"),
    "raster": ("bs4nn.model.commands", "raster", "PNG spike raster of one image"),
    "verilog": ("bs4nn.gen.build", None, "generate the accelerator's Verilog"),
    "sim": ("bs4nn.sim.runner", None, "run a cocotb testbench under Verilator or Icarus"),
    "report": ("bs4nn.sim.report", None, "synthesis and place-and-route figures"),
    "bench": ("bs4nn.sim.bench", None, "benchmarks side by side"),
}


def _usage():
    lines = ["usage: bs4nn COMMAND [options]   (bs4nn COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:17} {description}" for name, (_, _, description) in COMMANDS.items()]
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
    module_name, prefix, description = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith("bs4nn"):
            print(f"bs4nn {name}: not available in this version ({module_name} is missing)",
                  file=sys.stderr)
            return 2
        raise
    add_arguments = getattr(module, f"add_{prefix}_arguments" if prefix else "add_arguments")
    run = getattr(module, f"run_{prefix}" if prefix else "run")
    parser = argparse.ArgumentParser(prog=f"bs4nn {name}", description=description)
    add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return run(args) or 0
    except UserError as error:
        print(f"bs4nn {name}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bs4nn {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
