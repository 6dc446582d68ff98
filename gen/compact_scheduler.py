"""The compact scheduler's parts: one pixel per beat, one event per round, block RAM only.

:class:`~.scheduler.EventScheduler` builds these instead of its fast parts when
:func:`compact_applies` (see there): the same tokens in the same cycles as the schedule
formula says, at a fraction of the logic. Each bank has three block RAMs:

* ``heads{b}`` (256 words): while loading, ``heads[step]`` is the last beat whose pixel spikes
  at ``step`` (never cleared: a head is one of the image's iff it names an earlier beat whose
  step is ``step``); once loaded, the :class:`Compactor` rewrites it in place as the image's
  *step list*: the non-empty steps in order, each with its head, then an end entry.
* ``steps{b}`` (a word per beat): the step of the beat's pixel (255 for none).
* ``links{b}`` (a word per beat): the previous beat of the same step, and a ``more`` bit.

:class:`CompactLoader` inserts a beat per cycle into the bank being loaded; the
:class:`Compactor` of a loaded bank scans its 256 heads (256 cycles) into the step list;
:class:`CompactWalker` then reads the step list and the lists one node at a time. A bank's
three memories serve one of these at a time (load, compact, walk), so each has one read and
one write port.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Mux, Signal
from amaranth.lib import data
from amaranth.lib.memory import Memory

__all__ = ["compact_applies", "COMPACT_MIN_GROUPS", "CompactStorage", "CompactLoader",
           "Compactor", "CompactWalker"]

N_STEPS = 256
#: Lane groups the compact scheduler needs at least: a round lasts that many cycles, in which
#: the walker reads the next node's link (and, at a step's end, the next step's entry).
COMPACT_MIN_GROUPS = 3


def compact_applies(pixels_per_beat, events_per_cycle, groups):
    """Whether the scheduler is the compact one: one pixel per beat, one event per round and
    at least :data:`COMPACT_MIN_GROUPS` lane groups (a folded first layer)."""
    return pixels_per_beat == 1 and events_per_cycle == 1 and groups >= COMPACT_MIN_GROUPS


def entry_layout(ptr_width):
    """A step list entry: the step, its head beat, and ``end`` (the entry after the last)."""
    return data.StructLayout({"ptr": ptr_width, "step": 8, "end": 1})


class CompactStorage:
    """Each bank's memories and their ports (one read, one write), plus the bank flags."""

    def __init__(self, m, n_beats, ptr_width):
        self.ptr_width = ptr_width
        self.head_read, self.head_write = [], []
        self.step_read, self.step_write = [], []
        self.link_read, self.link_write = [], []
        for b in range(2):
            heads = m.submodules[f"heads{b}"] = Memory(
                shape=entry_layout(ptr_width), depth=N_STEPS, init=[])
            steps = m.submodules[f"steps{b}"] = Memory(shape=8, depth=n_beats, init=[])
            # link word: bits [0, ptr_width) previous beat of the list, bit ptr_width "more"
            links = m.submodules[f"links{b}"] = Memory(shape=ptr_width + 1, depth=n_beats,
                                                       init=[])
            self.head_read.append(heads.read_port())
            self.head_write.append(heads.write_port())
            self.step_read.append(steps.read_port())
            self.step_write.append(steps.write_port())
            self.link_read.append(links.read_port())
            self.link_write.append(links.write_port())
        self.full = Signal(2)       # loaded, not yet finished by the walker
        self.error = Signal(2)      # the frame in the bank was malformed
        self.compacted = Signal(2)  # the bank's step list is written


class CompactLoader:
    """Inserts a beat per cycle into the bank being loaded (like ``BankLoader``, for one
    pixel per beat): stage 0 (the beat is accepted) reads the old head of the pixel's step
    and writes the beat as its new head and its step; stage 1 reads the step of the old
    head's beat; stage 2 writes the beat's link, whose ``more`` bit says the old head is one
    of the image's. The bank is marked full as the frame's last beat is accepted (so no
    frame after it can be taken into the bank), and its :class:`Compactor` starts in the
    next cycle: it reads the heads and steps, which the beat's stage 0 has written, and uses
    the step port only from its second cycle, after the beat's stage 1."""

    #: Cycles from a frame's last beat being accepted to its bank being marked full.
    load_to_full = 1
    #: Cycles from an image's finish (bank released) to the first cycle its bank takes a beat.
    finish_to_load = 1

    def build(self, m, store, beats, pause, release):
        """As ``BankLoader.build``: returns ``frame_open`` and ``busy``."""
        ptr_width = store.ptr_width
        load_bank = Signal()
        frame_open = Signal()
        accept = Signal()
        m.d.comb += [
            beats.ready.eq(~store.full.bit_select(load_bank, 1) & ~(pause & ~frame_open)),
            accept.eq(beats.valid & beats.ready),
        ]
        beat, pixel = beats.payload.beat, beats.payload.pixels[0]
        insert = Signal()
        m.d.comb += insert.eq(beats.payload.keep & (pixel != 0))
        for b in range(2):
            here = accept & (load_bank == b)
            m.d.comb += [
                store.head_read[b].addr.eq(~pixel),
                store.head_write[b].addr.eq(~pixel),
                store.head_write[b].data.ptr.eq(beat),
                store.head_write[b].en.eq(here & insert),
                store.step_write[b].addr.eq(beat),
                store.step_write[b].data.eq(Mux(insert, ~pixel, N_STEPS - 1)),
                store.step_write[b].en.eq(here & beats.payload.keep),
            ]
        with m.If(accept & beats.payload.end):
            m.d.sync += [load_bank.eq(~load_bank), frame_open.eq(0)]
        with m.Elif(accept):
            m.d.sync += frame_open.eq(1)

        stage = data.StructLayout({"valid": 1, "bank": 1, "beat": ptr_width, "step": 8,
                                   "insert": 1})
        s1, s2 = Signal(stage), Signal(stage)
        s2_previous = Signal(ptr_width)
        m.d.sync += [
            s1.valid.eq(accept), s1.bank.eq(load_bank), s1.beat.eq(beat), s1.step.eq(~pixel),
            s1.insert.eq(accept & insert), s2.eq(s1),
        ]
        previous = Mux(s1.bank, store.head_read[1].data.ptr, store.head_read[0].data.ptr)
        m.d.sync += s2_previous.eq(previous)
        step_of_previous = Mux(s2.bank, store.step_read[1].data, store.step_read[0].data)
        for b in range(2):
            m.d.comb += [
                store.step_read[b].addr.eq(previous),
                store.link_write[b].addr.eq(s2.beat),
                store.link_write[b].data.eq(Cat(
                    s2_previous, (s2_previous < s2.beat) & (step_of_previous == s2.step))),
                store.link_write[b].en.eq(s2.insert & (s2.bank == b)),
            ]
            with m.If(accept & beats.payload.end & (load_bank == b)):
                m.d.sync += [store.full[b].eq(1), store.error[b].eq(beats.payload.error)]
            with m.If(release[0] & (release[1] == b)):
                m.d.sync += store.full[b].eq(0)
        return SimpleNamespace(frame_open=frame_open, busy=s1.valid | s2.valid)


class Compactor:
    """Rewrites a loaded bank's heads as its step list: steps 0 .. 255 are read in order
    (head, then the step of the head's beat, to check it), and each step with a list is
    written at the next entry, which never passes the step being read; step 255 (pixel 0)
    never has one, and writes the end entry instead."""

    #: Cycles from a bank being marked full to the first cycle its step list is complete.
    full_to_done = N_STEPS + 2

    def build(self, m, store, b, release):
        """Drive bank ``b``'s head and step ports while it compacts (overriding the
        loader's); ``release`` as for the loader clears ``compacted``."""
        ptr_width = store.ptr_width
        compacting = Signal(name=f"compacting{b}")
        scan = Signal(range(N_STEPS + 1), name=f"scan{b}")
        written = Signal(8, name=f"written{b}")
        layout = data.StructLayout({"valid": 1, "step": 8, "ptr": ptr_width})
        c1, c2 = Signal(layout, name=f"compact{b}_c1"), Signal(layout, name=f"compact{b}_c2")
        m.d.comb += compacting.eq(store.full[b] & ~store.compacted[b])
        reading = compacting & (scan != N_STEPS)
        with m.If(compacting):
            m.d.comb += store.head_read[b].addr.eq(scan)
        with m.If(c1.valid):
            m.d.comb += store.step_read[b].addr.eq(store.head_read[b].data.ptr)
        with m.If(reading):
            m.d.sync += scan.eq(scan + 1)
        m.d.sync += [
            c1.valid.eq(reading), c1.step.eq(scan),
            c2.valid.eq(c1.valid), c2.step.eq(c1.step), c2.ptr.eq(store.head_read[b].data.ptr),
        ]
        last = c2.step == N_STEPS - 1
        has_list = store.step_read[b].data == c2.step
        with m.If(c2.valid & (last | has_list)):
            m.d.comb += [
                store.head_write[b].addr.eq(written),
                store.head_write[b].data.eq(Cat(c2.ptr, c2.step, last)),
                store.head_write[b].en.eq(1),
            ]
            m.d.sync += written.eq(written + 1)
        with m.If(c2.valid & last):
            m.d.sync += store.compacted[b].eq(1)
        with m.If(release[0] & (release[1] == b)):
            m.d.sync += [store.compacted[b].eq(0), scan.eq(0), written.eq(0)]


class CompactWalker:
    """Reads the step list of the image's bank and walks its lists, one node per round.

    ``cur`` is the node being sent (with its link word, so that ``step_end`` is known with
    it); ``nxt`` the node after it, with its link word, read in the cycle after each advance:
    the current node's successor, or the first node of the next step list entry, which is
    kept read ahead in ``entry``. A round lasts ``groups >= 3`` cycles, time enough for
    both reads, so ``nxt`` is always ready for the next round. An image's finish clears all
    three, and the walker starts on the next bank as soon as its step list is complete.
    """

    #: Cycles from the first cycle a bank's step list is complete (with the walker free) to
    #: the first cycle its image can start: read the first entry, register it, read the
    #: first node's link, register it.
    done_to_ready = 4
    #: Cycles from an image's finish to the first cycle the next image can start (its step
    #: list being complete): the walker is cleared, then as for :attr:`done_to_ready`.
    finish_to_ready = 1 + done_to_ready

    def build(self, m, store, *, bank, start, advance, skip, finish):
        """Returns ``r`` (``valid``, ``step``, ``ready``: the next node) and the round
        (``slots``, ``pixels``, ``step_end``), like the fast parts."""
        ptr_width = store.ptr_width
        node = data.StructLayout({"valid": 1, "ptr": ptr_width, "step": 8, "more": 1,
                                  "previous": ptr_width})
        cur, nxt = Signal(node, name="cur"), Signal(node, name="nxt")
        nxt_ready = Signal()
        entry = Signal(entry_layout(ptr_width), name="entry")
        entry_ready = Signal()
        entry_reading = Signal()
        entry_index = Signal(8)
        ended = Signal()         # the end entry has been read
        link_reading = Signal()
        link_node = Signal(entry_layout(ptr_width), name="link_node")
        enabled = store.compacted.bit_select(bank, 1)
        head = Signal(entry_layout(ptr_width), name="head")
        link = Signal(ptr_width + 1, name="link")
        m.d.comb += [
            head.eq(Mux(bank, store.head_read[1].data, store.head_read[0].data)),
            link.eq(Mux(bank, store.link_read[1].data, store.link_read[0].data)),
        ]

        read_entry = Signal()
        m.d.comb += read_entry.eq(enabled & ~entry_ready & ~entry_reading & ~ended)
        for b in range(2):
            with m.If(store.compacted[b]):
                m.d.comb += store.head_read[b].addr.eq(entry_index)
        with m.If(read_entry):
            m.d.sync += entry_index.eq(entry_index + 1)
        m.d.sync += entry_reading.eq(read_entry)
        with m.If(entry_reading):
            m.d.sync += [entry.eq(head), entry_ready.eq(1), ended.eq(head.end)]

        # The next node: the successor of the current one, else the next entry's first.
        follow = cur.valid & cur.more
        source = Signal(entry_layout(ptr_width))
        m.d.comb += source.eq(Mux(follow, Cat(cur.previous, cur.step, 0), entry))
        read_link = Signal()
        m.d.comb += read_link.eq(enabled & ~nxt_ready & ~link_reading & (follow | entry_ready))
        for b in range(2):
            m.d.comb += store.link_read[b].addr.eq(source.ptr)
        with m.If(read_link & ~follow):
            m.d.sync += entry_ready.eq(0)
        m.d.sync += link_reading.eq(read_link)
        with m.If(read_link):
            m.d.sync += link_node.eq(source)
        with m.If(link_reading):
            m.d.sync += [
                nxt.valid.eq(~link_node.end), nxt.ptr.eq(link_node.ptr),
                nxt.step.eq(link_node.step), nxt.previous.eq(link[:ptr_width]),
                nxt.more.eq(link[ptr_width]), nxt_ready.eq(1),
            ]

        with m.If(start | advance):
            m.d.sync += [cur.eq(nxt), nxt_ready.eq(0)]
            with m.If(skip):
                m.d.sync += cur.valid.eq(0)
        with m.If(finish):   # never with `start` or `advance`
            m.d.sync += [cur.valid.eq(0), nxt_ready.eq(0), entry_ready.eq(0),
                         entry_reading.eq(0), entry_index.eq(0), ended.eq(0),
                         link_reading.eq(0)]
        r = SimpleNamespace(valid=nxt.valid, step=nxt.step, ready=nxt_ready)
        walkers = SimpleNamespace(slots=cur.valid, pixels=[cur.ptr], step_end=~cur.more)
        return r, walkers
