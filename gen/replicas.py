"""Copies of a control register, one per few lanes, so that no net fans out to every lane.

A register that enables or resets every lane's counter drives thousands of flip-flops
spread over the die; its net alone can take most of a clock period. Each copy drives the
lanes of one slice instead and sits beside them. The copies are equal in every cycle, so
Yosys would merge them back into one register: synthesis keeps the registers whose names
carry :data:`REPLICA_MARK` apart (``bs4nn.sim.implement``).
"""

from amaranth.hdl import Signal

__all__ = ["REPLICA_MARK", "replicated_register", "replicated_tree", "copies_for"]

#: In the name of every copy: the synthesis scripts keep these registers (``setattr keep``).
REPLICA_MARK = "_replica"

#: Flip-flop control inputs (enable or set/reset) one copy drives at most.
LOADS_PER_COPY = 96
#: Copies one register of the first level of a :func:`replicated_tree` feeds.
TREE_BRANCHING = 8


def copies_for(loads):
    """Copies needed so that none drives more than :data:`LOADS_PER_COPY` loads."""
    return max(1, -(-loads // LOADS_PER_COPY))


def replicated_register(m, value, copies, name):
    """``copies`` 1-bit registers in ``sync``, each loaded with ``value`` every cycle."""
    registers = []
    for index in range(copies):
        register = Signal(name=f"{name}{REPLICA_MARK}{index}")
        m.d.sync += register.eq(value)
        registers.append(register)
    return registers


def replicated_tree(m, value, copies, name, levels=2):
    """``copies`` registers equal to ``value`` ``levels`` cycles late, through a tree whose
    registers each feed :data:`TREE_BRANCHING` registers of the next level at most: one
    register's net would still span every copy, so each register feeds a few only."""
    sizes = [copies]
    for _ in range(levels - 1):
        sizes.insert(0, -(-sizes[0] // TREE_BRANCHING))
    sources = [value]
    for level, size in enumerate(sizes):
        suffix = "" if level == levels - 1 else f"_level{level}"
        registers = []
        for index in range(size):
            register = Signal(name=f"{name}{suffix}{REPLICA_MARK}{index}")
            m.d.sync += register.eq(sources[index * len(sources) // size])
            registers.append(register)
        sources = registers
    return sources
