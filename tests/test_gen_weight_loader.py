# amaranth: UnusedElaboratable=no
"""Run-time weights: the weight-load stream rewrites every weight and threshold between images."""

import numpy as np
import pytest

from bs4nn.gen.top import Accelerator
from bs4nn.gen.weight_loader import WeightLoader
from bs4nn.model import packing
from bs4nn.model.inference import infer
from bs4nn.sim.amaranth_harness import frames_of, run_accelerator, simulate, stream_get, stream_put
from bs4nn.sim.stimulus import expected_results, random_images, random_network


def test_weight_stream_fields():
    assert packing.weight_stream_fields([784, 600, 10], 0) == [
        ("data", 600), ("address", 10), ("layer", 1), ("kind", 1)]
    # 16 inputs, 8 hidden folded in 3 groups of 3 lanes: 48 column words; the next layer's
    # chunk words hold 3 inputs of each of its 5 neurons.
    assert packing.weight_stream_fields([16, 8, 5, 3], 3) == [
        ("data", 15), ("address", 6), ("layer", 2), ("kind", 1)]


def test_threshold_address_of_a_folded_layer():
    # Lane group above the lane (2 bits for 3 lanes); other layers use the neuron index.
    assert [packing.threshold_address(0, j, 8, 3) for j in range(8)] == [0, 1, 2, 4, 5, 6, 8, 9]
    assert packing.threshold_address(0, 7, 8, 8) == 7
    assert packing.threshold_address(1, 7, 8, 3) == 7


def test_loader_decodes_words():
    sizes = [6, 4, 3, 2]
    loader = WeightLoader(sizes, lanes=2)
    fields = loader.fields
    words = [packing.pack_fields(fields, data=5, address=3, layer=1, kind=0),
             packing.pack_fields(fields, data=2, address=1, layer=2, kind=1)]
    seen = []

    async def source(ctx):
        for word in words:
            await stream_put(ctx, loader.i_words, word)
        for _ in range(2):
            await ctx.tick()

    def writes(k):
        async def sink(ctx):
            while True:
                payload = await stream_get(ctx, getattr(loader, f"o_writes{k}"))
                seen.append((k, payload.data, payload.address, payload.kind))
        return sink

    simulate(loader, source, background=[writes(k) for k in range(3)])
    assert seen == [(1, 5, 3, 0), (2, 2, 1, 1)]


@pytest.mark.parametrize(("sizes", "lanes", "pixels_per_beat"), [
    ((14, 7, 5, 3), 3, 4),
    ((12, 6, 4), 0, 8),
])
def test_reload_between_images(sizes, lanes, pixels_per_beat):
    seed = sum(sizes) + lanes
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    first, second = random_network(rng, sizes), random_network(rng, sizes)
    images = random_images(rng, 10, sizes[0])
    accelerator = Accelerator(first, lanes=lanes, pixels_per_beat=pixels_per_beat,
                              weight_storage="ram")
    trace = {}
    results, _ = run_accelerator(
        accelerator, frames_of(images, pixels_per_beat), trace=trace,
        weight_frames=[(3, packing.weight_stream_beats(second, lanes)),
                       (7, packing.weight_stream_beats(first, lanes))])
    (second_from, second_to), (first_from, first_to) = trace["weights"]
    with_first, with_second = expected_results(first, images), expected_results(second, images)
    for k, start in enumerate(trace["frame_start"]):
        # A weight frame is taken only between images: no frame overlaps one.
        assert not second_from <= start <= second_to and not first_from <= start <= first_to
        uses_second = second_to < start < first_from
        assert results[k] == (with_second if uses_second else with_first)[k], k
    assert [k for k, start in enumerate(trace["frame_start"]) if second_to < start < first_from]


def test_rom_results_unchanged_by_ram_option():
    rng = np.random.default_rng(2)
    network = random_network(rng, (10, 6, 3))
    images = random_images(rng, 6, 10)
    accelerator = Accelerator(network, pixels_per_beat=2, weight_storage="ram")
    results, _ = run_accelerator(accelerator, frames_of(images, 2))
    assert results == expected_results(network, images)
    assert infer(network, images).predicted.shape == (6,)
