# amaranth: UnusedElaboratable=no
"""The debug stream: every hidden spike before the decision, image by image, exact results."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from bs4nn.gen.debug_events import DebugEvents
from bs4nn.gen.simulation import (
    expected_results,
    frames_of,
    random_images,
    random_network,
    run_accelerator,
)
from bs4nn.gen.top import Accelerator
from bs4nn.model.inference import infer
from bs4nn.model.network import NO_SPIKE


def split_by_image(network, images, events):
    """Greedy split of the event list by content (events carry no image number)."""
    inference = infer(network, images)
    n_hidden = len(network.layers) - 1
    remaining = list(events)
    per_image = []
    for k in range(len(images)):
        golden = set()
        for layer in range(n_hidden):
            times = inference.spike_times[layer][k]
            golden.update((layer, int(j), int(times[j])) for j in np.flatnonzero(times < NO_SPIKE))
        seen = []
        while remaining:
            key = (remaining[0]["layer"], remaining[0]["neuron"], remaining[0]["step"])
            if key not in golden or key in seen:
                break
            seen.append(key)
            remaining.pop(0)
        per_image.append((golden, seen, int(inference.decision_step[k])))
    return per_image, remaining


@pytest.mark.parametrize(("sizes", "lanes", "debug_ready"), [
    ((14, 9, 3), 0, [1]),
    ((16, 8, 6, 3), 3, [1, 0, 0]),
])
def test_hidden_spike_events(sizes, lanes, debug_ready):
    seed = sum(sizes) * 7 + lanes
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    network = random_network(rng, sizes)
    images = random_images(rng, 10, sizes[0])
    accelerator = Accelerator(network, lanes=lanes, pixels_per_beat=4, debug_events=True)
    trace = {}
    results, _ = run_accelerator(accelerator, frames_of(images, 4), trace=trace,
                                 debug_ready_pattern=[bool(r) for r in debug_ready],
                                 max_cycles=20_000)
    assert results == expected_results(network, images)
    per_image, left = split_by_image(network, images, trace["debug"])
    assert not left
    for golden, seen, decision in per_image:
        assert {key for key in golden if key[2] < decision} <= set(seen)
        for layer in range(len(sizes) - 2):
            steps = [step for event_layer, _, step in seen if event_layer == layer]
            assert steps == sorted(steps)


def test_serializer_order_and_backpressure():
    debug = DebugEvents([5, 3], reserve=2)
    vectors = [(0, 0b10110, 7), (1, 0b101, 8), (0, 0b00001, 9)]
    got = []

    async def source(ctx):
        for layer, spikes, step in vectors:
            port = getattr(debug, f"i_spikes{layer}")
            ctx.set(port.payload.spikes, spikes)
            ctx.set(port.payload.step, step)
            ctx.set(port.valid, 1)
            await ctx.tick()
            ctx.set(port.valid, 0)

    async def sink(ctx):
        for cycle in range(40):
            ctx.set(debug.o_events.ready, cycle % 3 == 0)
            _, _, valid, ready, layer, neuron, step = await ctx.tick().sample(
                debug.o_events.valid, debug.o_events.ready, debug.o_events.payload.layer,
                debug.o_events.payload.neuron, debug.o_events.payload.step)
            if valid and ready:
                got.append((layer, neuron, step))

    simulator = Simulator(debug)
    simulator.add_clock(1e-8)
    simulator.add_testbench(source)
    simulator.add_testbench(sink)
    simulator.run()
    by_layer = {layer: [(n, s) for l_, n, s in got if l_ == layer] for layer in (0, 1)}
    assert by_layer[0] == [(1, 7), (2, 7), (4, 7), (0, 9)]
    assert by_layer[1] == [(0, 8), (2, 8)]



