# amaranth: UnusedElaboratable=no
"""EventLayer, VectorLayer and OutputLayer against small numpy models, token by token."""

import itertools

import numpy as np
import pytest

from bs4nn.gen.event_layer import EventLayer
from bs4nn.gen.output_layer import OutputLayer
from bs4nn.gen.vector_layer import VectorLayer
from bs4nn.model import packing
from bs4nn.model.network import MAX_STEP, NO_SPIKE, Layer
from bs4nn.sim import stimulus
from bs4nn.sim.amaranth_harness import simulate, stream_get, stream_put


def random_layer(rng, n_in, n_out):
    # Balanced signs: potentials go down as often as up.
    return stimulus.random_layer(rng, n_in, n_out, positive=0.5)


def drive(dut, port_in, port_out, tokens, fields_out=None, idle=0.3, seed=0, drain=40):
    """Send ``tokens`` (payload dicts) with random idle cycles between them; return what
    ``port_out`` gives meanwhile and in the ``drain`` cycles after: its payloads, as dicts of
    ``fields_out`` when given."""
    rng = np.random.default_rng(seed)
    got = []

    async def source(ctx):
        pause = (rng.random() < idle for _ in itertools.count())
        for token in tokens:
            await stream_put(ctx, port_in, token, idle=pause)
        for _ in range(drain):
            await ctx.tick()

    async def sink(ctx):
        while True:
            payload = await stream_get(ctx, port_out)
            got.append(payload if fields_out is None else
                       {name: int(getattr(payload, name)) for name in fields_out})

    simulate(dut, source, background=[sink])
    return got


def bits_of(vector):
    return sum(1 << int(i) for i in np.flatnonzero(vector))


def vector_of(bits, n):
    return np.array([(bits >> i) & 1 for i in range(n)], dtype=bool)


def layer_model(layer, steps_and_vectors):
    """The spike tokens out of a layer for input vectors per step: one per input vector, of
    step ``step + 1`` (the one-step delay), ``end`` on the last."""
    potential = np.zeros(layer.n_out, dtype=np.int64)
    fired = np.zeros(layer.n_out, dtype=bool)
    out = []
    for index, (step, vector) in enumerate(steps_and_vectors):
        potential += layer.signs.astype(np.int64) @ vector.astype(np.int64)
        crossed = potential > layer.thresholds
        spikes = crossed & ~fired if step < MAX_STEP else np.zeros(layer.n_out, dtype=bool)
        fired |= crossed
        out.append({"start": 0, "step": min(step + 1, NO_SPIKE), "spikes": bits_of(spikes),
                    "end": int(index == len(steps_and_vectors) - 1)})
    return out


def join_chunks(tokens, lanes, groups):
    """Whole spike vectors from a folded layer's tokens: a start token, or one token of each
    group in order, of one step, ``end`` only on the last."""
    joined, pending = [], []
    for token in tokens:
        group = token.pop("group")
        if token["start"]:
            assert group == 0 and not pending
            joined.append(token)
            continue
        assert group == len(pending)
        pending.append(token)
        if group == groups - 1:
            assert len({chunk["step"] for chunk in pending}) == 1
            assert not any(chunk["end"] for chunk in pending[:-1])
            joined.append({**pending[-1], "spikes": sum(chunk["spikes"] << g * lanes
                                                        for g, chunk in enumerate(pending))})
            pending = []
    assert not pending
    return joined


@pytest.mark.parametrize("registered", [False, True])
@pytest.mark.parametrize(("n_in", "n_out", "lanes", "walkers"), [
    (12, 6, 6, 1), (12, 7, 3, 1), (20, 5, 1, 1), (12, 6, 6, 4), (13, 7, 3, 2), (21, 5, 2, 8),
    (12, 6, 3, 1)])
def test_event_layer(n_in, n_out, lanes, walkers, registered):
    seed = n_in * 1000 + n_out * 100 + lanes * 10 + walkers
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, n_in, n_out)
    dut = EventLayer(layer, lanes, events_per_cycle=walkers, registered_reads=registered)
    empty = {"slots": 0, "pixels": [0] * walkers}
    tokens, expected = [], []
    for _ in range(3):
        steps = rng.integers(0, 256, size=n_in)          # 255 = no event
        steps[rng.random(n_in) < 0.3] = 7                # some crowded steps
        tokens.append({"start": 1, "end": 0, "step_end": 0, **empty, "group": 0, "step": 0,
                       "error": 0})
        active = sorted({int(s) for s in steps if s < MAX_STEP})
        per_step = []
        for index, step in enumerate(active):
            # Round r holds the r-th input of each walker at this step (walker: input % E).
            held = [[i for i in range(n_in) if steps[i] == step and i % walkers == w]
                    for w in range(walkers)]
            rounds = max(len(inputs) for inputs in held)
            for r in range(rounds):
                slots = [w for w in range(walkers) if r < len(held[w])]
                pixels = [held[w][r] if r < len(held[w]) else 0 for w in range(walkers)]
                last = r == rounds - 1
                for group in range(dut.groups):
                    final = last and group == dut.groups - 1
                    tokens.append({"start": 0, "slots": sum(1 << w for w in slots),
                                   "pixels": pixels, "group": group, "step": step,
                                   "step_end": int(last),
                                   "end": int(final and index == len(active) - 1), "error": 0})
            per_step.append((step, vector_of(sum(1 << i for i in range(n_in) if steps[i] == step),
                                             n_in)))
        expected.append({"start": 1, "step": 1, "spikes": 0, "end": int(not active)})
        expected += layer_model(layer, per_step)
    got = join_chunks(drive(dut, dut.i_events, dut.o_spikes, tokens,
                            ("start", "step", "spikes", "end", "group"), seed=seed),
                      lanes, dut.groups)
    for token in expected:
        if token["start"]:
            token["step"] = None
    for token in got:
        if token["start"]:
            token["step"] = None
    assert got == expected


def vector_tokens(rng, n_in, steps):
    tokens = [{"start": 1, "end": 0, "step": 0, "spikes": 0, "error": 0}]
    vectors = []
    for index, step in enumerate(steps):
        vector = rng.random(n_in) < 0.3 if step <= MAX_STEP else np.zeros(n_in, dtype=bool)
        vectors.append((step, vector))
        tokens.append({"start": 0, "end": int(index == len(steps) - 1), "step": step,
                       "spikes": bits_of(vector), "error": 0})
    return tokens, vectors


def chunked(tokens, n_in, input_lanes):
    """Whole-vector tokens as a folded layer sends them: each step in chunks of
    ``input_lanes`` inputs, group by group (unchanged with ``input_lanes`` None)."""
    if input_lanes is None:
        return tokens
    groups = -(-n_in // input_lanes)
    out = []
    for token in tokens:
        if token["start"]:
            out.append({**token, "group": 0})
            continue
        for g in range(groups):
            out.append({**token, "group": g, "end": token["end"] and g == groups - 1,
                        "spikes": token["spikes"] >> (g * input_lanes)
                        & ((1 << input_lanes) - 1)})
    return out


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize(("n_in", "n_out", "input_lanes"), [(9, 5, None), (30, 4, None),
                                                            (9, 5, 2), (30, 4, 8)])
def test_vector_layer(n_in, n_out, input_lanes, pipelined):
    seed = n_in + n_out
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, n_in, n_out)
    dut = VectorLayer(layer, input_lanes=input_lanes, pipelined=pipelined)
    tokens, expected = [], []
    for steps in ([3, 4, 9, 30, 200], [1, 254, 255, 256], [250, 255]):
        image_tokens, vectors = vector_tokens(rng, n_in, steps)
        tokens += chunked(image_tokens, n_in, input_lanes)
        expected.append({"start": 1, "spikes": 0, "end": 0})
        expected += layer_model(layer, vectors)
    got = drive(dut, dut.i_spikes, dut.o_spikes, tokens, ("start", "step", "spikes", "end"),
                seed=seed)
    for token in got:
        if token["start"]:
            del token["step"]
    assert got == expected


def decision_model(layer, vectors):
    potential = np.zeros(layer.n_out, dtype=np.int64)
    for step, vector in vectors:
        potential += layer.signs.astype(np.int64) @ vector.astype(np.int64)
        crossed = potential > layer.thresholds
        if crossed.any() and step < MAX_STEP:
            winner = int(np.argmax(np.where(crossed, potential, -10**6)))
            return {"predicted": winner, "decision_step": step + 1, "fired": 1, "error": 0}
    return {"predicted": int(np.argmax(potential)), "decision_step": NO_SPIKE, "fired": 0,
            "error": 0}


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize(("n_in", "n_out", "input_lanes"), [(10, 3, None), (25, 7, None),
                                                            (10, 3, 4), (25, 7, 5), (12, 1, None)])
def test_output_layer(n_in, n_out, input_lanes, pipelined):
    seed = 3 * n_in + n_out
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, n_in, n_out)
    dut = OutputLayer(layer, credits=4, input_lanes=input_lanes, pipelined=pipelined)
    tokens, expected = [], []
    for _ in range(8):
        steps = sorted(set(int(s) for s in rng.integers(1, 257, size=rng.integers(1, 6))))
        image_tokens, vectors = vector_tokens(rng, n_in, steps)
        tokens += chunked(image_tokens, n_in, input_lanes)
        expected.append(decision_model(layer, vectors))
    tokens += [{"start": 1, "end": 1, "step": 0, "spikes": 0, "error": 1}]
    expected.append({"predicted": 0, "decision_step": 0, "fired": 0, "error": 1})
    got = drive(dut, dut.i_spikes, dut.o_results, tokens,
                ("predicted", "decision_step", "fired", "error"), seed=seed)
    assert got == expected


def test_output_layer_kills_with_the_image_tag():
    layer = Layer(np.ones((2, 4), dtype=np.int8), np.zeros(2, dtype=np.int32))
    dut = OutputLayer(layer, credits=4)
    tokens = []
    for _ in range(6):
        tokens += [{"start": 1, "end": 0, "step": 0, "spikes": 0, "error": 0},
                   {"start": 0, "end": 0, "step": 5, "spikes": 0b11, "error": 0},
                   {"start": 0, "end": 1, "step": 6, "spikes": 0b11, "error": 0}]
    # Back to back, the kill of each image goes out with its image tag.
    assert drive(dut, dut.i_spikes, dut.o_kill, tokens, idle=0) == [0, 1, 2, 3, 0, 1]


@pytest.mark.parametrize("cls", [VectorLayer, OutputLayer])
def test_latency_property(cls):
    layer = random_layer(np.random.default_rng(0), 600, 10)
    expected = 6 if cls is VectorLayer else 7
    assert cls(layer).latency == expected
    assert OutputLayer(layer, pipelined=True).latency == 9   # 5 popcount stages, not 4
    assert EventLayer(layer, 10).latency == 3
    assert EventLayer(layer, 10, registered_reads=True).latency == 4


LAYER_COMPONENTS = [lambda layer, **kw: EventLayer(layer, 2, **kw), VectorLayer, OutputLayer]


@pytest.mark.parametrize("make", LAYER_COMPONENTS)
def test_layer_components_take_a_layer_and_an_optional_weight_port(make):
    layer = random_layer(np.random.default_rng(0), 6, 4)
    with pytest.raises(TypeError, match="layer must be a Layer"):
        make(layer.bits)
    constant = make(layer)
    assert constant.layer is layer
    assert not constant.writable and constant.weight_port is None
    assert "w_weights" not in constant.signature.members
    fields = packing.weight_stream_fields([6, 4, 3], 2)
    writable = make(layer, weight_fields=fields)
    assert writable.writable and writable.weight_port is writable.w_weights
