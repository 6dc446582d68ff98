# amaranth: UnusedElaboratable=no
"""The debug stream: every hidden spike before the decision, image by image, exact results."""

import numpy as np
import pytest

from bs4nn.gen.debug_events import DebugEvents
from bs4nn.gen.top import Accelerator
from bs4nn.model.inference import infer
from bs4nn.model.network import NO_SPIKE
from bs4nn.sim.amaranth_harness import (
    frames_of,
    pauses,
    run_accelerator,
    simulate,
    stream_assert_idle,
    stream_get,
    stream_put,
)
from bs4nn.sim.stimulus import expected_results, random_images, random_network


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
            await stream_put(ctx, getattr(debug, f"i_spikes{layer}"),
                             {"spikes": spikes, "step": step})

    async def sink(ctx):
        stall = pauses([False, True, True])
        for _ in range(6):
            payload = await stream_get(ctx, debug.o_events, stall=stall)
            got.append((payload.layer, payload.neuron, payload.step))
        await stream_assert_idle(ctx, debug.o_events, 20)

    simulate(debug, source, sink)
    by_layer = {layer: [(n, s) for l_, n, s in got if l_ == layer] for layer in (0, 1)}
    assert by_layer[0] == [(1, 7), (2, 7), (4, 7), (0, 9)]
    assert by_layer[1] == [(0, 8), (2, 8)]
