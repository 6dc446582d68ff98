"""cocotb system tests of the generated ``bs4nn`` top level, and their pytest wrappers.

The cocotb tests (run by ``bs4nn sim TEST`` or the wrappers at the bottom) compare every result
field with the golden model (``bs4nn.model.inference.infer``) with ``==``, and with no stalls
each result's transfer cycle with the cycle model (``bs4nn.sim.cycle_model.predict``). Every
test ends by asserting that nothing is left over.
"""

import itertools
import os
import time

import cocotb
import numpy as np
import pytest
from bs4nn_tb import (
    TB,
    check_hidden_spikes,
    check_timing,
    load_environment,
    pause_generator,
    record_summary,
)
from cocotb.triggers import ClockCycles, RisingEdge

from bs4nn.model import packing
from bs4nn.model.evaluation import write_predictions
from bs4nn.model.inference import infer
from bs4nn.sim import stimulus

#: (idle, backpressure) pairs: steady flow, regular and random stalls, long bursts.
STALLS = [("none", "none"), ("quarter", "quarter"), ("random", "random"),
          ("bursts", "none"), ("none", "bursts"), ("random", "bursts")]


def _timing_text(timing):
    mismatches, _, _ = timing
    return "cycles == cycle model" if mismatches == 0 else f"{mismatches} cycle mismatches"


@cocotb.test()
async def mnist_inference(dut):
    """N test images back to back (MNIST, or the dataset the weights file was trained on);
    accuracy, cycles per image, simulation speed."""
    from bs4nn.model import data

    env = load_environment()
    n = env.n or 200
    dataset = env.network.metadata.get("dataset", "mnist")
    images, labels = data.load(dataset, "test")
    if n > images.shape[0]:
        raise ValueError(f"the {dataset} test set has {images.shape[0]} images, asked for {n}")
    images, labels = images[:n], labels[:n].astype(np.int64)
    tb = TB(dut, env)
    await tb.reset()
    started = time.perf_counter()
    tb.send_images(images)
    await tb.wait_results(n)
    wall = time.perf_counter() - started
    timing = check_timing(tb, list(range(n)), images)
    rtl = [tb.scoreboard.results[k][1] for k in range(n)]
    rtl_predicted = np.array([r["predicted"] for r in rtl])
    cycles = tb.result_cycles(range(n))
    per_image = np.diff(np.concatenate([[-1], cycles]))
    record_summary(env, (
        f"mnist_inference: {tb.scoreboard.matched}/{n} RTL == model, {dataset} accuracy "
        f"{np.mean(rtl_predicted == labels):.4f}, cycles/image mean {per_image.mean():.0f} "
        f"p50 {np.percentile(per_image, 50):.0f} p99 {np.percentile(per_image, 99):.0f}, "
        f"{n / wall:.3g} images/s simulated, {_timing_text(timing)}"))
    if env.predictions is not None:
        write_predictions(env.predictions, labels[:n], rtl_predicted,
                          [r["decision_step"] for r in rtl], [r["fired"] for r in rtl])
    tb.assert_nothing_left()
    assert timing[0] == 0, f"{timing[0]} results off the cycle model"


@cocotb.test()
@cocotb.parametrize((("idle", "backpressure"), STALLS))
async def random_images(dut, idle, backpressure):
    """Random images under valid/ready stalls: no result lost, duplicated or reordered."""
    env = load_environment()
    n = env.n or 16
    rng = np.random.default_rng(env.seed)
    images = stimulus.random_images(rng, n, env.network.n_inputs)
    tb = TB(dut, env)
    tb.set_idle(idle)
    tb.set_backpressure(backpressure)
    await tb.reset()
    tb.send_images(images)
    await tb.wait_results(n)
    timing = None
    if idle == "none" and backpressure == "none":
        timing = check_timing(tb, list(range(n)), images)
    record_summary(env, (
        f"random_images/idle={idle}/backpressure={backpressure}: {tb.scoreboard.matched}/{n} "
        f"RTL == model ({env.network.describe()}, seed {env.seed})"
        + (f", {_timing_text(timing)}" if idle == backpressure == "none" else "")))
    tb.assert_nothing_left()
    assert timing is None or timing[0] == 0, f"{timing[0]} results off the cycle model"


@cocotb.test()
@cocotb.parametrize(stalls=["none", "random"])
async def malformed_frames(dut, stalls):
    """Frames whose last comes early or late give one result each, error=1 and all other
    fields 0; the frames after them are right."""
    env = load_environment()
    rng = np.random.default_rng(env.seed)
    n_beats = env.beats_per_image
    images = stimulus.random_images(rng, 8, env.network.n_inputs)
    expected = stimulus.expected_results(env.network, images)
    tb = TB(dut, env)
    tb.set_idle(stalls)
    tb.set_backpressure(stalls)
    await tb.reset()
    plan = ["good", "early", "good", "late", "good", "early1", "late", "early", "good", "good"]
    if n_beats == 1:
        plan = [kind for kind in plan if not kind.startswith("early")]
    good = iter(range(len(images)))
    malformed = 0
    for position, kind in enumerate(plan):
        if kind == "good":
            k = next(good)
            tb.source.send_frame(packing.pixel_beats(images[k], env.pixels_per_beat))
            tb.scoreboard.expect(position, **expected[k])
            continue
        noise = rng.integers(0, 256, (n_beats + 4) * env.pixels_per_beat, dtype=np.uint8)
        beats = packing.pixel_beats(noise, env.pixels_per_beat)
        if kind == "early1":
            length = 1
        elif kind == "early":
            length = int(rng.integers(1, n_beats))
        else:
            length = n_beats + int(rng.integers(1, 4, endpoint=True))
        tb.source.send_frame(beats[:length])
        tb.scoreboard.expect(position, **stimulus.ERROR_RESULT)
        malformed += 1
    await tb.wait_results(len(plan))
    record_summary(env, (
        f"malformed_frames/stalls={stalls}: {tb.scoreboard.matched}/{len(plan)} results right "
        f"({malformed} malformed frames, seed {env.seed})"))
    tb.assert_nothing_left()


@cocotb.test()
async def reset_mid_frame(dut):
    """Reset mid-frame, mid-computation and with a result held by backpressure; then the next
    images are right."""
    env = load_environment()
    rng = np.random.default_rng(env.seed)
    images = stimulus.random_images(rng, 8, env.network.n_inputs)
    beats = [packing.pixel_beats(image, env.pixels_per_beat) for image in images]
    tb = TB(dut, env)
    await tb.reset()

    tb.send_images(images[:1])
    await tb.wait_results(1)

    # Part of a frame, then reset: the partial frame must leave no trace.
    partial = max(1, len(beats[1]) // 2)
    tb.source.send_frame(beats[1][:partial], [False] * partial)
    await tb.wait_source_idle()
    await tb.reset()
    tb.send_images(images[2:3], first_index=2)
    await tb.wait_results(1)

    # A whole frame, reset while it is being computed: its result must never come.
    tb.source.send_frame(beats[3])
    await tb.wait_source_idle()
    await tb.reset()
    tb.send_images(images[4:5], first_index=4)
    await tb.wait_results(1)

    # A result held back by the sink, then reset: it must be dropped.
    tb.sink.pause = itertools.repeat(True)
    tb.source.send_frame(beats[5])
    for _ in range(tb.timeout_cycles(1)):
        await RisingEdge(dut.clk)
        if dut.m_axis_tvalid.value:
            break
    assert dut.m_axis_tvalid.value, "no result while the sink held back"
    await ClockCycles(dut.clk, 3)
    await tb.reset()
    tb.sink.pause = None

    tb.send_images(images[6:8], first_index=6)
    await tb.wait_results(2)
    checked = tb.scoreboard.matched
    record_summary(env, f"reset_mid_frame: {checked}/5 results right around 3 resets "
                        f"(seed {env.seed})")
    tb.assert_nothing_left()
    assert checked == 5, f"{checked} of 5 results right"


@cocotb.test()
@cocotb.parametrize((("sending", "event_backpressure"),
                     [("back_to_back", "none"), ("back_to_back", "random"),
                      ("one_at_a_time", "bursts")]))
async def hidden_spikes(dut, sending, event_backpressure):
    """The debug stream's hidden spike events equal the golden spike times up to the decision."""
    env = load_environment()
    assert env.debug_events, "hidden_spikes needs a design generated with debug_events=True"
    n = env.n or 12
    rng = np.random.default_rng(env.seed)
    images = stimulus.random_images(rng, n, env.network.n_inputs)
    inference = infer(env.network, images)
    tb = TB(dut, env)
    tb.set_event_backpressure(event_backpressure)
    await tb.reset()
    if sending == "back_to_back":
        tb.send_images(images)
        await tb.wait_results(n)
    else:
        for k in range(n):
            tb.send_images(images[k:k + 1], first_index=k)
            await tb.wait_results(1)
    problems = check_hidden_spikes(tb, inference, list(range(n)))
    record_summary(env, (
        f"hidden_spikes/sending={sending}/event_backpressure={event_backpressure}: "
        f"{tb.scoreboard.matched}/{n} results, {len(tb.events)} hidden spike events, "
        f"{problems} problems (seed {env.seed})"))
    tb.assert_nothing_left()
    assert problems == 0, f"{problems} hidden spike event problems"


@cocotb.test()
@cocotb.parametrize(idle=["none", "random"])
async def weight_reload(dut, idle):
    """Infer with the generated weights, load other networks through ``w_axis`` (shuffled
    words; while images are still in flight; a threshold-only subset), infer with each."""
    from bs4nn.model.network import Layer, Network

    env = load_environment()
    assert env.weight_storage != "rom", "weight_reload needs a design with run-time weights"
    rng = np.random.default_rng(env.seed)
    first = env.network
    second = stimulus.random_network(rng, first.sizes)
    # Only the output thresholds differ from the second network: a subset load.
    out = second.layers[-1]
    third = Network(second.layers[:-1] + (
        Layer(out.signs, stimulus.random_thresholds(rng, out.n_in, out.n_out)),))
    n = env.n or 6
    tb = TB(dut, env)
    tb.set_idle(idle)
    tb.weights.pause = pause_generator(idle, tb.rng)
    await tb.reset()
    index = 0

    async def infer_with(network, wait=True):
        nonlocal index
        tb.send_images(stimulus.random_images(rng, n, env.network.n_inputs), network,
                       first_index=index)
        index += n
        if wait:
            await tb.wait_results(n)

    await infer_with(first)

    words = packing.weight_stream_beats(second, env.lanes, env.events_per_cycle)
    order = rng.permutation(len(words))
    tb.load_network(words[k] for k in order)
    await tb.wait_source_idle(tb.weights)
    await infer_with(second, wait=False)
    await tb.wait_source_idle()

    # Offered while the second network's images are still computing: they finish first.
    new_words = packing.weight_stream_beats(third, env.lanes, env.events_per_cycle)
    fields = packing.weight_stream_fields(third.sizes, env.lanes, env.events_per_cycle)
    subset = [word for word, old in zip(new_words, words, strict=True) if word != old]
    assert all(packing.unpack_fields(fields, word)["kind"] == packing.WEIGHT_KIND_THRESHOLD
               for word in subset)
    tb.load_network(subset)
    await tb.wait_source_idle(tb.weights)
    await infer_with(third)

    tb.load_network(packing.weight_stream_beats(first, env.lanes, env.events_per_cycle))
    await tb.wait_source_idle(tb.weights)
    await infer_with(first)
    record_summary(env, (
        f"weight_reload/idle={idle}: {tb.scoreboard.matched}/{index} RTL == model over 3 loads "
        f"({len(words)} + {len(subset)} + {len(words)} words, seed {env.seed})"))
    tb.assert_nothing_left()


# --- pytest wrappers ----------------------------------------------------------------------------
# Builds are shared through xdist groups: one small Verilator build serves the protocol tests and
# the MNIST design the inference test (both built without C++ optimisation, which halves the
# build). Icarus, whose builds take about a second, runs the debug-event and weight-reload designs
# and the random network sweep.

rtlsim = pytest.mark.rtlsim
SMALL_SEED = 2024
SEED = int(os.environ.get("BS4NN_SEED", "1"))


def _small_network(sizes=(40, 24, 10)):
    return stimulus.random_network(np.random.default_rng(SMALL_SEED), sizes)


def _run(network, config, name, weights=None, **kwargs):
    from bs4nn.sim import runner

    build = runner.prepare_build(network, config, weights=weights,
                                 build_root=runner.REPO / "build" / "sim", log=lambda _: None)
    outcome = runner.run_test(build, name, seed=SEED, quiet=True, **kwargs)
    lines = "\n".join(outcome.summary.get("lines", []))
    assert outcome.passed, (f"{name}: {outcome.failed}/{outcome.tests} cocotb tests failed; "
                            f"see {outcome.directory / 'sim.log'}\n{lines}")


@rtlsim
@pytest.mark.xdist_group("verilator-small")
@pytest.mark.parametrize("name", ["random_images", "malformed_frames", "reset_mid_frame"])
def test_protocol(name, require_tool):
    from bs4nn.sim.runner import SimConfig

    require_tool("verilator")
    _run(_small_network(), SimConfig(lanes=4, pixels_per_beat=2, events_per_cycle=2,
                                     quick_build=True), name, n=12)


@rtlsim
@pytest.mark.xdist_group("verilator-small")
def test_compact_scheduler_under_stalls(require_tool):
    from bs4nn.sim.runner import SimConfig

    require_tool("verilator")
    # Folded (4 lanes of 24) at one pixel per beat: the compact scheduler.
    _run(_small_network(), SimConfig(lanes=4, pixels_per_beat=1, quick_build=True),
         "random_images", n=10)


@rtlsim
@pytest.mark.xdist_group("icarus-options")
def test_hidden_spikes_icarus(require_tool):
    from bs4nn.sim.runner import SimConfig

    require_tool("icarus")
    # Folded (6 lanes of 16): the debug stream joins the first layer's spike chunks.
    _run(_small_network((30, 16, 12, 6)), SimConfig(simulator="icarus", lanes=6,
                                                    pixels_per_beat=4, events_per_cycle=4,
                                                    debug_events=True),
         "hidden_spikes", n=8)


@rtlsim
@pytest.mark.xdist_group("icarus-options")
def test_weight_reload_icarus(require_tool):
    from bs4nn.sim.runner import SimConfig

    require_tool("icarus")
    _run(_small_network((36, 20, 8)), SimConfig(simulator="icarus", lanes=8, pixels_per_beat=8,
                                                events_per_cycle=2, weight_storage="ram"),
         "weight_reload", n=4)


@rtlsim
@pytest.mark.xdist_group("icarus-options")
def test_spram_weights_icarus(require_tool):
    from bs4nn.sim.runner import SimConfig

    require_tool("icarus")
    # The iCE40UP5K configuration: weights in SB_SPRAM256KA blocks (Yosys's model), loaded
    # through w_axis before the first image; folded, the compact scheduler.
    _run(_small_network(), SimConfig(simulator="icarus", lanes=8, pixels_per_beat=1,
                                     weight_storage="spram"), "random_images", n=6)


@rtlsim
@pytest.mark.xdist_group("icarus-options")
def test_weight_reload_compact_icarus(require_tool):
    from bs4nn.sim.runner import SimConfig

    require_tool("icarus")
    _run(_small_network((36, 20, 8)), SimConfig(simulator="icarus", lanes=5, pixels_per_beat=1,
                                                weight_storage="ram"),
         "weight_reload", n=3)


@rtlsim
@pytest.mark.xdist_group("verilator-mnist")
def test_mnist_inference(require_tool):
    from bs4nn.model.network import DEFAULT_WEIGHTS, Network
    from bs4nn.sim.runner import SimConfig

    weights = DEFAULT_WEIGHTS
    if not weights.is_file():
        pytest.skip(f"{weights} does not exist yet")
    require_tool("verilator")
    _run(Network.load(weights), SimConfig(quick_build=True), "mnist_inference", weights=weights,
         n=20)


@rtlsim
@pytest.mark.xdist_group("icarus")
def test_random_networks_icarus(require_tool):
    from bs4nn.sim import runner

    require_tool("icarus")
    outcomes = runner.run_random_networks(3, SEED, simulator="icarus", n=6,
                                          build_root=runner.REPO / "build" / "sim",
                                          log=lambda _: None)
    failed = [o for o in outcomes if not o.passed]
    assert not failed, "random networks failed: " + ", ".join(
        str(o.directory / "sim.log") for o in failed)
