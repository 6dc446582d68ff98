# amaranth: UnusedElaboratable=no
"""EventLayer, VectorLayer and OutputLayer against small numpy models, token by token."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from bs4nn.gen.event_layer import EventLayer
from bs4nn.gen.output_layer import OutputLayer
from bs4nn.gen.vector_layer import VectorLayer
from bs4nn.model import packing
from bs4nn.model.network import MAX_STEP, NO_SPIKE, Layer


def random_layer(rng, n_in, n_out):
    return Layer(rng.choice([-1, 1], size=(n_out, n_in)),
                 rng.integers(0, max(1, n_in // 3), size=n_out))


def drive(dut, port_in, port_out, tokens, fields_out, idle=0.3, seed=0):
    """Send ``tokens`` (dicts) one per cycle with random idle cycles; collect output tokens."""
    rng = np.random.default_rng(seed)
    got = []

    async def bench(ctx):
        queue = list(tokens)
        for _ in range(len(tokens) * 3 + 40):
            send = bool(queue) and rng.random() > idle
            if send:
                for name, value in queue.pop(0).items():
                    ctx.set(getattr(port_in.payload, name), value)
            ctx.set(port_in.valid, send)
            await ctx.tick()
            if ctx.get(port_out.valid):
                got.append({name: int(ctx.get(getattr(port_out.payload, name)))
                            for name in fields_out})

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return got


def bits_of(vector):
    return sum(1 << int(i) for i in np.flatnonzero(vector))


def vector_of(bits, n):
    return np.array([(bits >> i) & 1 for i in range(n)], dtype=bool)


def layer_model(layer, steps_and_vectors):
    """Spike vectors out of a layer for input vectors per step: ``[(step + 1, spikes)]``."""
    potential = np.zeros(layer.n_out, dtype=np.int64)
    fired = np.zeros(layer.n_out, dtype=bool)
    out = []
    for step, vector in steps_and_vectors:
        potential += layer.signs.astype(np.int64) @ vector.astype(np.int64)
        crossed = potential > layer.thresholds
        spikes = crossed & ~fired if step < MAX_STEP else np.zeros(layer.n_out, dtype=bool)
        fired |= crossed
        out.append((min(step + 1, NO_SPIKE), spikes))
    return out


@pytest.mark.parametrize(("n_in", "n_out", "lanes"), [(12, 6, 6), (12, 7, 3), (20, 5, 1)])
def test_event_layer(n_in, n_out, lanes):
    seed = n_in * 100 + n_out * 10 + lanes
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, n_in, n_out)
    dut = EventLayer(layer, lanes)
    tokens, expected = [], []
    for _ in range(3):
        steps = rng.integers(0, 256, size=n_in)          # 255 = no event
        tokens.append({"start": 1, "end": 0, "step_end": 0, "pixel": 0, "group": 0, "step": 0,
                       "error": 0})
        order = sorted((int(steps[i]), i) for i in range(n_in) if steps[i] < MAX_STEP)
        per_step = []
        for index, (step, pixel) in enumerate(order):
            last_of_step = index == len(order) - 1 or order[index + 1][0] != step
            for group in range(dut.groups):
                tokens.append({"start": 0, "pixel": pixel, "group": group, "step": step,
                               "step_end": int(last_of_step and group == dut.groups - 1),
                               "end": int(index == len(order) - 1
                                          and group == dut.groups - 1), "error": 0})
            if last_of_step:
                per_step.append((step, vector_of(sum(1 << p for s, p in order if s == step),
                                                 n_in)))
        expected.append({"start": 1, "step": 1, "spikes": 0, "end": int(not order)})
        for index, (step, spikes) in enumerate(layer_model(layer, per_step)):
            expected.append({"start": 0, "step": step, "spikes": bits_of(spikes),
                             "end": int(index == len(per_step) - 1)})
    got = drive(dut, dut.i_events, dut.o_spikes, tokens, ("start", "step", "spikes", "end"),
                seed=seed)
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


@pytest.mark.parametrize(("n_in", "n_out"), [(9, 5), (30, 4)])
def test_vector_layer(n_in, n_out):
    seed = n_in + n_out
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, n_in, n_out)
    dut = VectorLayer(layer)
    tokens, expected = [], []
    for steps in ([3, 4, 9, 30, 200], [1, 254, 255, 256], [250, 255]):
        image_tokens, vectors = vector_tokens(rng, n_in, steps)
        tokens += image_tokens
        expected.append({"start": 1, "spikes": 0, "end": 0})
        for index, (step, spikes) in enumerate(layer_model(layer, vectors)):
            expected.append({"start": 0, "step": step, "spikes": bits_of(spikes),
                             "end": int(index == len(vectors) - 1)})
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


@pytest.mark.parametrize(("n_in", "n_out"), [(10, 3), (25, 7)])
def test_output_layer(n_in, n_out):
    seed = 3 * n_in + n_out
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, n_in, n_out)
    dut = OutputLayer(layer, credits=4)
    tokens, expected = [], []
    for _ in range(8):
        steps = sorted(set(int(s) for s in rng.integers(1, 257, size=rng.integers(1, 6))))
        image_tokens, vectors = vector_tokens(rng, n_in, steps)
        tokens += image_tokens
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
    got = drive(dut, dut.i_spikes, dut.o_kill, tokens, (), idle=0)
    assert len(got) == 6
    kills = []

    async def bench(ctx):
        queue = list(tokens)
        for _ in range(len(tokens) + 10):
            if queue:
                for name, value in queue.pop(0).items():
                    ctx.set(getattr(dut.i_spikes.payload, name), value)
                ctx.set(dut.i_spikes.valid, 1)
            else:
                ctx.set(dut.i_spikes.valid, 0)
            await ctx.tick()
            if ctx.get(dut.o_kill.valid):
                kills.append(ctx.get(dut.o_kill.payload))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert kills == [0, 1, 2, 3, 0, 1]


@pytest.mark.parametrize("cls", [VectorLayer, OutputLayer])
def test_latency_property(cls):
    layer = random_layer(np.random.default_rng(0), 600, 10)
    expected = 6 if cls is VectorLayer else 7
    assert cls(layer).latency == expected
    assert EventLayer.latency == 3


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
