"""pytest setup for the cocotb system tests: the testbench helpers import as top-level modules
(as they do inside the simulator, where the runner puts this folder on the path)."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
