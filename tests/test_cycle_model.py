# amaranth: UnusedElaboratable=no
"""The cycle model: exact against amaranth.sim, and its schedule's invariants."""

import numpy as np
import pytest

from bs4nn.gen.top import Accelerator
from bs4nn.model.errors import UserError
from bs4nn.sim.amaranth_harness import frames_of, run_accelerator
from bs4nn.sim.cycle_model import breakdown, predict, schedule_of
from bs4nn.sim.stimulus import expected_results, random_images, random_network


@pytest.mark.parametrize(("sizes", "lanes", "pixels_per_beat", "events_per_cycle", "density"), [
    ((8, 12, 10, 8, 3), 0, 16, 1, 0.05),  # one beat per image, few events: the credits bind
    ((16, 6, 3), 2, 16, 1, 0.9),
    ((40, 10, 5, 4), 0, 2, 1, 0.5),   # load-bound
    ((48, 10, 4), 3, 16, 4, 0.9),     # rounds of up to four events, lane groups, kills
    ((40, 12, 5), 0, 8, 8, 0.7),
    ((24, 8, 6, 3), 0, 4, 2, 0.5),
    # The compact scheduler (folded, one pixel per beat): a 258-cycle step list per image.
    ((20, 12, 4), 3, 1, 1, 0.6),
    ((300, 9, 5, 3), 3, 1, 1, 0.3),
])
def test_exact_against_simulation(sizes, lanes, pixels_per_beat, events_per_cycle, density):
    seed = sum(sizes) + lanes * 3 + pixels_per_beat + events_per_cycle
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    network = random_network(rng, sizes)
    images = random_images(rng, 30, sizes[0], density)
    accelerator = Accelerator(network, lanes=lanes, pixels_per_beat=pixels_per_beat,
                              events_per_cycle=events_per_cycle)
    results, cycles = run_accelerator(accelerator, frames_of(images, pixels_per_beat))
    assert results == expected_results(network, images)
    assert cycles == list(predict(network, images, lanes=lanes, pixels_per_beat=pixels_per_beat,
                                  events_per_cycle=events_per_cycle))


def test_credits_bind_for_tiny_images():
    rng = np.random.default_rng(3)
    network = random_network(rng, (8, 12, 10, 8, 8, 8, 8, 3))
    images = np.zeros((12, 8), dtype=np.uint8)
    plan = breakdown(network, images, pixels_per_beat=16)
    schedule = schedule_of(network, pixels_per_beat=16)
    credits = schedule.credits
    waits = plan["start"][credits:] == plan["result"][:-credits] + schedule.result_to_pop + 1
    assert waits.any()


def test_invariants():
    rng = np.random.default_rng(8)
    network = random_network(rng, (20, 8, 4))
    images = random_images(rng, 50, 20)
    plan = breakdown(network, images, lanes=3, pixels_per_beat=4)
    schedule = schedule_of(network, lanes=3, pixels_per_beat=4)
    assert np.all(np.diff(plan["transfer"]) >= 1)
    assert np.all(plan["last_beat"] - plan["first_beat"] == schedule.beats_per_image - 1)
    assert np.all(plan["start"] >= plan["last_beat"] + schedule.load_to_start)
    assert np.all(plan["start"][1:] >= plan["finish"][:-1])
    assert np.all(plan["finish"] <= plan["result"] + schedule.kill_to_finish)
    assert np.all(plan["rounds_used"] <= plan["rounds"])
    assert np.all(plan["rounds"] <= plan["events"])
    assert plan["first_beat"][0] == schedule.input_latency


def test_errors():
    network = random_network(np.random.default_rng(0), (8, 4, 2))
    with pytest.raises(UserError, match="lanes must be between 1 and 4"):
        predict(network, np.zeros((1, 8), dtype=np.uint8), lanes=5)
    with pytest.raises(UserError, match="pixels must have shape"):
        predict(network, np.zeros((1, 9), dtype=np.uint8))


def test_mnist_network_exact():
    """The full-size design on a few real images (skipped until the weights exist)."""
    from bs4nn.model import data
    from bs4nn.model.network import DEFAULT_WEIGHTS, Network

    weights = DEFAULT_WEIGHTS
    if not weights.is_file():
        pytest.skip(f"{weights} does not exist yet")
    try:
        images = data.load("mnist", "test")[0][:4]
    except UserError as error:
        pytest.skip(f"MNIST is not available: {error}")
    network = Network.load(weights)
    results, cycles = run_accelerator(Accelerator(network), frames_of(images, 8))
    assert results == expected_results(network, images)
    assert cycles == list(predict(network, images))
