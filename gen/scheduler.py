"""Encoder and time-ordered event scheduler, double-buffered, several events per cycle.

How it works
------------
Pixel ``p`` spikes at step ``255 - p`` (the bitwise NOT of the 8-bit pixel); pixel 0 would
spike at step 255, where no hidden neuron can spike any more, so it is not stored at all.

At one pixel per beat, one event per round and at least three lane groups the scheduler is
built from the compact parts of :mod:`.compact_scheduler` (block RAM only, no step search;
the same schedule formula with its own latencies). Otherwise it is four builders over one
storage, each with its latencies as class constants that :attr:`EventScheduler.load_to_start`
and the other schedule constants sum:

* :class:`BankLoader` writes each image into one of two banks while the other bank is read,
  so image ``k + 1`` loads while image ``k`` computes. A bank holds, for each of the
  ``pixels_per_beat`` positions ``k`` of a beat, a linked list per time step: ``head_k[step]``
  is the last beat whose pixel ``k`` spikes at ``step`` and the list's length,
  ``next_k[beat]`` links to the previous one, ``step_k[beat]`` is the step of the beat's pixel
  ``k`` (255 when it is not stored), and the step rows ``rows_k[chunk]`` (a 16-word LUT RAM
  per position and bank) say at which steps of each 16-step chunk pixel ``k`` has a list, a
  ``touched`` bit per chunk saying which words are the image's. Heads are never cleared: a
  head is one of the image's iff it names an earlier beat of the image whose ``step_k`` is
  that step (a stale head fails the test, as the beat it names is either not loaded yet or
  spikes at another step). A whole beat is inserted per cycle, whatever its pixels.
* :class:`StepFinder` keeps the next non-empty step ready in registers ``R``: the step rows
  are read a 16-step chunk at a time (ORed over the positions), and the chunks' steps are
  queued in order (then the image's end, a step-less entry); each queued
  step is *issued*: its heads are read from every position's head memory, the read is
  registered, then the positions that have a list there are found (step memory read and
  compare, into a register) and the prepared step goes into ``R``, or into a small FIFO
  behind it. Steps are issued while fewer than ``prepared_steps`` are issued and not yet
  taken, a count kept in a register, so no block RAM's address or enable depends on the
  walkers' decisions of the same cycle. ``R`` is two registers and a pointer: a take flips
  the pointer, and the register it leaves is refilled later, so that no walker's decision
  enables ``R``'s registers. ``R`` holds an image's first step before it starts; an image's
  finish flushes its prepared steps.
* :class:`Walkers`: ``events_per_cycle`` walkers share the positions (walker ``w`` owns the
  positions ``k`` with ``k % events_per_cycle == w``). All walkers take a step from ``R``
  together; each follows its positions' lists for that step, one node per cycle, and the step
  ends when every walker is done. A cycle's nodes form one *round*: a token with one event
  slot per walker. A walker counts its list's nodes down from the length in the head, so
  whether it is done after a round, and so the step's end, comes from registers. Each
  position's link memory is read one cycle ahead of the node it serves, and the address of the
  next read depends on the data just read through one multiplexer, whose choice is a register
  (a list's next node, or a register: the position's head for this step or for the next one).
* the output token register: a round chosen in cycle ``c`` leaves on ``o_events`` in cycle
  ``c + 1``.

An image's tokens are: a ``start`` token in the cycle the image starts (``S``), then its
rounds at ``S + 1 + j * groups + g`` (each round is sent once per lane group ``g``). A step
costs as many rounds as the longest of its walkers' share of the step's events. The image is
finished in the cycle after its last round (``S + 1 + rounds * groups``), or earlier when the
output layer announces its decision through ``i_kill``: the walkers then drop the rest of
the image :attr:`~EventScheduler.kill_to_finish` cycles later (the kill is registered, so
that the output layer's wires reach no walker's register). The next image starts when its
bank is loaded, its first step is in ``R`` and a result credit is free: at most ``credits``
images are started and not yet taken from the result queue, so the result queue of that
depth can never overflow and the compute pipeline never has to stall.
"""

import functools
import operator
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .compact_scheduler import (
    CompactLoader,
    Compactor,
    CompactStorage,
    CompactWalker,
    compact_applies,
)
from .first_set import decode, encode, first_set, lowest_one_hot
from .layouts import event_layout, framed_beat_layout, index_shape
from .pixel_input import PIXELS_PER_BEAT_CHOICES, beats_per_frame
from .replicas import REPLICA_MARK, replicated_register

__all__ = ["EventScheduler", "BankLoader", "StepFinder", "Walkers", "EVENTS_PER_CYCLE_CHOICES"]

N_STEPS = 256
#: Register bits one copy of a load enable drives (see :mod:`.replicas`).
BITS_PER_COPY = 32
#: Supported walker counts (event slots per token); at most ``pixels_per_beat``.
EVENTS_PER_CYCLE_CHOICES = (1, 2, 4, 8, 16)


def head_layout(ptr_width, length_width):
    """A head memory word: the last beat stored in a position's list at a step, the list's
    length, and whether that is 1 (so that a walker starting the list knows it from a
    register)."""
    return data.StructLayout({"beat": ptr_width, "length": length_width, "single": 1})


class _Storage:
    """The banks' memories: per position a head memory and a step memory (block RAM, read
    synchronously), a link memory (a small LUT RAM: it is on the walkers' one-cycle loop) and,
    per bank, a step-row memory (a 16-word LUT RAM) with its ``touched`` bits."""

    def __init__(self, m, ppb, n_beats, ptr_width, length_width):
        self.head_layout = head_layout(ptr_width, length_width)
        self.heads, self.links, self.steps = [], [], []
        # No read of a head or step memory uses a word written in the same cycle (the loader
        # forwards its own writes, or rejects the word; the step finder reads a full bank,
        # which is not written), so Yosys is told not to build logic that would give such a
        # read a defined result (`no_rw_check`): in block RAM that logic is a register and a
        # multiplexer after the RAM's slow output, and an address compare, per port.
        block_ram = {"ram_style": "block", "no_rw_check": 1}
        for k in range(ppb):
            self.heads.append(Memory(shape=self.head_layout, depth=2 * N_STEPS, init=[],
                                     attrs=block_ram))
            # A node's link: the previous beat of its list (the list's length says where the
            # list ends), at `Cat(bank, beat)`: with the bank the low bit, the two banks' words
            # fill the first `2 * n_beats`, and the LUT RAM is no deeper than that.
            self.links.append(Memory(shape=ptr_width, depth=2 * n_beats, init=[],
                                     attrs={"ram_style": "distributed"}))
            # Read one cycle ahead of its use, at the head memories' output (a LUT RAM with
            # a read mux per copy cost about a fifth of the scheduler's LUTs).
            self.steps.append(Memory(shape=8, depth=2 << ptr_width, init=[], attrs=block_ram))
            m.submodules[f"heads{k}"] = self.heads[k]
            m.submodules[f"links{k}"] = self.links[k]
            m.submodules[f"step_mem{k}"] = self.steps[k]
        # Per bank and position, the steps of the position's pixels as rows of a small LUT
        # RAM (read asynchronously): word `c` has bit `i` set if the position's pixel of some
        # beat spikes at step `StepFinder.chunk_steps * c + i`. A word is the image's only if
        # its bit in `touched` is set (words are never cleared); `chunks` is the OR of the
        # positions' `touched`, the 16-step chunks that have a step.
        chunk_count = StepFinder.chunk_count
        self.step_rows = [[Memory(shape=StepFinder.chunk_steps, depth=chunk_count, init=[],
                                  attrs={"ram_style": "distributed"}) for k in range(ppb)]
                          for b in range(2)]
        self.touched = [[Signal(chunk_count, name=f"touched{b}_{k}") for k in range(ppb)]
                        for b in range(2)]
        for b in range(2):
            for k in range(ppb):
                m.submodules[f"chunks{b}_rows{k}"] = self.step_rows[b][k]
        self.chunks = [Signal(chunk_count, name=f"chunks{b}") for b in range(2)]
        self.full = Signal(2)    # loaded, not yet finished by the walkers
        self.error = Signal(2)   # the frame in the bank was malformed


class BankLoader:
    """Writes framed beats into the bank being loaded, one beat per cycle.

    Stage 0 (the beat is accepted) reads each position's head for its pixel's step; stage 1
    writes the beat's steps, reads the step memory at the head it read, and reads each stored
    pixel's step row word (a LUT RAM) and sets its step's bit; stage 2 writes the row word
    back and checks the head (it names an earlier beat of the frame whose pixel has the same
    step), and so finds the list's length; stage 3 writes the head (this beat, the length)
    and the link (the head it read), from registers. At the frame's last beat, stage 2 copies
    the chunks the frame touched into its bank's ``chunks``.

    A head is written three stages after it is read, so a beat may read a head that an older
    beat still in stages 1 to 3 is about to write: the youngest such beat of the same list is
    *forwarded* instead of the read (it is then surely the previous node, and no check is
    needed).
    """

    #: Cycles from a frame's last beat being accepted to its bank being marked full: its
    #: last row words are written and its chunks copied in stage 2, which marks the bank full
    #: in the cycle after (its last heads are written in that cycle, long before the step
    #: finder reads one).
    load_to_full = 3
    #: Cycles from an image's finish (bank released) to the first cycle its bank takes a beat.
    finish_to_load = 1

    def __init__(self, n_inputs, pixels_per_beat, ptr_width):
        self._n_inputs = n_inputs
        self._ppb = pixels_per_beat
        self._ptr_width = ptr_width

    def build(self, m, store, beats, pause, release):
        """``beats``: the framed beat stream; ``pause``: take no new frame; ``release``: a
        ``(valid, bank)`` pair, the walkers finishing the image in ``bank``. Sets each bank's
        step rows, ``touched``, ``chunks``, ``full`` and ``error``; returns the ``frame_open``
        and ``busy`` (a beat in stages 1 to 3) signals."""
        ppb, ptr_width = self._ppb, self._ptr_width
        layout = store.head_layout
        load_bank = Signal()
        frame_open = Signal()   # a frame has begun and its last beat has not come yet
        # The banks whose frame's last beat has been accepted (and not yet released): closed
        # to beats from then on, before the bank is marked full at the end of the pipeline.
        closed = Signal(2)
        accept = Signal()
        m.d.comb += [
            beats.ready.eq(~closed.bit_select(load_bank, 1) & ~(pause & ~frame_open)),
            accept.eq(beats.valid & beats.ready),
        ]
        head_write = [store.heads[k].write_port() for k in range(ppb)]
        # Not transparent: a head written in the cycle it is read is forwarded (below).
        head_load = [store.heads[k].read_port() for k in range(ppb)]
        link_write = [store.links[k].write_port() for k in range(ppb)]
        step_write = [store.steps[k].write_port() for k in range(ppb)]
        head_step = [store.steps[k].read_port() for k in range(ppb)]

        def stage(index):
            """The registers of stage ``index``: the beat's fields, and per position whether
            its pixel is stored (``insert``, 0 when the stage holds no beat) and its step. Only
            ``valid``, ``end`` and ``insert`` are reset: the rest is data they qualify."""
            def data_register(shape, name):
                return Signal(shape, name=f"s{index}_{name}", reset_less=True)

            return SimpleNamespace(
                valid=Signal(name=f"s{index}_valid"), end=Signal(name=f"s{index}_end"),
                insert=Signal(ppb, name=f"s{index}_insert"),
                bank=data_register(1, "bank"), beat=data_register(ptr_width, "beat"),
                error=data_register(1, "error"),
                step=[data_register(8, f"step{k}") for k in range(ppb)])

        s1, s2, s3 = stage(1), stage(2), stage(3)
        s1_start = Signal()
        # Whether each pixel of the beat is stored, from the beat alone (not from `accept`,
        # which every stage-1 register would otherwise wait on).
        storable = Signal(ppb)
        for k in range(ppb):
            in_image = beats.payload.beat * ppb + k < self._n_inputs
            m.d.comb += storable[k].eq(beats.payload.keep & (beats.payload.pixels[k] != 0)
                                       & in_image)
        m.d.sync += [
            s1.valid.eq(accept),
            s1.bank.eq(load_bank),
            s1.beat.eq(beats.payload.beat),
            s1.end.eq(accept & beats.payload.end),
            s1_start.eq(beats.payload.start),
            s1.error.eq(beats.payload.error),
            s1.insert.eq(Mux(accept, storable, 0)),
        ]
        for earlier, later in ((s1, s2), (s2, s3)):
            m.d.sync += [
                later.valid.eq(earlier.valid),
                later.bank.eq(earlier.bank),
                later.beat.eq(earlier.beat),
                later.end.eq(earlier.end),
                later.error.eq(earlier.error),
                later.insert.eq(earlier.insert),
                *[later.step[k].eq(earlier.step[k]) for k in range(ppb)],
            ]
        with m.If(accept & beats.payload.end):
            m.d.sync += [load_bank.eq(~load_bank), frame_open.eq(0),
                         closed.bit_select(load_bank, 1).eq(1)]
        with m.Elif(accept):
            m.d.sync += frame_open.eq(1)

        # Stage 3's heads, written in its cycle: (this beat, the list's length).
        s3_previous = [Signal(ptr_width, name=f"s3_previous{k}", reset_less=True)
                       for k in range(ppb)]
        s3_occupied = Signal(ppb, reset_less=True)   # the list had nodes before this beat
        s3_next_length = [Signal(layout["length"].shape, name=f"s3_next_length{k}", reset_less=True)
                          for k in range(ppb)]
        s3_head = [Signal(layout, name=f"s3_head{k}") for k in range(ppb)]
        for k in range(ppb):
            m.d.comb += [
                s3_head[k].beat.eq(s3.beat),
                s3_head[k].length.eq(Mux(s3_occupied[k], s3_next_length[k], 1)),
                s3_head[k].single.eq(~s3_occupied[k]),
            ]

        for k in range(ppb):
            pixel = beats.payload.pixels[k]
            m.d.comb += head_load[k].addr.eq(Cat(~pixel, load_bank))
            m.d.sync += s1.step[k].eq(~pixel)
            # Stage 0: an older beat of the same list in stage 1, 2 or 3 (the youngest wins).
            matches = [s.insert[k] & (s.bank == load_bank) & (s.step[k] == ~pixel)
                       for s in (s1, s2, s3)]
            s1_from = Signal(3, name=f"s1_from{k}", reset_less=True)
            s1_captured = Signal(layout, name=f"s1_captured{k}", reset_less=True)
            m.d.sync += [
                s1_from.eq(Cat(matches[0], matches[1] & ~matches[0],
                               matches[2] & ~matches[0] & ~matches[1])),
                s1_captured.eq(s3_head[k]),
            ]
            # Stage 1: the head read goes into a register as it leaves the block RAM; a beat
            # that was in stage 2 is now in stage 3, whose head is taken; one that was in
            # stage 1 is taken from stage 3 in the next cycle.
            s2_read = Signal(layout, name=f"s2_read{k}", reset_less=True)
            s2_from_stage3 = Signal(name=f"s2_from_stage3_{k}", reset_less=True)
            s2_forced = Signal(name=f"s2_forced{k}", reset_less=True)
            s2_forwarded = Signal(layout, name=f"s2_forwarded{k}", reset_less=True)
            m.d.sync += [
                s2_read.eq(head_load[k].data),
                s2_from_stage3.eq(s1_from[0]),
                s2_forced.eq(s1_from.any()),
                s2_forwarded.eq(Mux(s1_from[1], s3_head[k], s1_captured)),
            ]
            # The step memory is read at the head as it leaves its block RAM, for stage 2.
            # (A stale head may name this very beat, whose step is written in this cycle:
            # stage 2 rejects it as not earlier, whichever step the read returns.)
            m.d.comb += head_step[k].addr.eq(Cat(head_load[k].data.beat, s1.bank))
            # Stage 2: a head read from memory is one of this frame's list if it names an
            # earlier beat whose pixel k has this step.
            found = Signal(layout, name=f"s2_found{k}")
            m.d.comb += found.eq(Mux(s2_from_stage3, s3_head[k],
                                     Mux(s2_forced, s2_forwarded, s2_read)))
            m.d.sync += [
                s3_previous[k].eq(found.beat),
                s3_occupied[k].eq(s2_forced | ((s2_read.beat < s2.beat)
                                               & (head_step[k].data == s2.step[k]))),
                s3_next_length[k].eq(found.length + 1),
            ]
            # Each position's step and link memories (a copy per read port) are written at
            # addresses from copies of the stage registers of their own (:mod:`.replicas`).
            write_at = Signal(ptr_width + 1, name=f"s1_step_address{REPLICA_MARK}{k}")
            write_en = Signal(name=f"s1_step_write{REPLICA_MARK}{k}")
            link_at = Signal(ptr_width + 1, name=f"s3_link_address{REPLICA_MARK}{k}")
            m.d.sync += [write_at.eq(Cat(beats.payload.beat, load_bank)), write_en.eq(accept),
                         link_at.eq(Cat(s2.bank, s2.beat))]
            m.d.comb += [
                step_write[k].addr.eq(write_at),
                step_write[k].data.eq(Mux(s1.insert[k], s1.step[k], N_STEPS - 1)),
                step_write[k].en.eq(write_en),
                head_write[k].addr.eq(Cat(s3.step[k], s3.bank)),
                head_write[k].data.eq(s3_head[k]),
                head_write[k].en.eq(s3.insert[k]),
                link_write[k].addr.eq(link_at),
                link_write[k].data.eq(s3_previous[k]),
                link_write[k].en.eq(s3.insert[k]),
            ]

        # The step rows: each stored pixel's word (its step's chunk, in its position's row
        # memory of the bank being loaded) is read in stage 1, its step's bit set, and
        # written back in stage 2. A word that stage 2 writes in the same cycle is forwarded
        # instead of the read, and a word the frame has not touched yet is taken as 0 (a
        # frame's first beat clears its bank's `touched` in stage 1).
        row_bits = ceil_log2(StepFinder.chunk_steps)
        for k in range(ppb):
            row_read = [store.step_rows[b][k].read_port(domain="comb") for b in range(2)]
            row_write = [store.step_rows[b][k].write_port() for b in range(2)]
            s1_chunk, s2_chunk = s1.step[k][row_bits:], s2.step[k][row_bits:]
            touched = Mux(s1.bank, store.touched[1][k], store.touched[0][k])
            forward = s2.insert[k] & (s2.bank == s1.bank) & (s2_chunk == s1_chunk)
            s2_row = Signal(StepFinder.chunk_steps, name=f"s2_row{k}", reset_less=True)
            earlier = Mux(forward, s2_row,
                          Mux(touched.bit_select(s1_chunk, 1) & ~s1_start,
                              Mux(s1.bank, row_read[1].data, row_read[0].data), 0))
            m.d.sync += s2_row.eq(earlier | decode(m, s1.step[k][:row_bits],
                                                   StepFinder.chunk_steps, f"s1_bit{k}"))
            chunk_bit = decode(m, s1_chunk, len(touched), f"s1_chunk{k}")
            for b in range(2):
                m.d.comb += [
                    row_read[b].addr.eq(s1_chunk),
                    row_write[b].addr.eq(s2_chunk),
                    row_write[b].data.eq(s2_row),
                    row_write[b].en.eq(s2.insert[k] & (s2.bank == b)),
                ]
                with m.If(s1.valid & (s1.bank == b)):
                    m.d.sync += store.touched[b][k].eq(
                        Mux(s1_start, 0, store.touched[b][k])
                        | Mux(s1.insert[k], chunk_bit, 0))

        release_valid, release_bank = release
        for b in range(2):
            with m.If(s2.end & (s2.bank == b)):
                m.d.sync += [store.full[b].eq(1), store.error[b].eq(s2.error),
                             store.chunks[b].eq(functools.reduce(operator.or_,
                                                                 store.touched[b]))]
            with m.If(release_valid & (release_bank == b)):
                m.d.sync += [store.full[b].eq(0), closed[b].eq(0)]
        return SimpleNamespace(frame_open=frame_open, busy=s1.valid | s2.valid | s3.valid)


def prepared_step_layout(ppb, head_layout):
    """A step prepared for the walkers: ``valid`` (0: the image has no further step), its
    number, each position's head for it (its last beat and its list's length) and ``mask``,
    the positions that have a list at it."""
    return data.StructLayout({
        "valid": 1,
        "step": 8,
        "heads": data.ArrayLayout(head_layout, ppb),
        "mask": ppb,
    })


class StepFinder:
    """Keeps the walkers' next step ready in registers ``R`` (see the module doc).

    A queue of two steps per bank is filled, lowest step first, from the bank's step rows as soon
    as the bank is loaded (:meth:`_chunk_source`; the image's end is queued as an entry
    without a step); the fill depends on registers only. The queue's head
    of the image's bank is *issued*: its heads are read from every position's head memory,
    the read is registered, then the positions whose list is of that step are found (step
    memory read and compare) into a register, and the prepared step enters ``R`` (two
    registers and a pointer), or the FIFO behind it. A step is issued whenever fewer than
    :attr:`prepared_steps` are issued and not yet taken from ``R``, which is known from
    registers, so no head memory's address or enable depends on the walkers; that many keep a
    step ready for every cycle. An image's finish flushes its steps; the next image's first
    step is issued in the cycle after.
    """

    #: Steps the step finder queues per bank before the bank's image may start.
    step_queue_depth = 2
    #: Steps per chunk of the step rows (:meth:`_chunk_source`).
    chunk_steps = 16
    #: Chunks of a bank's steps (words of a step-row memory).
    chunk_count = N_STEPS // chunk_steps
    #: Chunks picked and not yet drained, at most: a chunk is picked three cycles before the
    #: drain can take it, so one more keeps a chunk ready for every cycle.
    chunk_slots = 4
    #: Cycles from a bank being marked full to its first step being in its queue: the picker
    #: picks the first chunk, which is in the FIFO the cycle after next, in the drain the
    #: cycle after, and queued in the next.
    full_to_queued = 4
    #: Cycles from a step's issue to the first cycle it is in ``R``: the head memories read,
    #: their output registered, the mask computed into a register, then into ``R``.
    issue_to_ready = 4
    #: Steps issued and not yet taken from ``R`` at most. A take is seen by the issue one
    #: cycle later, so one more than :attr:`issue_to_ready` keeps a step for every cycle.
    prepared_steps = issue_to_ready + 1
    #: Cycles from a bank being marked full to the cycle ``R`` holds its image's first step
    #: (the walkers may start the image in that cycle): the first step is queued, then issued
    #: in the cycle it is in the queue.
    full_to_ready = full_to_queued + issue_to_ready
    #: Cycles from an image's finish to the first cycle ``R`` holds the next image's first
    #: step, issued in the cycle after.
    finish_to_ready = 1 + issue_to_ready

    def __init__(self, ppb, ptr_width):
        self._ppb = ppb
        self._ptr_width = ptr_width

    def _chunk_source(self, m, store, b, fill, reset):
        """Bank ``b``'s steps in order, one per cycle in which ``fill`` asks for one (see
        :attr:`full_to_queued`). Returns ``emit`` (an entry goes into the queue this cycle),
        ``valid`` (it is a step; else the image's end) and ``step``.

        The step rows are read a chunk of :attr:`chunk_steps` steps at a time: a *picker*
        takes the lowest non-empty chunk not yet taken (a 16-bit search, from registers) into
        a register, with the positions that touched it; in the next cycle those positions'
        row words of the chunk are read, ORed and copied into a small FIFO; the
        *drain* holds one chunk in ``current`` and gives its steps lowest first (a 16-bit
        search), taking the next chunk from the FIFO in the cycle it gives the last. The
        picker runs ahead while fewer than :attr:`chunk_slots` chunks are picked and not yet
        drained, so a step is ready every cycle."""
        size, slots = self.chunk_steps, self.chunk_slots
        n_chunks = self.chunk_count
        chunk_bits = ceil_log2(size)
        chunk_index = ceil_log2(n_chunks)
        name = f"chunks{b}"
        taken = Signal(n_chunks, name=f"{name}_taken")
        pending = Signal(n_chunks, name=f"{name}_pending")
        m.d.comb += pending.eq(store.chunks[b] & ~taken)
        lowest = lowest_one_hot(m, pending, f"{name}_lowest")
        outstanding = Signal(range(slots + 1), name=f"{name}_outstanding")
        pick = Signal(name=f"{name}_pick")
        m.d.comb += pick.eq(store.full[b] & (pending != 0) & (outstanding != slots))
        # The chunk picked (with `push`), and the positions that have a step in it.
        picked = Signal(chunk_index, name=f"{name}_picked", reset_less=True)
        picked_rows = Signal(self._ppb, name=f"{name}_picked_rows", reset_less=True)
        push = Signal(name=f"{name}_push")
        m.d.sync += [picked.eq(encode(lowest, chunk_index)), push.eq(pick),
                     picked_rows.eq(Cat(*[(lowest & touched).any()
                                          for touched in store.touched[b]]))]
        with m.If(pick):
            m.d.sync += taken.eq(taken | lowest)

        # The FIFO of picked chunks: their bits and their number.
        fifo_layout = data.StructLayout({"bits": size, "chunk": chunk_index})
        fifo = [Signal(fifo_layout, name=f"{name}_fifo{e}", reset_less=True) for e in range(slots)]
        fifo_write = Signal(range(slots), name=f"{name}_fifo_write")
        fifo_read = Signal(range(slots), name=f"{name}_fifo_read")
        # Equal to `outstanding` less the chunk being pushed, but kept as its own register so
        # that `pop` waits on no subtraction of `push`.
        fifo_count = Signal(range(slots + 1), name=f"{name}_fifo_count")
        # The picked chunk's steps: the OR of its row words, read from the positions' row
        # memories of the bank (asynchronously), of the positions that have a step in it.
        arriving = Signal(fifo_layout, name=f"{name}_arriving")
        row_reads = [rows.read_port(domain="comb") for rows in store.step_rows[b]]
        for read in row_reads:
            m.d.comb += read.addr.eq(picked)
        m.d.comb += [
            arriving.bits.eq(functools.reduce(operator.or_, [
                Mux(picked_rows[k], read.data, 0) for k, read in enumerate(row_reads)])),
            arriving.chunk.eq(picked),
        ]
        for e in range(slots):
            with m.If(push & (fifo_write == e)):
                m.d.sync += fifo[e].eq(arriving)
        fifo_head = Signal(fifo_layout, name=f"{name}_fifo_head")
        with m.Switch(fifo_read):
            for e in range(slots):
                with m.Case(e):
                    m.d.comb += fifo_head.eq(fifo[e])

        # The drain.
        current = Signal(fifo_layout, name=f"{name}_current")
        current_any = Signal(name=f"{name}_current_any")
        m.d.comb += current_any.eq(current.bits != 0)
        low_any, low = first_set(m, current.bits, f"{name}_low")
        rest = Signal(size, name=f"{name}_rest")
        m.d.comb += rest.eq(current.bits & (current.bits - 1))
        finished = Signal(name=f"{name}_finished")   # no chunk left beyond `current`
        m.d.comb += finished.eq((pending == 0) & (outstanding == 0))
        emit = Signal(name=f"{name}_emit")
        m.d.comb += emit.eq(fill & (current_any | finished))
        pop = Signal(name=f"{name}_pop")
        m.d.comb += pop.eq((fifo_count != 0) & (~current_any | (emit & (rest == 0))))
        with m.If(pop):
            m.d.sync += current.eq(fifo_head)
        with m.Elif(emit):
            m.d.sync += current.bits.eq(rest)
        with m.If(push):
            m.d.sync += fifo_write.eq(Mux(fifo_write == slots - 1, 0, fifo_write + 1))
        with m.If(pop):
            m.d.sync += fifo_read.eq(Mux(fifo_read == slots - 1, 0, fifo_read + 1))
        m.d.sync += [fifo_count.eq(fifo_count + push - pop),
                     outstanding.eq(outstanding + pick - pop)]
        with m.If(reset):
            m.d.sync += [taken.eq(0), outstanding.eq(0), fifo_write.eq(0),
                         fifo_read.eq(0), fifo_count.eq(0), current.bits.eq(0)]
        return SimpleNamespace(emit=emit, valid=current_any,
                               step=Cat(low[:chunk_bits], current.chunk))

    def build(self, m, store, *, bank, finish, take):
        """``take``: the walkers take ``R`` this cycle (an image starts or a step ends).
        Returns ``R`` (``valid``, ``step``, ``heads``, ``mask``, ``ready``), and ``primed``:
        the banks whose image may start."""
        ppb = self._ppb
        layout = prepared_step_layout(ppb, store.head_layout)
        queued_layout = data.StructLayout({"valid": 1, "step": 8})
        head_read = [store.heads[k].read_port() for k in range(ppb)]
        head_step = [store.steps[k].read_port() for k in range(ppb)]

        # --- per bank, the queue of its steps (filled from the step rows) -----------------
        issue = Signal()
        # A finished image's bank: its queue and chunks are reset in the cycle after the finish
        # (from a register; the bank is no longer full then, so nothing fills them).
        released = Signal(2)
        m.d.sync += released.eq(Mux(finish, Mux(bank, 0b10, 0b01), 0))
        depth = self.step_queue_depth
        assert depth == 2, "the queue below has two entries"
        primed = Signal(2)
        queued_any, queued_head = [], []
        for b in range(2):
            # Two entries, indexed by the low bit of the write and read counters.
            write = Signal(2, name=f"queue_write{b}")
            read = Signal(2, name=f"queue_read{b}")
            entries = [Signal(queued_layout, name=f"queue{b}_{e}", reset_less=True)
                       for e in range(depth)]
            count = Signal(2, name=f"queue_count{b}")
            ended = Signal(name=f"queue_ended{b}")   # the image's end is queued
            priming = Signal(range(self.full_to_ready + 1), name=f"priming{b}")
            m.d.comb += count.eq(write - read)
            fill = Signal(name=f"fill{b}")
            m.d.comb += fill.eq(store.full[b] & (count != depth) & ~ended)
            source = self._chunk_source(m, store, b, fill, released[b])
            with m.If(source.emit):
                m.d.sync += [write.eq(write + 1), ended.eq(~source.valid)]
            for e in range(depth):
                with m.If(source.emit & (write[0] == e)):
                    m.d.sync += [entries[e].valid.eq(source.valid),
                                 entries[e].step.eq(source.step)]
            with m.If(issue & (bank == b)):
                m.d.sync += read.eq(read + 1)
            # A bank's image may start `full_to_ready` cycles after the bank is full, even when
            # its first step is ready sooner.
            with m.If(store.full[b] & (priming != self.full_to_ready)):
                m.d.sync += priming.eq(priming + 1)
            m.d.comb += primed[b].eq(priming == self.full_to_ready)
            with m.If(released[b]):
                m.d.sync += [write.eq(0), read.eq(0), ended.eq(0), priming.eq(0)]
            head = Signal(queued_layout, name=f"queue_head{b}")
            m.d.comb += head.eq(Mux(read[0], entries[1], entries[0]))
            queued_any.append(count != 0)
            queued_head.append(head)

        # --- issue, head read, registered heads, registered mask ----------------------------
        # Steps issued and not yet taken from R. An image's finish flushes them and issues
        # nothing; the next image's first step is issued in the cycle after, from its bank
        # (so no head memory's address depends on the walkers).
        issued = Signal(range(self.prepared_steps + 1))
        m.d.comb += issue.eq(Mux(bank, queued_any[1], queued_any[0])
                             & (issued != self.prepared_steps) & ~finish)
        m.d.sync += issued.eq(Mux(finish, 0, issued + issue - take))
        issued_step = Signal(queued_layout)
        m.d.comb += issued_step.eq(Mux(bank, queued_head[1], queued_head[0]))
        # The head memories read every cycle (no enable to route): whether their output is an
        # issued step's heads follows the pipeline in `read_valid` and `heads_valid`.
        for k in range(ppb):
            m.d.comb += head_read[k].addr.eq(Cat(issued_step.step, bank))
        read_valid = Signal()
        read_step = Signal(queued_layout, reset_less=True)
        m.d.sync += [read_valid.eq(issue), read_step.eq(issued_step)]
        heads_valid = Signal()
        heads = Signal(layout, reset_less=True)
        m.d.sync += [
            heads_valid.eq(read_valid & ~finish),
            heads.valid.eq(read_step.valid),
            heads.step.eq(read_step.step),
        ]
        m.d.sync += [heads.heads[k].eq(head_read[k].data) for k in range(ppb)]
        prepared_valid = Signal()
        prepared = Signal(layout, reset_less=True)
        m.d.sync += [
            prepared_valid.eq(heads_valid & ~finish),
            prepared.valid.eq(heads.valid),
            prepared.step.eq(heads.step),
            prepared.heads.eq(heads.heads),
        ]
        # Each step memory is read at its head as the head leaves its block RAM, so that its
        # word is out when the head is in `heads`.
        for k in range(ppb):
            m.d.comb += head_step[k].addr.eq(Cat(head_read[k].data.beat, bank))
            m.d.sync += prepared.mask[k].eq(head_step[k].data == heads.step)

        # --- R: two registers, the FIFO behind them -----------------------------------------
        # R is the register `rsel` names; a take only flips `rsel`, and a register is
        # refilled (from the FIFO, or straight from `prepared` when the FIFO is empty) in a
        # cycle in which it is empty: the one R names first, else the other. Every enable
        # here follows from registers, none from the walkers of the same cycle (a finish
        # empties R and the FIFO after whatever they took).
        fifo_depth = self.prepared_steps - 2
        fifo = [Signal(layout, name=f"prepared{e}", reset_less=True) for e in range(fifo_depth)]
        fifo_write = Signal(range(fifo_depth))
        fifo_read = Signal(range(fifo_depth))
        fifo_count = Signal(range(fifo_depth + 1))
        fifo_head = Signal(layout)
        with m.Switch(fifo_read):
            for e in range(fifo_depth - 1):
                with m.Case(e):
                    m.d.comb += fifo_head.eq(fifo[e])
            with m.Default():
                m.d.comb += fifo_head.eq(fifo[-1])
        registers = [Signal(layout, name=f"r{j}", reset_less=True) for j in range(2)]
        filled = Signal(2)
        rsel = Signal()
        target = Signal()
        refill = Signal()
        push = Signal()
        pop = Signal()
        m.d.comb += [
            target.eq(Mux(filled.bit_select(rsel, 1), ~rsel, rsel)),
            refill.eq(~filled.bit_select(target, 1) & ((fifo_count != 0) | prepared_valid)),
            pop.eq(refill & (fifo_count != 0)),
            push.eq(prepared_valid & ~(refill & (fifo_count == 0))),
        ]
        # An empty register follows the source, so that its enable is a register (copied, one
        # copy per BITS_PER_COPY bits): it holds the source of the cycle it is filled. (The
        # copies are right from the cycle after reset on; no step is prepared before then.)
        source = Signal(layout)
        m.d.comb += source.eq(Mux(fifo_count != 0, fifo_head, prepared))
        filled_next = Signal(2)
        m.d.sync += filled.eq(filled_next)
        width = layout.size
        for j in range(2):
            with m.If(finish):
                m.d.comb += filled_next[j].eq(0)
            with m.Elif(refill & (target == j)):
                m.d.comb += filled_next[j].eq(1)
            with m.Elif(take & (rsel == j)):
                m.d.comb += filled_next[j].eq(0)
            with m.Else():
                m.d.comb += filled_next[j].eq(filled[j])
            empty = replicated_register(m, ~filled_next[j], -(-width // BITS_PER_COPY),
                                        f"r{j}_empty")
            for index, copy in enumerate(empty):
                bits = slice(index * BITS_PER_COPY, min(width, (index + 1) * BITS_PER_COPY))
                with m.If(copy):
                    m.d.sync += registers[j].as_value()[bits].eq(source.as_value()[bits])
        with m.If(take):
            m.d.sync += rsel.eq(~rsel)
        with m.If(prepared_valid):
            for e in range(fifo_depth):
                with m.If(fifo_write == e):
                    m.d.sync += fifo[e].eq(prepared)
        with m.If(push):
            m.d.sync += fifo_write.eq(Mux(fifo_write == fifo_depth - 1, 0, fifo_write + 1))
        with m.If(pop):
            m.d.sync += fifo_read.eq(Mux(fifo_read == fifo_depth - 1, 0, fifo_read + 1))
        m.d.sync += fifo_count.eq(fifo_count + push - pop)
        with m.If(finish):
            m.d.sync += [fifo_write.eq(0), fifo_read.eq(0), fifo_count.eq(0)]
        r_step = Signal(layout, name="r")
        m.d.comb += r_step.eq(Mux(rsel, registers[1], registers[0]))
        # Each position's view of R has a copy of `rsel` of its own: the walkers' read
        # addresses start from it.
        selects = replicated_register(m, rsel ^ take, ppb, "rsel")
        heads = [Signal(store.head_layout, name=f"r_head{k}") for k in range(ppb)]
        mask = Signal(ppb, name="r_mask")
        for k in range(ppb):
            m.d.comb += [
                heads[k].eq(Mux(selects[k], registers[1].heads[k], registers[0].heads[k])),
                mask[k].eq(Mux(selects[k], registers[1].mask[k], registers[0].mask[k])),
            ]
        r = SimpleNamespace(valid=r_step.valid, step=r_step.step, heads=heads, mask=mask,
                            ready=filled.bit_select(rsel, 1))
        return r, primed


class Walkers:
    """``events_per_cycle`` walkers over the lists of the step in ``R`` (see the module doc).

    Each walker keeps its node (one-hot position and beat), how many nodes its list has left
    (from the lengths in the heads) and the lists of the step it has not started, all in
    registers, so whether a walker is done after this round, and so the step's end, follow
    from registers alone. Each position's link memory has one read port, read one cycle ahead
    of the node it serves: its address is the next node of the position's list if the
    position's current node is not its list's last, else the position's head for this step
    (if its list has not started yet), else its head for the next step, in ``R``. So the node
    chosen in a cycle has its link word (its successor) in that same cycle.
    """

    def __init__(self, ppb, ptr_width, events_per_cycle):
        self._ppb = ppb
        self._ptr_width = ptr_width
        self._walkers = events_per_cycle

    def positions(self, w):
        """The positions of walker ``w``."""
        return list(range(w, self._ppb, self._walkers))

    @staticmethod
    def walker_of(pixel, events_per_cycle):
        """The walker of input ``pixel`` (an int or an int array): its position modulo
        ``events_per_cycle``, which divides ``pixels_per_beat``, so the pixel index modulo it."""
        return pixel % events_per_cycle

    def build(self, m, store, r, *, bank, active, advance, take, skip, finish):
        """``advance``: the round chosen this cycle is sent for the last lane group, so the
        walkers move on; ``take``: they take ``R`` for the next round (an image starts or a
        step ends); ``skip``: the image starting is malformed (no events). Returns the round
        (``slots``, ``pixels``: per walker a node valid flag and its pixel index) and
        ``step_end`` (no walker has a node of this step left after this round)."""
        ppb, ptr_width = self._ppb, self._ptr_width
        head_layout = store.head_layout
        link_read = [store.links[k].read_port() for k in range(ppb)]
        # The heads of the step being walked, for the lists the walkers start later in it.
        step_heads = [Signal(head_layout, name=f"step_head{k}") for k in range(ppb)]
        with m.If(take):
            m.d.sync += [step_heads[k].eq(r.heads[k]) for k in range(ppb)]

        slots, pixels, done = [], [], []
        for w in range(self._walkers):
            own = self.positions(w)
            n_own = len(own)
            node = Signal(n_own, name=f"walker{w}_node")     # one-hot position of the node
            beat = Signal(ptr_width, name=f"walker{w}_beat")
            left = Signal(head_layout["length"].shape, name=f"walker{w}_left")
            last = Signal(name=f"walker{w}_last")            # left == 1: the list's last node
            mask = Signal(n_own, name=f"walker{w}_mask")     # lists of this step not started
            successor = Signal(ptr_width, name=f"walker{w}_successor")
            m.d.comb += successor.eq(functools.reduce(operator.or_, [
                Mux(node[i], link_read[k].data, 0) for i, k in enumerate(own)]))
            for i, k in enumerate(own):
                follow = node[i] & ~last
                m.d.comb += [
                    link_read[k].addr.eq(Cat(bank, Mux(
                        follow, link_read[k].data,
                        Mux(mask[i], step_heads[k].beat, r.heads[k].beat)))),
                    # (A take is a start, while inactive, or comes with an advance.)
                    link_read[k].en.eq(advance | ~active),
                ]
            # The next node: the successor, else the first list left in the mask, else (when
            # the walkers take R) the first of this walker's lists in R.
            mask_any, mask_first = first_set(m, mask, f"walker{w}_mask_first")
            r_own = Cat(*[r.mask[k] for k in own])
            r_any, r_first = first_set(m, r_own, f"walker{w}_r_first")

            def head_of(index, heads, own=own):
                value = Signal(head_layout)
                with m.Switch(index):
                    for i, k in enumerate(own):
                        with m.Case(i):
                            m.d.comb += value.eq(heads[k])
                return value

            def start_list(index, heads, beat=beat, left=left, last=last):
                head = head_of(index, heads)
                return [beat.eq(head.beat), left.eq(head.length), last.eq(head.single)]

            with m.If(take):
                m.d.sync += [
                    node.eq(Mux(r.valid & ~skip & r_any, decode(
                        m, r_first, n_own, f"walker{w}_r_onehot"), 0)),
                    mask.eq(Mux(r.valid & ~skip, r_own & ~(Const(1, n_own) << r_first), 0)),
                    *start_list(r_first, r.heads),
                ]
            with m.Elif(advance):
                with m.If(~last):
                    m.d.sync += [beat.eq(successor), left.eq(left - 1), last.eq(left == 2)]
                with m.Elif(mask_any):
                    m.d.sync += [
                        node.eq(decode(m, mask_first, n_own, f"walker{w}_mask_onehot")),
                        mask.eq(mask & ~(Const(1, n_own) << mask_first)),
                        *start_list(mask_first, step_heads),
                    ]
                with m.Else():
                    m.d.sync += node.eq(0)
            with m.If(finish):   # never with `take`: an image finishes while no round is sent
                m.d.sync += [node.eq(0), mask.eq(0)]
            position = Signal(index_shape(ppb), name=f"walker{w}_position")
            m.d.comb += position.eq(functools.reduce(operator.or_, [
                Mux(node[i], k, 0) for i, k in enumerate(own)]))
            slots.append(node.any())
            pixels.append(Cat(position, beat) if ppb > 1 else beat)
            done.append((last | ~node.any()) & (mask == 0))
        step_end = Signal()
        m.d.comb += step_end.eq(functools.reduce(operator.and_, done))
        return SimpleNamespace(slots=Cat(*slots), pixels=pixels, step_end=step_end)


class EventScheduler(wiring.Component):
    """Orders the spikes of each image by time, two images in flight (see the module doc).

    Parameters
    ----------
    n_inputs : int
        Pixels per image.
    pixels_per_beat : int
        Pixels per input beat.
    groups : int
        Lane groups of the first layer: each round is sent ``groups`` times.
    credits : int
        Depth of the result queue (a power of two): images started and not yet taken.
    drain_cycles : int
        Cycles a token may take from ``o_events`` to the result queue; ``o_idle`` waits for
        that long after the last token.
    events_per_cycle : int
        Walkers, and so event slots per token (one of :data:`EVENTS_PER_CYCLE_CHOICES`, at
        most ``pixels_per_beat``).

    Members
    -------
    i_beats : ``In(stream.Signature(framed_beat_layout(n_beats, pixels_per_beat)))``
    o_events : ``Out(stream.Signature(event_layout(n_inputs, groups, events_per_cycle),
        always_ready=True))``
    i_kill : ``In(stream.Signature(range(credits), always_ready=True))``
        The output layer has decided the image with this tag (images are tagged with their
        sequence number modulo ``credits``).
    i_result_taken : ``In(1)``
        A result has left the result queue (returns a credit).
    i_pause : ``In(1)``
        Take no new frame (a frame already begun is finished).
    i_hold : ``In(1)``
        Emit no token this cycle (the debug stream is full); an image may still finish.
    i_may_start : ``In(1, init=1)``
        Whether an image may start (the debug stream lowers it until the previous image has
        left the layers and its events have been sent, so that images never mix there).
    o_drained : ``Out(1)``
        No image is being walked and no token is in the layers.
    o_idle : ``Out(1)``
        Nothing is stored, computing or waiting to be taken, no frame is open and no token
        is in the layers: weights may be rewritten.
    """

    #: Image banks: one is loaded while the other is computed.
    banks = 2

    def __init__(self, n_inputs, pixels_per_beat, groups=1, credits=4, drain_cycles=16,
                 events_per_cycle=1):
        if not isinstance(n_inputs, int) or n_inputs < 1:
            raise ValueError(f"n_inputs must be a positive integer, got {n_inputs!r}")
        if pixels_per_beat not in PIXELS_PER_BEAT_CHOICES:
            raise ValueError(f"pixels_per_beat must be one of {PIXELS_PER_BEAT_CHOICES}, "
                             f"got {pixels_per_beat!r}")
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be a positive integer, got {groups!r}")
        if not isinstance(credits, int) or credits < 2 or credits & (credits - 1):
            raise ValueError(f"credits must be a power of two of at least 2, got {credits!r}")
        if not isinstance(drain_cycles, int) or drain_cycles < 1:
            raise ValueError(f"drain_cycles must be a positive integer, got {drain_cycles!r}")
        if events_per_cycle not in EVENTS_PER_CYCLE_CHOICES or events_per_cycle > pixels_per_beat:
            raise ValueError(f"events_per_cycle must be one of {EVENTS_PER_CYCLE_CHOICES} and "
                             f"at most pixels_per_beat ({pixels_per_beat}), "
                             f"got {events_per_cycle!r}")
        self._n_inputs = n_inputs
        self._pixels_per_beat = pixels_per_beat
        self._groups = groups
        self._credits = credits
        self._drain_cycles = drain_cycles
        self._events_per_cycle = events_per_cycle
        self._compact = compact_applies(pixels_per_beat, events_per_cycle, groups)
        super().__init__({
            "i_beats": In(stream.Signature(framed_beat_layout(self.n_beats, pixels_per_beat))),
            "o_events": Out(stream.Signature(
                event_layout(n_inputs, groups, events_per_cycle), always_ready=True)),
            "i_kill": In(stream.Signature(range(credits), always_ready=True)),
            "i_result_taken": In(1),
            "i_pause": In(1),
            "i_hold": In(1),
            "i_may_start": In(1, init=1),
            "o_idle": Out(1),
            "o_drained": Out(1),
        })

    @property
    def n_inputs(self):
        return self._n_inputs

    @property
    def pixels_per_beat(self):
        return self._pixels_per_beat

    @property
    def groups(self):
        return self._groups

    @property
    def credits(self):
        return self._credits

    @property
    def events_per_cycle(self):
        return self._events_per_cycle

    @property
    def n_beats(self):
        return beats_per_frame(self._n_inputs, self._pixels_per_beat)

    @property
    def ptr_width(self):
        """Bits of a beat index in a frame (a list node's pointer)."""
        return max(1, ceil_log2(self.n_beats))

    @property
    def length_width(self):
        """Bits of a list's length (up to one node per beat)."""
        return ceil_log2(self.n_beats + 1)

    @property
    def compact(self):
        """Whether this is the compact scheduler (:mod:`.compact_scheduler`)."""
        return self._compact

    @property
    def load_to_start(self):
        """Cycles from a frame's last beat being accepted to the first cycle its image can
        start."""
        if self._compact:
            return (CompactLoader.load_to_full + Compactor.full_to_done
                    + CompactWalker.done_to_ready)
        return BankLoader.load_to_full + StepFinder.full_to_ready

    #: Cycles from a kill on ``i_kill`` to the image's finish (one more round may be sent).
    kill_to_finish = 1

    @property
    def finish_to_start(self):
        """Cycles from an image's finish to the first cycle the next image can start."""
        return CompactWalker.finish_to_ready if self._compact else StepFinder.finish_to_ready

    @property
    def finish_to_load(self):
        """Cycles from an image's finish (bank released) to the first cycle its bank takes a
        beat."""
        return CompactLoader.finish_to_load if self._compact else BankLoader.finish_to_load

    def _fast_parts(self, m, control):
        """Bank loader, step finder and walkers over the shared storage."""
        ppb = self._pixels_per_beat
        ptr_width = self.ptr_width
        store = _Storage(m, ppb, self.n_beats, ptr_width, self.length_width)
        release = (control.finish, control.bank)
        loader = BankLoader(self._n_inputs, ppb, ptr_width).build(
            m, store, self.i_beats, self.i_pause, release)
        r, primed = StepFinder(ppb, ptr_width).build(
            m, store, bank=control.bank, finish=control.finish, take=control.take)
        walkers = Walkers(ppb, ptr_width, self._events_per_cycle).build(
            m, store, r, bank=control.bank, active=control.active, advance=control.advance,
            take=control.take, skip=control.skip, finish=control.finish)
        return store, loader, r, primed, walkers

    def _compact_parts(self, m, control):
        """The compact loader, a compactor per bank and the compact walker."""
        store = CompactStorage(m, self.n_beats, self.ptr_width)
        release = (control.finish, control.bank)
        loader = CompactLoader().build(m, store, self.i_beats, self.i_pause, release)
        for b in range(2):
            Compactor().build(m, store, b, release)
        r, walkers = CompactWalker().build(
            m, store, bank=control.bank, start=control.start, advance=control.advance,
            skip=control.skip, finish=control.finish)
        return store, loader, r, store.compacted, walkers

    def elaborate(self, platform):
        m = Module()
        groups = self._groups
        active = Signal()      # an image is being walked
        bank = Signal()        # its bank (when idle: the bank of the next image)
        tag = Signal(range(self._credits), init=self._credits - 1)
        in_flight = Signal(range(self._credits + 1))
        finish = Signal()
        start = Signal()
        advance = Signal()
        take = Signal()
        skip = Signal()

        control = SimpleNamespace(active=active, bank=bank, finish=finish, start=start,
                                  advance=advance, take=take, skip=skip)
        parts = self._compact_parts if self._compact else self._fast_parts
        store, loader, r, primed, walkers = parts(m, control)

        # Control: a round is chosen in every cycle of an image that has one, once per lane
        # group; an image starts only while the walkers are idle, so that `start` depends on
        # registers alone; when idle, `bank` is already the next image's bank.
        group = Signal(range(groups))
        last_group = group == groups - 1
        # The image running in this cycle was killed in the previous one (an image starting
        # in that cycle has the next tag).
        killed = Signal()
        m.d.sync += killed.eq(self.i_kill.valid & (self.i_kill.payload == tag) & ~start)
        kill = Signal()
        emit = Signal()
        m.d.comb += [
            kill.eq(active & killed),
            emit.eq(active & ~kill & ~self.i_hold & (walkers.slots != 0)),
            advance.eq(emit & last_group),
            finish.eq(active & (kill | (walkers.slots == 0))),
            start.eq(~active & primed.bit_select(bank, 1) & r.ready
                     & (in_flight < self._credits) & ~self.i_hold & self.i_may_start),
            skip.eq(start & store.error.bit_select(bank, 1)),
            take.eq(start | (advance & walkers.step_end)),
        ]
        with m.If(emit):
            m.d.sync += group.eq(Mux(last_group, 0, group + 1))
        with m.Elif(finish):
            m.d.sync += group.eq(0)   # a kill may come between two lane groups of a round
        step = Signal(8)
        with m.If(take):
            m.d.sync += step.eq(r.step)
        with m.If(start):
            m.d.sync += [active.eq(1), tag.eq(tag + 1)]
        with m.Elif(finish):
            m.d.sync += [active.eq(0), bank.eq(~bank)]
        m.d.sync += in_flight.eq(in_flight + start - self.i_result_taken)

        # --- output token (registered) -------------------------------------------------------
        o = self.o_events
        m.d.sync += [
            o.valid.eq(start | emit),
            o.payload.slots.eq(Mux(start, 0, walkers.slots)),
            o.payload.group.eq(group),
            o.payload.step.eq(step),
            o.payload.start.eq(start),
            o.payload.step_end.eq(~start & walkers.step_end),
            o.payload.end.eq(Mux(start, skip | ~r.valid, last_group & walkers.step_end
                                 & ~r.valid)),
            o.payload.error.eq(skip),
        ]
        for w, pixel in enumerate(walkers.pixels):
            m.d.sync += o.payload.pixels[w].eq(pixel)
        # Tokens sent in the last drain_cycles cycles (they may still be in the layers).
        recent = Signal(self._drain_cycles)
        m.d.sync += recent.eq(Cat(o.valid, recent[:-1]))
        m.d.comb += [
            self.o_drained.eq(~active & ~o.valid & (recent == 0)),
            self.o_idle.eq(self.o_drained & ~loader.frame_open & ~loader.busy
                           & (store.full == 0) & (in_flight == 0)),
        ]
        return m
