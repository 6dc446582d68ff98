# amaranth: UnusedElaboratable=no
"""The whole accelerator in amaranth.sim: results against ``infer``, cycles against the model."""

import numpy as np
import pytest

from bs4nn.gen.top import Accelerator
from bs4nn.model import packing
from bs4nn.model.errors import UserError
from bs4nn.sim.amaranth_harness import frames_of, run_accelerator
from bs4nn.sim.cycle_model import predict
from bs4nn.sim.stimulus import ERROR_RESULT, expected_results, random_images, random_network

CONFIGS = [
    # sizes, lanes, pixels_per_beat
    ((16, 8, 3), 0, 4),
    ((16, 8, 3), 3, 1),
    ((20, 10, 6, 4), 0, 8),
    ((33, 12, 5), 5, 16),
    ((10, 7, 2), 7, 2),
    ((24, 9, 7, 5, 3), 4, 8),
]


@pytest.mark.parametrize(("sizes", "lanes", "pixels_per_beat"), CONFIGS)
def test_results_and_cycles(sizes, lanes, pixels_per_beat):
    seed = hash((sizes, lanes, pixels_per_beat)) % 10_000
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    network = random_network(rng, sizes)
    images = random_images(rng, 24, sizes[0])
    accelerator = Accelerator(network, lanes=lanes, pixels_per_beat=pixels_per_beat)
    results, cycles = run_accelerator(accelerator, frames_of(images, pixels_per_beat))
    assert results == expected_results(network, images)
    assert cycles == list(predict(network, images, lanes=lanes, pixels_per_beat=pixels_per_beat))


@pytest.mark.parametrize(("valid", "ready"), [
    ([1, 1, 0], [1, 0, 0, 1]),
    ([0, 1], [0, 0, 0, 1, 1]),
    ([1], [0] * 30 + [1]),
])
def test_flow_control(valid, ready):
    rng = np.random.default_rng(7)
    network = random_network(rng, (12, 6, 4))
    images = random_images(rng, 16, 12)
    accelerator = Accelerator(network, lanes=2, pixels_per_beat=4)
    results, _ = run_accelerator(accelerator, frames_of(images, 4),
                                 valid_pattern=[bool(v) for v in valid],
                                 ready_pattern=[bool(r) for r in ready])
    assert results == expected_results(network, images)


@pytest.mark.parametrize("pixels_per_beat", [1, 4, 8])
def test_malformed_frames(pixels_per_beat):
    seed = 11 + pixels_per_beat
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    network = random_network(rng, (12, 6, 3))
    images = random_images(rng, 8, 12)
    frames = frames_of(images, pixels_per_beat)
    expected = expected_results(network, images)
    n_beats = len(frames[0])
    malformed = [
        frames[0][:max(1, n_beats - 1)] if n_beats > 1 else [],   # early last (or empty)
        frames[1] + [0xFF] * 3,                                       # late last
        [rng.integers(0, 256)],                                      # a single beat
        frames[2] * 2,                                               # two images, one last
    ]
    stream, want = [], []
    for k in range(len(images)):
        stream.append(frames[k])
        want.append(expected[k])
        if k < len(malformed) and malformed[k]:
            stream.append(malformed[k])
            want.append(ERROR_RESULT if len(malformed[k]) != n_beats else "skip")
    accelerator = Accelerator(network, lanes=0, pixels_per_beat=pixels_per_beat)
    results, _ = run_accelerator(accelerator, stream)
    for got, exp in zip(results, want, strict=True):
        if exp != "skip":
            assert got == exp


def test_result_word_layout():
    rng = np.random.default_rng(3)
    network = random_network(rng, (8, 4, 3))
    accelerator = Accelerator(network, pixels_per_beat=8)
    layout = accelerator.o_results.payload.shape()
    assert layout.size == sum(width for _, width in packing.result_fields(3))
    offset = 0
    for name, width in packing.result_fields(3):
        assert layout[name].offset == offset and layout[name].width == width
        offset += width


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lanes": 9}, "lanes must be between 1 and 8 (or 0 for all 8), got 9"),
    ({"lanes": -2}, "lanes must be between 1 and 8 (or 0 for all 8), got -2"),
    ({"lanes": True}, "lanes must be between 1 and 8 (or 0 for all 8), got True"),
    ({"pixels_per_beat": 3}, "pixels_per_beat must be one of 1, 2, 4, 8, 16, got 3"),
    ({"weight_storage": "flash"}, "weight_storage must be one of rom, ram, spram, got 'flash'"),
    ({"pixels_per_beat": 4, "events_per_cycle": 8},
     "events_per_cycle must be one of 1, 2, 4, 8, 16 and at most pixels_per_beat (4), got 8"),
    ({"events_per_cycle": 3},
     "events_per_cycle must be one of 1, 2, 4, 8, 16 and at most pixels_per_beat (8), got 3"),
    ({"debug_events": 1}, "debug_events must be True or False, got 1"),
    ({"weight_storage": "spram", "events_per_cycle": 2},
     "weight_storage='spram' takes one event per cycle, got events_per_cycle=2"),
])
def test_parameter_errors(kwargs, message):
    """The one parameter check, behind the Accelerator, ``generate`` and the cycle model."""
    network = random_network(np.random.default_rng(0), (8, 8, 2))
    with pytest.raises(UserError) as info:
        Accelerator(network, **kwargs)
    assert str(info.value) == message


def test_needs_a_network_with_a_hidden_layer():
    with pytest.raises(TypeError, match="network must be a Network, got str"):
        Accelerator("net.npz")
    network = random_network(np.random.default_rng(0), (8, 2))
    with pytest.raises(UserError, match="has no hidden layer"):
        Accelerator(network)


def test_schedule_is_derived_from_the_blocks():
    network = random_network(np.random.default_rng(5), (20, 9, 7, 4))
    accelerator = Accelerator(network, lanes=4, pixels_per_beat=8, events_per_cycle=4)
    schedule = accelerator.schedule
    assert schedule.beats_per_image == 3 and schedule.lane_groups == 3
    assert schedule.events_per_cycle == 4
    assert schedule.hidden_layers == 2
    layers = [accelerator._event_layer, *accelerator._vector_layers, accelerator._output_layer]
    assert accelerator.pipelined and accelerator.spike_hop_latency == 1
    assert schedule.event_to_result == sum(layer.latency for layer in layers) + 1
    from bs4nn.gen.scheduler import BankLoader, StepFinder

    assert schedule.load_to_start == BankLoader.load_to_full + StepFinder.full_to_ready
    assert schedule.finish_to_start == StepFinder.finish_to_ready


def test_spram_blocks_bound_the_lanes():
    """The first layer's columns must fit the UP5K's four SB_SPRAM256KA blocks."""
    network = random_network(np.random.default_rng(0), (784, 600, 10))
    Accelerator(network, lanes=64, pixels_per_beat=1, weight_storage="spram")
    with pytest.raises(UserError) as info:
        Accelerator(network, lanes=128, pixels_per_beat=1, weight_storage="spram")
    assert str(info.value) == (
        "weight_storage='spram': the first layer's 3,920 words of 128 bits (lanes=128) need 8 "
        "SB_SPRAM256KA blocks; the iCE40UP5K has 4")
