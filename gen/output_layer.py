"""The output layer and the decision: earliest spike, potential tie-break, no-fire fallback."""

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..model.network import MAX_STEP, NO_SPIKE
from .event_layer import counter_shape
from .first_set import encode
from .layouts import result_layout, spike_vector_layout
from .vector_layer import delay_line, front_end_latency, input_groups, step_front_end
from .weight_loader import LayerComponent, require_layer

__all__ = ["OutputLayer", "argmax", "compare_all", "winner", "potential_shape"]


def potential_shape(n_inputs):
    """An output neuron's true potential: ``-n_inputs .. n_inputs``."""
    return signed(n_inputs.bit_length() + 1)


def argmax_levels(m, nodes, name, levels):
    """Merge ``(valid, value, index)`` nodes pairwise ``levels`` times (see :func:`argmax`).

    The left node wins when it is valid and the right one is not, or its value is at least
    the right one's, so ties go to the lower index. Every node is a named signal.
    """
    for level in range(levels):
        if len(nodes) == 1:
            break
        merged = []
        for index, (left, right) in enumerate(zip(nodes[0::2], nodes[1::2], strict=False)):
            take_left = Signal(name=f"{name}_left_{level}_{index}")
            node = (Signal(name=f"{name}_any_{level}_{index}"),
                    Signal.like(left[1], name=f"{name}_value_{level}_{index}"),
                    Signal.like(left[2], name=f"{name}_index_{level}_{index}"))
            m.d.comb += [
                take_left.eq(left[0] & (~right[0] | (left[1] >= right[1]))),
                node[0].eq(left[0] | right[0]),
                node[1].eq(Mux(take_left, left[1], right[1])),
                node[2].eq(Mux(take_left, left[2], right[2])),
            ]
            merged.append(node)
        if len(nodes) % 2:
            merged.append(nodes[-1])
        nodes = merged
    return nodes


def argmax(m, candidates, name):
    """``(any, index)`` of the largest value among valid candidates; ties go to the lower index.

    ``candidates`` is a list of ``(valid, value)`` pairs; the result is a comparator tree
    (``log2`` levels), combinational; every node is a named signal.
    """
    width = max(1, ceil_log2(len(candidates)))
    nodes = [(valid, value, Const(index, width)) for index, (valid, value)
             in enumerate(candidates)]
    (any_valid, _, index), = argmax_levels(m, nodes, name, width)
    return any_valid, index


def compare_all(m, values, name):
    """``ge[i, j]``, for every ``i < j``, is ``values[i] >= values[j]`` (combinational): one
    comparator per pair, side by side rather than in a tree."""
    ge = {}
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            ge[i, j] = Signal(name=f"{name}_{i}_{j}")
            m.d.comb += ge[i, j].eq(values[i] >= values[j])
    return ge


def winner(m, ge, valids, name):
    """One-hot: the valid candidate with the largest value, ties to the lower index (0 when
    none is valid), from the comparisons of :func:`compare_all` (combinational): candidate
    ``j`` wins when every other valid candidate ``i`` has a lower value (or an equal one and
    a higher index)."""
    n = len(valids)
    onehot = Signal(n, name=name)
    for j in range(n):
        beats = [~valids[i] | (~ge[i, j] if i < j else ge[j, i]) for i in range(n) if i != j]
        m.d.comb += onehot[j].eq(valids[j] & functools.reduce(operator.and_, beats, 1))
    return onehot


class OutputLayer(LayerComponent):
    """Output neurons and the decision of each image.

    The potentials ``V_j`` accumulate the last hidden layer's spike vectors like a
    :class:`~.vector_layer.VectorLayer`. At the first token whose step ``s <= MAX_STEP - 1``
    leaves some ``V_j > threshold_j``, the image is decided: the crossing neuron with the
    largest potential wins (then the lower index), ``decision_step = s + 1``, ``fired = 1``;
    the decision is also announced on ``o_kill`` (with the image's tag, its sequence number
    modulo ``credits``) so the scheduler can drop the rest of the image, and the image's
    later tokens are ignored. An image that ends undecided gets the largest final potential
    (then the lower index), ``decision_step = NO_SPIKE``, ``fired = 0``; a malformed frame gets
    ``error = 1`` and all other fields 0.

    After a folded layer a step's spikes come in ``ceil(n_in / input_lanes)`` tokens, and the
    image is decided at the step's last one.

    Latency: :func:`~.vector_layer.front_end_latency`, one cycle to accumulate, then two
    cycles to decide through comparator trees registered halfway, or with ``pipelined`` three
    (every pair of potentials compared; the winners, one-hot; their indices: more logic,
    shorter paths) (:attr:`latency`), from a token on ``i_spikes`` to its result on
    ``o_results``.

    Parameters
    ----------
    layer : :class:`bs4nn.model.network.Layer`
    credits : int
        Images in flight at most (tags count modulo this).
    input_lanes : int or None
        Inputs per token when fed by a folded layer (None: whole vectors).
    weight_fields : list of ``(name, width)`` or None
        ``packing.weight_stream_fields`` of the design to keep rows and thresholds in registers
        (chunks: a memory) written through ``w_weights`` (else they are constants).
    pipelined : bool
        Shorter paths for more cycles: the front end's (see
        :func:`~.vector_layer.step_front_end`), and the decision from pairwise comparisons
        (see above) rather than comparator trees.

    Members
    -------
    i_spikes : ``In(stream.Signature(spike_vector_layout(input_lanes or n_in, groups),
        always_ready=True))``
    o_results : ``Out(stream.Signature(result_layout(n_out), always_ready=True))``
    o_kill : ``Out(stream.Signature(range(credits), always_ready=True))``
    w_weights : ``In(stream.Signature(weight_write_layout(weight_fields), always_ready=True))``,
        only with ``weight_fields``
    """

    def __init__(self, layer, *, credits=4, input_lanes=None, weight_fields=None,
                 pipelined=False):
        require_layer(layer)
        self._pipelined = pipelined
        if not isinstance(credits, int) or credits < 2 or credits & (credits - 1):
            raise ValueError(f"credits must be a power of two of at least 2, got {credits!r}")
        self._credits = credits
        self._input_lanes = input_lanes
        groups = input_groups(layer, input_lanes)
        super().__init__(layer, {
            "i_spikes": In(stream.Signature(spike_vector_layout(input_lanes or layer.n_in,
                                                                groups), always_ready=True)),
            "o_results": Out(stream.Signature(result_layout(layer.n_out), always_ready=True)),
            "o_kill": Out(stream.Signature(range(credits), always_ready=True)),
        }, weight_fields)

    @property
    def credits(self):
        return self._credits

    @property
    def latency(self):
        """Front end, accumulate, the decision's stages."""
        return (front_end_latency(self._layer, self._input_lanes, self._pipelined)
                + (4 if self._pipelined else 3))

    def elaborate(self, platform):
        m = Module()
        layer = self._layer
        popcount, thresholds, a_meta = step_front_end(
            m, layer, self.i_spikes, self.weight_port, self._input_lanes, self._pipelined)

        # Accumulate the true potentials.
        shape = potential_shape(layer.n_in)
        potentials, crossed = [], []
        for j in range(layer.n_out):
            # Cleared by every start token: no domain reset needed (see EventLayer).
            potential = Signal(shape, name=f"potential{j}", reset_less=True)
            potentials.append(potential)
            delta = popcount.sums[j] * 2 - popcount.total
            with m.If(a_meta.valid):
                m.d.sync += potential.eq(Mux(a_meta.start, 0, potential + delta))
            if self._pipelined:
                # Beside it, its margin over the threshold (the potential less threshold + 1,
                # as in the EventLayer's counters): its sign says whether it has crossed.
                margin = Signal(counter_shape(layer.n_in), name=f"margin{j}", reset_less=True)
                with m.If(a_meta.valid):
                    m.d.sync += margin.eq(Mux(a_meta.start, -(thresholds[j] + 1),
                                              margin + delta))
                crossed.append(~margin[-1])
            else:
                crossed.append(potential > thresholds[j])
        d_meta = Signal.like(a_meta)
        m.d.sync += d_meta.eq(a_meta)
        decide = self._decide_pairwise if self._pipelined else self._decide_by_trees
        any_crossed, first_winner, final_winner, e_meta = decide(m, potentials, crossed, d_meta)

        decided = Signal()
        tag = Signal(range(self._credits), init=self._credits - 1)
        image_tag = Signal.like(tag)
        m.d.comb += image_tag.eq(Mux(e_meta.valid & e_meta.start, tag + 1, tag))
        m.d.sync += tag.eq(image_tag)
        still_open = ~decided | e_meta.start
        early = Signal()
        fallback = Signal()
        m.d.comb += [
            early.eq(e_meta.valid & still_open & ~e_meta.start & e_meta.last
                     & (e_meta.step < MAX_STEP) & any_crossed),
            fallback.eq(e_meta.valid & still_open & e_meta.end & ~early),
        ]
        with m.If(e_meta.valid):
            m.d.sync += decided.eq(still_open & (early | fallback) | ~still_open)

        result = self.o_results.payload
        m.d.sync += [
            self.o_results.valid.eq(early | fallback),
            self.o_kill.valid.eq(early),
            self.o_kill.payload.eq(image_tag),
        ]
        with m.If(early):
            m.d.sync += [
                result.predicted.eq(first_winner),
                result.decision_step.eq(e_meta.step + 1),
                result.fired.eq(1),
                result.error.eq(0),
            ]
        with m.Elif(e_meta.error):
            m.d.sync += [
                result.predicted.eq(0),
                result.decision_step.eq(0),
                result.fired.eq(0),
                result.error.eq(1),
            ]
        with m.Else():
            m.d.sync += [
                result.predicted.eq(final_winner),
                result.decision_step.eq(NO_SPIKE),
                result.fired.eq(0),
                result.error.eq(0),
            ]
        return m

    def _decide_by_trees(self, m, potentials, crossed, meta):
        """Two stages: each comparator tree (the earliest crossing's, the final potentials')
        is registered halfway. Returns ``(any_crossed, first_winner, final_winner, meta)``,
        the last delayed to line up."""
        n_out = self._layer.n_out
        width = max(1, ceil_log2(n_out))
        half = (width + 1) // 2
        halves = []
        for tree, valids in (("first", crossed), ("final", [Const(1, 1)] * n_out)):
            leaves = [(valid, potential, Const(j, width))
                      for j, (valid, potential) in enumerate(zip(valids, potentials, strict=True))]
            registered = []
            for index, node in enumerate(argmax_levels(m, leaves, tree, half)):
                copy = (Signal(name=f"{tree}_any_r{index}"),
                        Signal.like(node[1], name=f"{tree}_value_r{index}"),
                        Signal(width, name=f"{tree}_index_r{index}"))
                m.d.sync += [copy[0].eq(node[0]), copy[1].eq(node[1]), copy[2].eq(node[2])]
                registered.append(copy)
            (any_valid, _, index), = argmax_levels(m, registered, f"{tree}_late", width)
            halves.append((any_valid, index))
        (any_crossed, first_winner), (_, final_winner) = halves
        return any_crossed, first_winner, final_winner, delay_line(m, meta, 1, "e_meta")[-1]

    def _decide_pairwise(self, m, potentials, crossed, meta):
        """Three stages: every pair of potentials compared, and the crossings, into
        registers; the winners of the earliest crossing and of the final potentials, one-hot,
        into registers; their indices, on the way into the result. Returns as
        :meth:`_decide_by_trees`."""
        n_out = self._layer.n_out
        pairs = compare_all(m, potentials, "ge")
        ge = Signal(len(pairs), name="ge_r", reset_less=True)
        m.d.sync += ge.eq(Cat(*pairs.values()))
        ge_r = dict(zip(pairs, ge, strict=True))
        crossed_r = Signal(n_out, reset_less=True)
        m.d.sync += crossed_r.eq(Cat(*crossed))
        first_onehot = Signal(n_out, reset_less=True)
        final_onehot = Signal(n_out, reset_less=True)
        any_crossed = Signal(reset_less=True)
        m.d.sync += [
            first_onehot.eq(winner(m, ge_r, crossed_r, "first")),
            final_onehot.eq(winner(m, ge_r, [Const(1, 1)] * n_out, "final")),
            any_crossed.eq(crossed_r.any()),
        ]
        width = max(1, ceil_log2(n_out))
        return (any_crossed, encode(first_onehot, width), encode(final_onehot, width),
                delay_line(m, meta, 2, "e_meta")[-1])
