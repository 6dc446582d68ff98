"""Cycle-exact amaranth.sim harness of the :class:`~.top.Accelerator`, shared by the tests.

The driver follows the contract of ``bs4nn.sim.cycle_model``: each beat is presented as soon
as the previous one is accepted (unless an idle pattern withholds ``valid``), and the cycle
of a transfer is counted from the cycle whose rising edge accepts the first beat (cycle 0).
"""

import itertools

import numpy as np
from amaranth.sim import Simulator

from ..model import packing
from ..model.inference import infer
from ..model.network import Layer, Network

__all__ = ["frames_of", "run_accelerator", "random_network", "random_images",
           "expected_results", "ERROR_RESULT"]

#: The result of a malformed frame.
ERROR_RESULT = {"predicted": 0, "decision_step": 0, "fired": 0, "error": 1}


def frames_of(images, pixels_per_beat):
    """Well-formed frames: one list of beat words per image (``packing.pixel_beats``)."""
    return [packing.pixel_beats(image, pixels_per_beat) for image in images]


def run_accelerator(accelerator, frames, *, valid_pattern=None, ready_pattern=None,
                    weight_frames=(), debug_ready_pattern=None, max_cycles=100_000, vcd=None,
                    trace=None):
    """Send ``frames`` (lists of beat words; ``last`` on each list's final beat) and collect
    ``len(frames)`` results.

    ``valid_pattern`` / ``ready_pattern`` are iterables of booleans, cycled, that gate the
    input ``valid`` and the output ``ready`` (default: always 1). ``weight_frames`` lists
    ``(frame_index, words)``: that weight frame is offered on ``i_weights`` from the cycle
    pixel frame ``frame_index`` is first offered, concurrently with the pixel stream.

    Returns ``(results, cycles)``: the result fields (dicts) and the transfer cycle of each.
    With ``debug_events``, the debug stream is taken under ``debug_ready_pattern`` and its
    events (dicts of ``packing.debug_event_fields``) go to ``trace["debug"]``.
    With ``trace`` (a dict), also records ``trace["frame_start"]`` (the cycle each frame's
    first beat was accepted) and ``trace["weights"]`` (per weight frame, the cycles of its first
    and last word).
    """
    n_classes = accelerator.network.n_classes
    data_width = 8 * accelerator.pixels_per_beat
    beats = [(int(word), index == len(frame) - 1) for frame in frames
             for index, word in enumerate(frame)]
    valid_pattern = itertools.cycle(valid_pattern or [True])
    ready_pattern = itertools.cycle(ready_pattern or [True])
    results, cycles = [], []
    i_pixels, o_results = accelerator.i_pixels, accelerator.o_results

    frame_of_beat = [k for k, frame in enumerate(frames) for _ in frame]
    weight_queue = list(weight_frames)
    weight_width = (sum(width for _, width in accelerator.weight_fields)
                    if weight_queue else 0)
    trace = {} if trace is None else trace
    trace["frame_start"] = [None] * len(frames)
    trace["weights"] = []
    trace["debug"] = []
    debug = accelerator.debug_events
    debug_fields = packing.debug_event_fields(accelerator.hidden_sizes)
    debug_ready_pattern = itertools.cycle(debug_ready_pattern or [True])

    async def bench(ctx):
        position, cycle, first_accept = 0, 0, None
        weight_words, weight_position, weight_cycles = None, 0, []
        while len(results) < len(frames):
            if cycle > max_cycles:
                raise TimeoutError(f"{len(results)} of {len(frames)} results after "
                                   f"{max_cycles} cycles")
            offer = position < len(beats) and next(valid_pattern)
            if offer:
                word, last = beats[position]
                ctx.set(i_pixels.payload.as_value(), word | (int(last) << data_width))
            ctx.set(i_pixels.valid, offer)
            ctx.set(o_results.ready, next(ready_pattern))
            if weight_words is None and weight_queue and position < len(beats) \
                    and frame_of_beat[position] >= weight_queue[0][0]:
                weight_words, weight_position = list(weight_queue.pop(0)[1]), 0
            if weight_words is not None:
                last = weight_position == len(weight_words) - 1
                ctx.set(accelerator.i_weights.payload.as_value(),
                        int(weight_words[weight_position]) | (int(last) << weight_width))
                ctx.set(accelerator.i_weights.valid, 1)
            elif weight_width:
                ctx.set(accelerator.i_weights.valid, 0)
            weight_ready = accelerator.i_weights.ready if weight_width else i_pixels.ready
            if debug:
                ctx.set(accelerator.o_debug.ready, next(debug_ready_pattern))
                debug_signals = (accelerator.o_debug.valid, accelerator.o_debug.ready,
                                 accelerator.o_debug.payload.as_value())
            else:
                debug_signals = (i_pixels.valid, i_pixels.valid, i_pixels.valid)
            (_, _, in_ready, out_valid, out_ready, out_word, w_ready, d_valid, d_ready,
             d_word) = await ctx.tick().sample(
                i_pixels.ready, o_results.valid, o_results.ready, o_results.payload.as_value(),
                weight_ready, *debug_signals)
            if debug and d_valid and d_ready:
                trace["debug"].append(packing.unpack_fields(debug_fields, d_word))
            if weight_words is not None and w_ready:
                weight_cycles.append(cycle)
                weight_position += 1
                if weight_position == len(weight_words):
                    trace["weights"].append((weight_cycles[0], weight_cycles[-1]))
                    weight_words, weight_cycles = None, []
            if offer and in_ready:
                if first_accept is None:
                    first_accept = cycle
                if position == 0 or frame_of_beat[position - 1] != frame_of_beat[position]:
                    trace["frame_start"][frame_of_beat[position]] = cycle
                position += 1
            if out_valid and out_ready:
                results.append(packing.unpack_result(n_classes, out_word))
                cycles.append(cycle - first_accept)
            cycle += 1

    simulator = Simulator(accelerator)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    if vcd:
        with simulator.write_vcd(vcd):
            simulator.run()
    else:
        simulator.run()
    return results, cycles


def random_network(rng, sizes, plus=0.55):
    """A random network of ``sizes`` (``[n_in, n_hidden..., n_out]``) for tests."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False):
        signs = rng.choice([-1, 1], size=(n_out, n_in), p=[1 - plus, plus])
        thresholds = rng.integers(0, max(1, n_in // 3), size=n_out)
        layers.append(Layer(signs, thresholds))
    return Network(tuple(layers))


def random_images(rng, n, n_inputs, density=0.5):
    """uint8 ``(n, n_inputs)`` images, the first three blank, all 255 and all 1."""
    images = rng.integers(0, 256, size=(n, n_inputs)).astype(np.uint8)
    images[rng.random(images.shape) > density] = 0
    if n >= 3:
        images[0] = 0       # no event at all: the fallback decision
        images[1] = 255     # everything at step 0
        images[2] = 1       # everything at step 254
    return images


def expected_results(network, images):
    """The result fields ``infer`` gives for each image (dicts, as :func:`run_accelerator`)."""
    inference = infer(network, images)
    return [{"predicted": int(inference.predicted[k]),
             "decision_step": int(inference.decision_step[k]),
             "fired": int(inference.fired[k]), "error": 0} for k in range(len(images))]
