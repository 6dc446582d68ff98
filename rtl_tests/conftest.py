"""pytest setup for the cocotb system tests: the testbench helpers import as top-level modules
(as they do inside the simulator, where the runner puts this folder on the path), and a test
that needs a simulator asks for it through the ``require_tool`` fixture."""

import os
import sys
from pathlib import Path

import pytest

from bs4nn.model.errors import UserError
from bs4nn.sim import toolchain

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def require_tool(simulator):
    """Make ``simulator`` ready (``toolchain.prepare``, which installs Icarus where it can).
    Where it cannot, the test is skipped with the reason in one line, or fails under ``CI=true``:
    a CI run must not pass by skipping what it was meant to run."""
    try:
        toolchain.prepare(simulator)
    except UserError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{error} (CI=true: a missing tool fails the test)", pytrace=False)
        pytest.skip(str(error))


@pytest.fixture(name="require_tool")
def require_tool_fixture():
    """:func:`require_tool`, for the tests of this folder."""
    return require_tool
