"""Encoder and time-ordered event scheduler, double-buffered.

How it works
------------
Pixel ``p`` spikes at step ``255 - p`` (the bitwise NOT of the 8-bit pixel); pixel 0 would
spike at step 255, where no hidden neuron can spike any more, so it is not stored at all.

*Loading.* Each image is written into one of two banks while the other bank is being read,
so image ``k + 1`` loads while image ``k`` computes. A bank holds, for each of the
``pixels_per_beat`` positions ``k`` of a beat, a linked list per time step: ``head_k[step]`` is
the last beat whose pixel ``k`` spikes at ``step``, ``next_k[beat]`` links to the previous
one (with a ``more`` bit ending the list), ``step_k[beat]`` is the step of the beat's pixel
``k`` (255 when it is not stored), and the bitmap ``steps`` (256 bits) says which steps have a
list. Heads are never cleared: a head is one of the image's iff it names an earlier beat of
the image whose ``step_k`` is that step (a stale head fails the test, as the beat it names is
either not loaded yet or spikes at another step). A whole beat is inserted per cycle: each
position reads its head in the cycle the beat is accepted (a head written in that same cycle
is forwarded) and writes head and step in the next cycle, and the link (whose ``more`` bit
checks the head read) in the cycle after. Cost is one cycle per beat, whatever the pixels.

*Reading.* The walker emits one event per cycle (per lane group, for ``groups`` > 1), in
step order, with no bubbles inside an image:

* a step finder keeps the next non-empty step ready in registers ``R``: a tree search of
  ``steps`` queues the steps in order; ``P``, the step after ``R``, reads its heads from every
  position's head memory; ``R`` takes ``P`` with those heads and the positions that have a
  list there (whose heads' ``step_k`` is the step). Every stage is registered, so that no
  memory read and no search lies on the walker's one-cycle loop;
* within a step, positions are taken in order (lowest first) and each position's list is
  followed through ``next_k`` one node per cycle (the link read is issued in the cycle the
  node is emitted, and decides the next node in the following cycle).

An image's tokens are: a ``start`` token in the cycle the image starts (``S``), then its
events at ``S + 1 + j * groups + g``. The flags ``step_end``/``end`` of an event are only
known once its link has been read, so the output token is registered: the token of a cycle
appears on ``o_events`` one cycle later. The image is finished in the cycle after its last
event (``S + 1 + n_events * groups``), or earlier when the output layer announces its decision
through ``i_kill`` (the walker then drops the rest of the image). The next image starts in
the following cycle when its bank is loaded and a result credit is free: at most ``credits``
images are started and not yet taken from the result queue, so the result queue of that depth
can never overflow and the compute pipeline never has to stall.
"""

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .first_set import decode, first_set, lowest_set
from .layouts import event_layout, framed_beat_layout, index_shape
from .pixel_input import PIXELS_PER_BEAT_CHOICES

__all__ = ["EventScheduler"]

N_STEPS = 256


class EventScheduler(wiring.Component):
    """Orders the spikes of each image by time, two images in flight (see the module doc).

    Parameters
    ----------
    n_inputs : int
        Pixels per image.
    pixels_per_beat : int
        Pixels per input beat.
    groups : int
        Lane groups of the first layer: each event is emitted ``groups`` times.
    credits : int
        Depth of the result queue (a power of two): images started and not yet taken.
    drain_cycles : int
        Cycles a token may take from ``o_events`` to the result queue; ``o_idle`` waits for
        that long after the last token.

    Members
    -------
    i_beats : ``In(stream.Signature(framed_beat_layout(n_beats, pixels_per_beat)))``
    o_events : ``Out(stream.Signature(event_layout(n_inputs, groups), always_ready=True))``
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

    def __init__(self, n_inputs, pixels_per_beat, groups=1, credits=4, drain_cycles=16):
        if not isinstance(n_inputs, int) or n_inputs < 1:
            raise ValueError(f"n_inputs must be a positive integer, got {n_inputs!r}")
        if pixels_per_beat not in PIXELS_PER_BEAT_CHOICES:
            raise ValueError(f"pixels_per_beat must be one of {PIXELS_PER_BEAT_CHOICES}, "
                             f"got {pixels_per_beat!r}")
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be a positive integer, got {groups!r}")
        if not isinstance(credits, int) or credits < 2 or credits & (credits - 1):
            raise ValueError(f"credits must be a power of two of at least 2, got {credits!r}")
        self._n_inputs = n_inputs
        self._pixels_per_beat = pixels_per_beat
        self._groups = groups
        self._credits = credits
        if not isinstance(drain_cycles, int) or drain_cycles < 1:
            raise ValueError(f"drain_cycles must be a positive integer, got {drain_cycles!r}")
        self._drain_cycles = drain_cycles
        super().__init__({
            "i_beats": In(stream.Signature(framed_beat_layout(self.n_beats, pixels_per_beat))),
            "o_events": Out(stream.Signature(event_layout(n_inputs, groups), always_ready=True)),
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
    def n_beats(self):
        return -(-self._n_inputs // self._pixels_per_beat)

    #: Image banks: one is loaded while the other is computed.
    banks = 2
    #: Steps the step finder queues per bank before the bank's image may start.
    step_queue_depth = 2
    #: Cycles from a frame's last beat being accepted to its bank being marked full: the beat
    #: is stored in loader stage 1, which marks the bank full in the cycle after.
    load_to_full = 2
    #: Cycles from a frame's last beat being accepted to the first cycle its image can start:
    #: the bank is marked full, then the step finder queues its first steps, one per cycle.
    load_to_start = load_to_full + step_queue_depth
    #: Cycles from an image's finish to the first cycle the next image can start.
    finish_to_start = 1
    #: Cycles from an image's finish (bank released) to the first cycle its bank takes a beat.
    finish_to_load = 1

    def elaborate(self, platform):
        m = Module()
        ppb, n_beats, groups = self._pixels_per_beat, self.n_beats, self._groups
        ptr_width = max(1, ceil_log2(n_beats))

        # --- storage, two banks (the bank is the top address bit) ---------------------------
        heads, links, step_mems = [], [], []
        for k in range(ppb):
            heads.append(Memory(shape=ptr_width, depth=2 * N_STEPS, init=[]))
            # link word: bits [0, ptr_width) previous beat of the list, bit ptr_width "more"
            # Lists are followed one node per cycle, the read data deciding the next address:
            # small LUT RAMs keep that loop short.
            links.append(Memory(shape=ptr_width + 1, depth=2 << ptr_width, init=[],
                                attrs={"ram_style": "distributed"}))
            step_mems.append(Memory(shape=8, depth=2 << ptr_width, init=[],
                                    attrs={"ram_style": "distributed"}))
            m.submodules[f"heads{k}"] = heads[k]
            m.submodules[f"links{k}"] = links[k]
            m.submodules[f"step_mem{k}"] = step_mems[k]
        steps = [Signal(N_STEPS, name=f"steps{b}") for b in range(2)]
        bank_full = Signal(2)   # loaded, not yet finished by the walker
        primed = Signal(2)      # loaded, and its first steps queued (the image may start)
        bank_error = Signal(2)  # the frame in the bank was malformed

        # --- loader: stage 0 (beat accepted) reads heads, stages 1 and 2 write ----------
        beats = self.i_beats
        load_bank = Signal()
        frame_open = Signal()   # a frame has begun and its last beat has not come yet
        accept = Signal()
        m.d.comb += [
            beats.ready.eq(~bank_full.bit_select(load_bank, 1) & ~(self.i_pause & ~frame_open)),
            accept.eq(beats.valid & beats.ready),
        ]
        head_write = [heads[k].write_port() for k in range(ppb)]
        # Not transparent: a head written in the cycle it is read is forwarded (below), so
        # that the block RAM's output goes straight into a register.
        head_load = [heads[k].read_port() for k in range(ppb)]
        link_write = [links[k].write_port() for k in range(ppb)]
        step_write = [step_mems[k].write_port() for k in range(ppb)]
        head_step = [step_mems[k].read_port(domain="comb") for k in range(ppb)]

        s1_valid = Signal()
        s1_bank = Signal()
        s1_beat = Signal(ptr_width)
        s1_end = Signal()
        s1_error = Signal()
        s1_start = Signal()
        s1_insert = Signal(ppb)
        s1_step = [Signal(8, name=f"s1_step{k}") for k in range(ppb)]
        m.d.sync += [
            s1_valid.eq(accept),
            s1_bank.eq(load_bank),
            s1_beat.eq(beats.payload.beat),
            s1_end.eq(accept & beats.payload.end),
            s1_start.eq(beats.payload.start),
            s1_error.eq(beats.payload.error),
        ]
        s1_forward = Signal(ppb)  # the head read is the one stage 1 wrote as it was read
        s1_forward_beat = Signal(ptr_width)
        m.d.sync += s1_forward_beat.eq(s1_beat)
        for k in range(ppb):
            pixel = beats.payload.pixels[k]
            in_image = beats.payload.beat * ppb + k < self._n_inputs
            m.d.comb += head_load[k].addr.eq(Cat(~pixel, load_bank))
            m.d.sync += [
                s1_insert[k].eq(accept & beats.payload.keep & (pixel != 0) & in_image),
                s1_step[k].eq(~pixel),
                s1_forward[k].eq(s1_valid & s1_insert[k] & (s1_bank == load_bank)
                                 & (s1_step[k] == ~pixel)),
            ]
        with m.If(accept & beats.payload.end):
            m.d.sync += [load_bank.eq(~load_bank), frame_open.eq(0)]
        with m.Elif(accept):
            m.d.sync += frame_open.eq(1)

        # Stage 2 writes the link: whether the head read in stage 0 is one of this image's
        # is decided one cycle after the read, off the block RAM's output.
        s2_bank = Signal()
        s2_beat = Signal(ptr_width)
        s2_insert = Signal(ppb)
        s2_step = [Signal(8, name=f"s2_step{k}") for k in range(ppb)]
        s2_previous = [Signal(ptr_width, name=f"s2_previous{k}") for k in range(ppb)]
        m.d.sync += [
            s2_bank.eq(s1_bank),
            s2_beat.eq(s1_beat),
            s2_insert.eq(Mux(s1_valid, s1_insert, 0)),
        ]
        s1_onehot = [decode(m, s1_step[k], N_STEPS, f"s1_onehot{k}") for k in range(ppb)]
        for k in range(ppb):
            m.d.sync += [
                s2_step[k].eq(s1_step[k]),
                s2_previous[k].eq(Mux(s1_forward[k], s1_forward_beat, head_load[k].data)),
            ]
            # The head read is one of this image's (beats are numbered from 0 in a frame).
            previous = s2_previous[k]
            m.d.comb += head_step[k].addr.eq(Cat(previous, s2_bank))
            was_occupied = (previous < s2_beat) & (head_step[k].data == s2_step[k])
            m.d.comb += [
                step_write[k].addr.eq(Cat(s1_beat, s1_bank)),
                step_write[k].data.eq(Mux(s1_insert[k], s1_step[k], N_STEPS - 1)),
                step_write[k].en.eq(s1_valid),
                link_write[k].addr.eq(Cat(s2_beat, s2_bank)),
                link_write[k].data.eq(Cat(previous, was_occupied)),
                link_write[k].en.eq(s2_insert[k]),
                head_write[k].addr.eq(Cat(s1_step[k], s1_bank)),
                head_write[k].data.eq(s1_beat),
                head_write[k].en.eq(s1_valid & s1_insert[k]),
            ]

        # --- walker: step finder register R, then positions, then links --------------------
        link_read = [links[k].read_port() for k in range(ppb)]
        head_read = [heads[k].read_port() for k in range(ppb)]
        walk_step = [step_mems[k].read_port(domain="comb") for k in range(ppb)]

        active = Signal()      # an image is being walked
        bank = Signal()        # its bank (when idle: the bank of the next image)
        tag = Signal(range(self._credits), init=self._credits - 1)
        in_flight = Signal(range(self._credits + 1))

        # R, the walker's next step, all registers: the step, its lists' heads and the
        # positions with a list there. It is loaded from P, the step after it, whose heads
        # were read when P was loaded; a head is the image's when its beat's step is P's.
        r_valid = Signal()
        r_step = Signal(8)
        r_heads = [Signal(ptr_width, name=f"r_head{k}") for k in range(ppb)]
        r_mask = Signal(ppb)
        p_ready = Signal()      # P holds the first step of `bank` (or that it has none)
        p_valid = Signal()
        p_step = Signal(8)
        p_mask = Signal(ppb)
        for k in range(ppb):
            m.d.comb += [
                walk_step[k].addr.eq(Cat(head_read[k].data, bank)),
                p_mask[k].eq(walk_step[k].data == p_step),
            ]

        step = Signal(8)                                   # step being walked
        mask = Signal(ppb)                                 # positions of it not yet started
        step_heads = [Signal(ptr_width, name=f"step_head{k}") for k in range(ppb)]
        have_node = Signal()                               # a node was emitted last cycle
        node_position = Signal(index_shape(ppb))
        node_beat = Signal(ptr_width)
        group = Signal(range(groups))

        link_words = [link_read[k].data for k in range(ppb)]
        link_more = Cat(*[word[ptr_width] for word in link_words]).bit_select(node_position, 1)
        link_beat = Signal(ptr_width)
        with m.Switch(node_position):
            for k in range(ppb):
                with m.Case(k):
                    m.d.comb += link_beat.eq(link_words[k][:ptr_width])

        repeat = Signal()      # emit the same node for the next lane group
        follow = Signal()      # next node of the same list
        from_mask = Signal()   # first node of the next position of this step
        from_r = Signal()      # first node of the next step
        m.d.comb += [
            repeat.eq(have_node & (group != groups - 1)),
            follow.eq(have_node & ~repeat & link_more),
            from_mask.eq(~repeat & ~follow & (mask != 0)),
            from_r.eq(~repeat & ~follow & (mask == 0) & r_valid),
        ]
        kill = Signal()
        finish = Signal()
        start = Signal()
        # An image starts only while the walker is idle, so that `start` depends on registers
        # alone (the walker's own decisions make a long enough path); when idle, `bank` is
        # already the next image's bank.
        m.d.comb += [
            kill.eq(active & self.i_kill.valid & (self.i_kill.payload == tag)),
            finish.eq(active & (kill | ~(repeat | follow | from_mask | from_r))),
            start.eq(~active & primed.bit_select(bank, 1) & p_ready & (in_flight < self._credits)
                     & ~self.i_hold & self.i_may_start),
        ]
        emit_new = Signal()
        emit_repeat = Signal()
        m.d.comb += [
            emit_new.eq(active & ~kill & ~self.i_hold & (follow | from_mask | from_r)),
            emit_repeat.eq(active & ~kill & ~self.i_hold & repeat),
        ]

        _, mask_first = first_set(m, mask, "mask_first")
        _, r_first = first_set(m, r_mask, "r_first")
        new_position = Signal(index_shape(ppb))
        new_beat = Signal(ptr_width)
        with m.If(follow):
            m.d.comb += [new_position.eq(node_position), new_beat.eq(link_beat)]
        with m.Elif(from_mask):
            m.d.comb += new_position.eq(mask_first)
            with m.Switch(mask_first):
                for k in range(ppb):
                    with m.Case(k):
                        m.d.comb += new_beat.eq(step_heads[k])
        with m.Else():
            m.d.comb += new_position.eq(r_first)
            with m.Switch(r_first):
                for k in range(ppb):
                    with m.Case(k):
                        m.d.comb += new_beat.eq(r_heads[k])
        for k in range(ppb):
            m.d.comb += [
                link_read[k].addr.eq(Cat(new_beat, bank)),
                link_read[k].en.eq(emit_new),
            ]

        with m.If(emit_new):
            m.d.sync += [
                have_node.eq(1),
                node_position.eq(new_position),
                node_beat.eq(new_beat),
                group.eq(0),
            ]
            with m.If(from_mask):
                m.d.sync += mask.eq(mask & ~(Const(1, ppb) << mask_first))
            with m.If(from_r):
                m.d.sync += [step.eq(r_step), mask.eq(r_mask & ~(Const(1, ppb) << r_first))]
                m.d.sync += [step_heads[k].eq(r_heads[k]) for k in range(ppb)]
        with m.Elif(emit_repeat):
            m.d.sync += group.eq(group + 1)
        with m.Elif(~(active & ~kill & self.i_hold)):
            m.d.sync += have_node.eq(0)

        # Step finder, three stages. A queue of two steps per bank is filled, lowest step
        # first, from the bank's bitmap as soon as the bank is loaded (each step's bit is
        # cleared as it is queued); the fill depends on registers only. P takes the queue's
        # head and reads its heads; R takes P. P is loaded with R, and for the next image as
        # soon as its bank's queue has a step (or its bitmap is empty): in the cycle the
        # previous image finishes, or later while the walker is idle. One fill per cycle keeps
        # a step ready for every cycle.
        load_r = Signal()
        load_p = Signal()
        finder_bank = Signal()
        m.d.comb += [
            load_r.eq(start | (emit_new & from_r)),
            finder_bank.eq(bank ^ finish),
        ]
        depth = self.step_queue_depth
        assert depth == 2, "the queue below has two entries"
        queued_any, queued_step, steps_next, unqueued_any = [], [], [], []
        for b in range(2):
            # Two entries, indexed by the low bit of the write and read counters.
            write = Signal(2, name=f"queue_write{b}")
            read = Signal(2, name=f"queue_read{b}")
            entries = [Signal(8, name=f"queue{b}_{e}") for e in range(depth)]
            count = Signal(2, name=f"queue_count{b}")
            priming = Signal(2, name=f"priming{b}")
            m.d.comb += count.eq(write - read)
            lowest_any, lowest_step, without_lowest = lowest_set(m, steps[b], f"lowest{b}")
            fill = Signal(name=f"fill{b}")
            m.d.comb += fill.eq(bank_full[b] & (count != depth) & lowest_any)
            with m.If(fill):
                m.d.sync += write.eq(write + 1)
            for e in range(depth):
                with m.If(fill & (write[0] == e)):
                    m.d.sync += entries[e].eq(lowest_step)
            with m.If(load_p & (finder_bank == b) & (count != 0)):
                m.d.sync += read.eq(read + 1)
            with m.If(bank_full[b] & (priming != depth)):
                m.d.sync += priming.eq(priming + 1)
            m.d.comb += primed[b].eq(priming == depth)
            with m.If(finish & (bank == b)):
                m.d.sync += [write.eq(0), read.eq(0), priming.eq(0)]
            steps_next.append(Mux(fill, without_lowest, steps[b]))
            head_step = Signal(8, name=f"queue_head{b}")
            m.d.comb += head_step.eq(Mux(read[0], entries[1], entries[0]))
            queued_any.append(count != 0)
            queued_step.append(head_step)
            unqueued_any.append(lowest_any)
        next_ready = Signal()
        m.d.comb += [
            next_ready.eq(bank_full.bit_select(finder_bank, 1)
                          & Mux(finder_bank, queued_any[1] | ~unqueued_any[1],
                                queued_any[0] | ~unqueued_any[0])),
            load_p.eq(load_r | (next_ready & (finish | (~active & ~p_ready)))),
        ]
        skip_bank = start & bank_error.bit_select(bank, 1)
        found_step = Mux(finder_bank, queued_step[1], queued_step[0])
        for k in range(ppb):
            m.d.comb += [
                head_read[k].addr.eq(Cat(found_step, finder_bank)),
                head_read[k].en.eq(load_p),
            ]
        with m.If(load_p):
            m.d.sync += [
                p_ready.eq(1),
                p_valid.eq(Mux(finder_bank, queued_any[1], queued_any[0])),
                p_step.eq(found_step),
            ]
        with m.Elif(finish):
            m.d.sync += p_ready.eq(0)
        with m.If(load_r):
            m.d.sync += [
                r_valid.eq(p_valid & ~skip_bank),
                r_step.eq(p_step),
                r_mask.eq(p_mask),
            ]
            m.d.sync += [r_heads[k].eq(head_read[k].data) for k in range(ppb)]

        with m.If(start):
            m.d.sync += [
                active.eq(1),
                tag.eq(tag + 1),
                mask.eq(0),
                have_node.eq(0),
            ]
        with m.Elif(finish):
            m.d.sync += active.eq(0)
        with m.If(finish):
            m.d.sync += bank.eq(~bank)
        m.d.sync += in_flight.eq(in_flight + start - self.i_result_taken)

        # --- bank state and bitmaps: one next-value per register -------------------------
        inserted_any = Signal(N_STEPS)
        m.d.comb += inserted_any.eq(functools.reduce(operator.or_, [
            Mux(s1_valid & s1_insert[k], s1_onehot[k], 0) for k in range(ppb)]))
        for b in range(2):
            # A frame's first beat clears its bank's bitmap as it is stored.
            clear = s1_valid & s1_start & (s1_bank == b)
            here = s1_bank == b
            # The loader and the step finder never work on the same bank at once.
            steps_set = Mux(here, inserted_any, 0)
            m.d.sync += steps[b].eq(Mux(clear, 0, steps_next[b]) | steps_set)
            with m.If(s1_valid & here & s1_end):
                m.d.sync += [bank_full[b].eq(1), bank_error[b].eq(s1_error)]
            with m.If(finish & (bank == b)):
                m.d.sync += bank_full[b].eq(0)

        # --- output token (registered; step_end/end are decided one cycle later) ------------
        out_valid = Signal()
        out_start = Signal()
        out_start_end = Signal()
        out_error = Signal()
        m.d.sync += [
            out_valid.eq(start | emit_new | emit_repeat),
            out_start.eq(start),
            out_start_end.eq(start & (skip_bank | ~p_valid)),
            out_error.eq(skip_bank),
        ]
        with m.If(emit_new & from_r):
            m.d.sync += step.eq(r_step)
        # Tokens sent in the last drain_cycles cycles (they may still be in the layers).
        recent = Signal(self._drain_cycles)
        m.d.sync += recent.eq(Cat(out_valid, recent[:-1]))
        m.d.comb += [
            self.o_drained.eq(~active & ~out_valid & (recent == 0)),
            self.o_idle.eq(self.o_drained & ~frame_open & ~s1_valid & (bank_full == 0)
                           & (in_flight == 0)),
        ]

        step_end = Signal()
        m.d.comb += step_end.eq(~out_start & (group == groups - 1) & ~link_more & (mask == 0))
        o = self.o_events
        m.d.comb += [
            o.valid.eq(out_valid),
            o.payload.pixel.eq(node_beat * ppb + node_position),
            o.payload.group.eq(group),
            o.payload.step.eq(step),
            o.payload.start.eq(out_start),
            o.payload.step_end.eq(step_end),
            o.payload.end.eq(Mux(out_start, out_start_end, step_end & ~r_valid)),
            o.payload.error.eq(out_start & out_error),
        ]
        return m
