# amaranth: UnusedElaboratable=no
# (The Accelerator builds its blocks in its constructor; they go unused only when it does, and
# that is warned about where the Accelerator is built.)
"""The accelerator: blocks wired together, and the flat AXI-stream top level ``bs4nn``."""

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..model import packing
from ..model.errors import UserError
from ..model.network import Network
from .debug_events import ChunkJoiner, DebugEvents
from .event_layer import EventLayer
from .layouts import debug_event_layout, pixel_beat_layout, result_layout, weight_word_layout
from .output_layer import OutputLayer
from .pixel_input import PIXELS_PER_BEAT_CHOICES, PixelFramer
from .register_slice import PipelineRegister, RegisterSlice
from .replicas import REPLICA_MARK
from .schedule import Schedule
from .scheduler import EVENTS_PER_CYCLE_CHOICES, EventScheduler
from .spram import SPRAM_BLOCKS, spram_blocks
from .vector_layer import VectorLayer
from .weight_loader import WeightLoader

__all__ = ["Accelerator", "TopLevel", "WEIGHT_STORAGE_CHOICES", "RESULT_CREDITS",
           "check_parameters"]

WEIGHT_STORAGE_CHOICES = ("rom", "ram", "spram")
#: Depth of the result queue, and so the most images started and not yet taken as results.
RESULT_CREDITS = 4


def check_parameters(network, lanes=0, pixels_per_beat=8, weight_storage="rom",
                     debug_events=False, events_per_cycle=1):
    """Check the generator's parameters; the one check behind :class:`Accelerator`,
    ``generate`` and the cycle model. Raises :class:`TypeError` for a network that is not a
    :class:`~bs4nn.model.network.Network`, :class:`~bs4nn.model.errors.UserError` (a
    ``ValueError``) with one exact line for a bad value."""
    if not isinstance(network, Network):
        raise TypeError(f"network must be a Network, got {type(network).__name__}")
    if len(network.layers) < 2:
        raise UserError(f"the network {network.describe()} has no hidden layer; the accelerator "
                        f"needs at least one")
    n_hidden = network.layers[0].n_out
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 0 <= lanes <= n_hidden:
        raise UserError(f"lanes must be between 1 and {n_hidden} (or 0 for all {n_hidden}), "
                        f"got {lanes!r}")
    if isinstance(pixels_per_beat, bool) or pixels_per_beat not in PIXELS_PER_BEAT_CHOICES:
        raise UserError(f"pixels_per_beat must be one of "
                        f"{', '.join(map(str, PIXELS_PER_BEAT_CHOICES))}, got {pixels_per_beat!r}")
    if (isinstance(events_per_cycle, bool) or events_per_cycle not in EVENTS_PER_CYCLE_CHOICES
            or events_per_cycle > pixels_per_beat):
        raise UserError(f"events_per_cycle must be one of "
                        f"{', '.join(map(str, EVENTS_PER_CYCLE_CHOICES))} and at most "
                        f"pixels_per_beat ({pixels_per_beat}), got {events_per_cycle!r}")
    if weight_storage not in WEIGHT_STORAGE_CHOICES:
        raise UserError(f"weight_storage must be one of {', '.join(WEIGHT_STORAGE_CHOICES)}, "
                        f"got {weight_storage!r}")
    if weight_storage == "spram":
        if events_per_cycle != 1:
            raise UserError(f"weight_storage='spram' takes one event per cycle, got "
                            f"events_per_cycle={events_per_cycle}")
        width = lanes or n_hidden
        words = network.n_inputs * -(-n_hidden // width)
        if spram_blocks(width, words) > SPRAM_BLOCKS:
            raise UserError(f"weight_storage='spram': the first layer's {words:,} words of "
                            f"{width} bits (lanes={lanes}) need {spram_blocks(width, words)} "
                            f"SB_SPRAM256KA blocks; the iCE40UP5K has {SPRAM_BLOCKS}")
    if not isinstance(debug_events, bool):
        raise UserError(f"debug_events must be True or False, got {debug_events!r}")


class Accelerator(wiring.Component):
    """The whole streaming BS4NN accelerator, with stream interfaces.

    pixels → :class:`PixelFramer` → :class:`EventScheduler` → :class:`EventLayer` →
    :class:`VectorLayer` (one per further hidden layer) → :class:`OutputLayer` → result queue.
    The blocks are built here, so that their latencies are known before elaboration:
    :attr:`schedule` sums them.

    Parameters
    ----------
    network : :class:`bs4nn.model.network.Network`
        At least one hidden layer.
    lanes : int
        Parallel counters of the first hidden layer (0: one per neuron).
    pixels_per_beat : int
    events_per_cycle : int
        Input events the first hidden layer integrates per cycle (walkers of the scheduler,
        weight banks of the layer); at most ``pixels_per_beat``.
    weight_storage : ``"rom"``, ``"ram"`` or ``"spram"``
        ``"ram"`` makes every weight and threshold writable at run time through
        ``i_weights`` (see :mod:`.weight_loader`); ``"spram"`` too, with the first layer's
        columns in the iCE40UP5K's SB_SPRAM256KA blocks (:mod:`.spram`), which have no
        initial contents: its weights must be loaded before the first image.
    debug_events : bool
        Add the hidden spike event stream ``o_debug`` (see :mod:`.debug_events`).
    pipelined : bool or None
        The build for timing closure: a :class:`~.register_slice.RegisterSlice` on every
        stream port, so that no path runs from a port through logic (the IP meets its clock
        beside registered neighbours), the block RAM outputs registered before any logic,
        the step layers' adder trees registered every two levels, and the output layer's
        decision from pairwise comparisons (more cycles, more logic). Only with weights in
        ROM: run-time weights order their frames against the pixel frames at the ports, with
        no slice between.
        None (the default): pipelined exactly with weights in ROM. A board build, whose
        neighbours are on the chip in the same clock and whose UP5K has no logic to spare,
        is not pipelined.

    The parameters are checked by :func:`check_parameters`.

    The ``sync`` reset is registered: each block runs in a domain of its own on the same
    clock, reset by its own copy of that register (:mod:`.replicas`), so every block is reset
    from the cycle after the reset rises to the cycle after it falls, and no reset net spans
    the design.

    Members
    -------
    i_pixels : ``In(stream.Signature(pixel_beat_layout(pixels_per_beat)))``
    o_results : ``Out(stream.Signature(result_layout(n_classes)))``
    i_weights : ``In(stream.Signature(weight_word_layout(weight_fields)))``, only with
        run-time weights
    o_debug : ``Out(stream.Signature(debug_event_layout(hidden_sizes)))``, only with
        ``debug_events``: every hidden spike, image by image (this may stall the computation;
        results stay exact, cycle counts then differ from the cycle model)
    """

    #: Cycles from a result being written into the result queue to the first cycle it can
    #: leave the queue (the queue's read is registered).
    result_to_pop = 1

    def __init__(self, network, *, lanes=0, pixels_per_beat=8, events_per_cycle=1,
                 weight_storage="rom", debug_events=False, pipelined=None):
        check_parameters(network, lanes, pixels_per_beat, weight_storage, debug_events,
                         events_per_cycle)
        self._network = network
        self._lanes = lanes or network.layers[0].n_out
        self._pixels_per_beat = pixels_per_beat
        self._events_per_cycle = events_per_cycle
        self._weight_storage = weight_storage
        self._debug_events = debug_events
        if pipelined is None:
            pipelined = weight_storage == "rom"
        if not isinstance(pipelined, bool):
            raise TypeError(f"pipelined must be True, False or None, got {pipelined!r}")
        if pipelined and weight_storage != "rom":
            raise UserError(f"pipelined needs weight_storage='rom', got {weight_storage!r}")
        self._pipelined = pipelined
        fields = self.weight_fields if self.writable_weights else None
        self._framer = PixelFramer(network.n_inputs, pixels_per_beat)
        self._event_layer = EventLayer(network.layers[0], self._lanes,
                                       events_per_cycle=events_per_cycle, weight_fields=fields,
                                       spram=weight_storage == "spram",
                                       registered_reads=pipelined)
        # After a folded first layer, the next layer takes its spikes a lane group at a time.
        input_lanes = self._lanes if self._event_layer.folded else None
        self._vector_layers = []
        for layer in network.layers[1:-1]:
            self._vector_layers.append(VectorLayer(layer, input_lanes=input_lanes,
                                                   weight_fields=fields, pipelined=pipelined))
            input_lanes = None
        self._output_layer = OutputLayer(network.layers[-1], credits=RESULT_CREDITS,
                                         input_lanes=input_lanes, weight_fields=fields,
                                         pipelined=pipelined)
        self._scheduler = EventScheduler(
            network.n_inputs, pixels_per_beat, self._event_layer.groups, RESULT_CREDITS,
            drain_cycles=self.event_to_result + 2, events_per_cycle=events_per_cycle)
        members = {
            "i_pixels": In(stream.Signature(pixel_beat_layout(pixels_per_beat))),
            "o_results": Out(stream.Signature(result_layout(network.n_classes))),
        }
        if self.writable_weights:
            members["i_weights"] = In(stream.Signature(weight_word_layout(self.weight_fields)))
        if debug_events:
            members["o_debug"] = Out(stream.Signature(debug_event_layout(self.hidden_sizes)))
        super().__init__(members)

    @property
    def network(self):
        return self._network

    @property
    def lanes(self):
        return self._lanes

    @property
    def pixels_per_beat(self):
        return self._pixels_per_beat

    @property
    def events_per_cycle(self):
        return self._events_per_cycle

    @property
    def weight_storage(self):
        return self._weight_storage

    @property
    def writable_weights(self):
        """Whether the weights are written at run time (``weight_storage`` other than rom)."""
        return self._weight_storage != "rom"

    @property
    def debug_events(self):
        return self._debug_events

    @property
    def pipelined(self):
        return self._pipelined

    @property
    def port_latency(self):
        """Cycles each stream port adds (its :class:`~.register_slice.RegisterSlice`)."""
        return RegisterSlice.latency if self._pipelined else 0

    @property
    def port_entries(self):
        """Beats or results each stream port holds."""
        return RegisterSlice.entries if self._pipelined else 0

    @property
    def hidden_sizes(self):
        return [layer.n_out for layer in self._network.layers[:-1]]

    @property
    def weight_fields(self):
        """Fields of a weight-load word (``packing.weight_stream_fields``)."""
        return packing.weight_stream_fields(self._network.sizes, self._lanes,
                                            self._events_per_cycle)

    @property
    def spike_hop_latency(self):
        """Cycles the first layer's spike vectors take to the next layer: a
        :class:`~.register_slice.PipelineRegister` in the pipelined build (the vector leaves
        lanes spread over the die)."""
        return PipelineRegister.latency if self._pipelined else 0

    @property
    def event_to_result(self):
        """Cycles from an event token leaving the scheduler to a result it decides being
        written into the result queue: the sum of the layers' latencies and the hop after the
        first layer."""
        layers = [self._event_layer, *self._vector_layers, self._output_layer]
        return sum(layer.latency for layer in layers) + self.spike_hop_latency

    @property
    def schedule(self):
        """The :class:`~.schedule.Schedule` of this design, from its blocks' latencies."""
        scheduler = self._scheduler
        return Schedule(
            beats_per_image=scheduler.n_beats,
            events_per_cycle=scheduler.events_per_cycle,
            lane_groups=scheduler.groups,
            hidden_layers=len(self.hidden_sizes),
            credits=scheduler.credits,
            banks=scheduler.banks,
            event_to_result=self.event_to_result,
            load_to_start=scheduler.load_to_start,
            finish_to_start=scheduler.finish_to_start,
            finish_to_load=scheduler.finish_to_load,
            kill_to_finish=scheduler.kill_to_finish,
            input_latency=self.port_latency,
            result_to_pop=self.result_to_pop,
            output_latency=self.port_latency,
            port_entries=self.port_entries,
        )

    def _inward(self, m, name):
        """The stream that comes in through the input port ``name``, as a source."""
        port = getattr(self, name)
        if not self._pipelined:
            return wiring.flipped(port)
        stage = self._block(m, f"{name}_slice", RegisterSlice(port.payload.shape()))
        wiring.connect(m, wiring.flipped(port), stage.i)
        return stage.o

    def _outward(self, m, name):
        """The stream that leaves through the output port ``name``, as a sink."""
        port = getattr(self, name)
        if not self._pipelined:
            return wiring.flipped(port)
        stage = self._block(m, f"{name}_slice", RegisterSlice(port.payload.shape()))
        wiring.connect(m, stage.o, wiring.flipped(port))
        return stage.i

    @staticmethod
    def _reset_domain(m, name):
        """A local domain ``name`` on the clock, reset by a register of its own that follows
        the reset one cycle late, so that no reset net spans the design."""
        m.domains += ClockDomain(name, local=True)
        reset = Signal(reset_less=True, name=f"{name}_reset{REPLICA_MARK}")
        m.d.sync += reset.eq(ResetSignal())
        m.d.comb += [ClockSignal(name).eq(ClockSignal()), ResetSignal(name).eq(reset)]
        return name

    def _block(self, m, name, block):
        """Add ``block`` as the submodule ``name``, in a reset domain of its own; returns it."""
        m.submodules[name] = DomainRenamer(self._reset_domain(m, name))(block)
        return block

    def elaborate(self, platform):
        m = Module()
        network = self._network
        fields = self.weight_fields if self.writable_weights else None
        framer = self._block(m, "framer", self._framer)
        event_layer = self._block(m, "event_layer", self._event_layer)
        scheduler = self._block(m, "scheduler", self._scheduler)
        vector_layers = self._vector_layers
        for index, layer in enumerate(vector_layers):
            self._block(m, f"vector_layer{index}", layer)
        output_layer = self._block(m, "output_layer", self._output_layer)

        wiring.connect(m, self._inward(m, "i_pixels"), framer.i_beats)
        wiring.connect(m, framer.o_beats, scheduler.i_beats)
        wiring.connect(m, scheduler.o_events, event_layer.i_events)
        spikes = event_layer.o_spikes
        if self._pipelined:
            hop = self._block(m, "spike_hop", PipelineRegister(spikes.payload.shape()))
            wiring.connect(m, spikes, hop.i)
            spikes = hop.o
        for layer in vector_layers:
            wiring.connect(m, spikes, layer.i_spikes)
            spikes = layer.o_spikes
        wiring.connect(m, spikes, output_layer.i_spikes)
        wiring.connect(m, output_layer.o_kill, scheduler.i_kill)

        # The scheduler starts an image only with a free credit, so the queue never overflows.
        queue = self._block(m, "result_queue", SyncFIFO(
            width=result_layout(self._network.n_classes).size, depth=RESULT_CREDITS))
        results = output_layer.o_results
        outgoing = self._outward(m, "o_results")
        m.d.comb += [
            queue.w_data.eq(results.payload),
            queue.w_en.eq(results.valid),
            outgoing.valid.eq(queue.r_rdy),
            outgoing.payload.eq(queue.r_data),
            queue.r_en.eq(outgoing.ready),
            scheduler.i_result_taken.eq(queue.r_rdy & outgoing.ready),
        ]

        if self._debug_events:
            taps = [layer.o_spikes for layer in (event_layer, *vector_layers)]
            if event_layer.folded:
                joiner = self._block(m, "chunk_joiner",
                                     ChunkJoiner(self.hidden_sizes[0], self._lanes))
                m.d.comb += [joiner.i_chunks.valid.eq(taps[0].valid),
                             joiner.i_chunks.payload.eq(taps[0].payload)]
                taps[0] = joiner.o_spikes
            debug = self._block(m, "debug_events", DebugEvents(
                self.hidden_sizes, reserve=self.event_to_result + ChunkJoiner.latency + 3))
            for index, spikes in enumerate(taps):
                tap = getattr(debug, f"i_spikes{index}")
                m.d.comb += [tap.valid.eq(spikes.valid), tap.payload.eq(spikes.payload)]
            wiring.connect(m, debug.o_events, self._outward(m, "o_debug"))
            m.d.comb += [
                scheduler.i_hold.eq(debug.o_full),
                scheduler.i_may_start.eq(debug.o_empty & scheduler.o_drained),
            ]

        if fields is not None:
            # A weight frame waits until the accelerator is idle, and holds back new pixel
            # frames from the moment it is offered until its last word.
            loader = self._block(m, "weight_loader", WeightLoader(
                network.sizes, self._lanes, self._events_per_cycle))
            loading = Signal()
            glue = self._reset_domain(m, "weight_gate")
            weights = self._inward(m, "i_weights")
            m.d.comb += [
                scheduler.i_pause.eq(weights.valid | loading),
                weights.ready.eq(loading),
                loader.i_words.valid.eq(weights.valid & loading),
                loader.i_words.payload.eq(weights.payload),
            ]
            with m.If(~loading & weights.valid & scheduler.o_idle):
                m.d[glue] += loading.eq(1)
            with m.If(loading & weights.valid & weights.payload.last):
                m.d[glue] += loading.eq(0)
            layers = [event_layer, *vector_layers, output_layer]
            for k, layer in enumerate(layers):
                wiring.connect(m, getattr(loader, f"o_writes{k}"), layer.w_weights)
        return m


class TopLevel(wiring.Component):
    """The Verilog module ``bs4nn``: :class:`Accelerator` with flat AXI-stream port names.

    Members
    -------
    s_axis_tdata, s_axis_tvalid, s_axis_tready, s_axis_tlast
        Pixel beats (pixel ``k`` in bits ``[8k, 8k + 8)``), ``tlast`` on a frame's last beat.
    m_axis_tdata, m_axis_tvalid, m_axis_tready
        Result words (``packing.result_fields``, LSB first).
    dbg_axis_tdata, dbg_axis_tvalid, dbg_axis_tready
        Only with ``debug_events``: hidden spike events (``packing.debug_event_fields``).
    w_axis_tdata, w_axis_tvalid, w_axis_tready, w_axis_tlast
        Only with run-time weights (``weight_storage`` ram or spram): weight-load words
        (``packing.weight_stream_fields``), ``tlast`` on a weight frame's last word.

    Every ``TDATA`` is whole bytes (``packing.tdata_width``): the word in the low bits, the
    padding above it 0 on the outputs and ignored on the inputs. ``rst`` is synchronous and
    registered: the design is reset from the cycle after ``rst`` rises to the cycle after it
    falls, and takes its first beat one cycle later still.
    """

    #: Cycles from the first cycle ``rst`` is low to the first cycle a beat can be accepted
    #: (the registered reset holds the design one cycle longer, and the input port's
    #: ``tready`` register rises in the cycle after that).
    reset_to_ready = 2

    def __init__(self, accelerator):
        if not isinstance(accelerator, Accelerator):
            raise TypeError(f"accelerator must be an Accelerator, got {accelerator!r}")
        self.accelerator = accelerator
        ppb = accelerator.pixels_per_beat
        members = {
            "s_axis_tdata": In(packing.PIXEL_BITS * ppb),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(packing.tdata_width(
                result_layout(accelerator.network.n_classes).size)),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
        }
        if accelerator.debug_events:
            members.update({
                "dbg_axis_tdata": Out(packing.tdata_width(
                    debug_event_layout(accelerator.hidden_sizes).size)),
                "dbg_axis_tvalid": Out(1),
                "dbg_axis_tready": In(1),
            })
        if accelerator.writable_weights:
            members.update({
                "w_axis_tdata": In(packing.tdata_width(
                    sum(width for _, width in accelerator.weight_fields))),
                "w_axis_tvalid": In(1),
                "w_axis_tready": Out(1),
                "w_axis_tlast": In(1),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        core = m.submodules.core = self.accelerator
        m.d.comb += [
            core.i_pixels.payload.pixels.eq(self.s_axis_tdata),
            core.i_pixels.payload.last.eq(self.s_axis_tlast),
            core.i_pixels.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(core.i_pixels.ready),
            self.m_axis_tdata.eq(core.o_results.payload),
            self.m_axis_tvalid.eq(core.o_results.valid),
            core.o_results.ready.eq(self.m_axis_tready),
        ]
        if self.accelerator.debug_events:
            m.d.comb += [
                self.dbg_axis_tdata.eq(core.o_debug.payload),
                self.dbg_axis_tvalid.eq(core.o_debug.valid),
                core.o_debug.ready.eq(self.dbg_axis_tready),
            ]
        if self.accelerator.writable_weights:
            word_width = sum(width for _, width in self.accelerator.weight_fields)
            m.d.comb += [
                core.i_weights.payload.as_value()[:word_width].eq(self.w_axis_tdata[:word_width]),
                core.i_weights.payload.last.eq(self.w_axis_tlast),
                core.i_weights.valid.eq(self.w_axis_tvalid),
                self.w_axis_tready.eq(core.i_weights.ready),
            ]
        return m
