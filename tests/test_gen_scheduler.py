# amaranth: UnusedElaboratable=no
"""EventScheduler: time order, step/image framing, rounds of several events, no bubbles, early
exit, malformed frames."""

import numpy as np
import pytest

from bs4nn.gen.scheduler import EventScheduler
from bs4nn.model.inference import encode
from bs4nn.model.network import MAX_STEP
from bs4nn.sim.amaranth_harness import simulate, stream_put


def run_scheduler(dut, frames, *, kills=None, max_cycles=20_000):
    """Send frames (lists of (pixels, error) beats, ``last`` on each list's final one).

    Returns the token list: dicts with the cycle and the payload fields. ``kills`` maps an
    image index to the number of its event tokens after which its kill is sent.
    """
    beats = []
    for frame in frames:
        for index, (pixels, error) in enumerate(frame):
            beats.append({"pixels": [int(pixel) for pixel in pixels],
                          "beat": min(index, dut.n_beats), "keep": int(index < dut.n_beats),
                          "start": int(index == 0), "end": int(index == len(frame) - 1),
                          "error": int(error)})
    kills = dict(kills or {})
    tokens = []

    async def source(ctx):
        for beat in beats:
            await stream_put(ctx, dut.i_beats, beat)

    async def sink(ctx):
        # The downstream side, cycle by cycle: it answers an event token with a kill and the
        # end of an image with a taken result, each in the next cycle.
        image, events_seen, pending_kill, taken = -1, 0, None, 0
        for cycle in range(max_cycles):
            ctx.set(dut.i_kill.valid, pending_kill is not None)
            ctx.set(dut.i_kill.payload, pending_kill or 0)
            pending_kill = None
            ctx.set(dut.i_result_taken, taken > 0)
            taken = max(0, taken - 1)
            _, _, valid, payload = await ctx.tick().sample(dut.o_events.valid,
                                                           dut.o_events.payload)
            if valid:
                token = {name: int(getattr(payload, name)) for name in
                         ("slots", "group", "step", "start", "step_end", "end", "error")}
                token["pixels"] = [int(payload.pixels[w]) if token["slots"] >> w & 1 else None
                                   for w in range(dut.events_per_cycle)]
                token["cycle"] = cycle
                tokens.append(token)
                if token["start"]:
                    image, events_seen = image + 1, 0
                else:
                    events_seen += 1
                if kills.get(image) == events_seen and not token["start"]:
                    pending_kill = image % dut.credits
                    taken += 1
                if token["end"]:
                    taken += 1
                    if image == len(frames) - 1:
                        return

    simulate(dut, sink, background=[source])
    return tokens


def frames_from(images, ppb):
    frames = []
    for image in images:
        padded = np.zeros(-(-image.size // ppb) * ppb, dtype=np.uint8)
        padded[:image.size] = image
        frames.append([(beat, False) for beat in padded.reshape(-1, ppb)])
    return frames


def split_images(tokens):
    images = []
    for token in tokens:
        if token["start"]:
            images.append([token])
        else:
            images[-1].append(token)
    return images


def check_image(image_tokens, pixels, groups, walkers=1):
    start, rounds = image_tokens[0], image_tokens[1:]
    steps = encode(pixels)
    expected = sorted((int(steps[i]), i) for i in np.flatnonzero(steps < MAX_STEP))
    assert start["end"] == (not expected)
    assert all(t["slots"] for t in rounds)
    first_group = [t for t in rounds if t["group"] == 0]
    got = [(t["step"], pixel) for t in first_group for pixel in t["pixels"] if pixel is not None]
    assert sorted(got) == expected
    assert [t["step"] for t in first_group] == sorted(t["step"] for t in first_group)
    for t in rounds:                          # slot w holds an input of walker w
        assert all(p is None or p % walkers == w for w, p in enumerate(t["pixels"]))
    # A step costs the most events one walker holds in it.
    for step in {s for s, _ in expected}:
        held = [sum(1 for s, i in expected if s == step and i % walkers == w)
                for w in range(walkers)]
        assert sum(1 for t in first_group if t["step"] == step) == max(held)
    assert [t["group"] for t in rounds] == list(range(groups)) * len(first_group)
    # No bubbles: the start token, then one round token per cycle.
    assert [t["cycle"] for t in image_tokens] == list(range(start["cycle"],
                                                            start["cycle"] + len(image_tokens)))
    for index, token in enumerate(rounds):
        later = rounds[index + 1:]
        # step_end: every lane group's token of the step's last round.
        assert token["step_end"] == all(t["step"] != token["step"] for t in later
                                        if t["group"] == token["group"])
        assert token["end"] == (not later)


@pytest.mark.parametrize(("n_inputs", "ppb", "groups", "walkers"), [
    (16, 4, 1, 1), (13, 1, 2, 1), (40, 8, 1, 1), (20, 16, 3, 1), (9, 2, 1, 1),
    (16, 4, 1, 2), (40, 8, 2, 4), (37, 16, 1, 16), (30, 8, 1, 8), (9, 2, 3, 2),
    # The compact scheduler: one pixel per beat, at least three lane groups.
    (13, 1, 3, 1), (40, 1, 5, 1), (300, 1, 3, 1)])
def test_time_order(n_inputs, ppb, groups, walkers):
    seed = n_inputs * 1000 + ppb * 100 + groups * 10 + walkers
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(8, n_inputs)).astype(np.uint8)
    images[rng.random(images.shape) < 0.4] = 0
    images[0] = 0
    images[1] = 200                      # every pixel in one step: one long list per position
    images[2, :] = rng.integers(250, 256, size=n_inputs)   # few steps, many per step
    dut = EventScheduler(n_inputs, ppb, groups, events_per_cycle=walkers)
    tokens = run_scheduler(dut, frames_from(images, ppb))
    per_image = split_images(tokens)
    assert len(per_image) == len(images)
    for image_tokens, pixels in zip(per_image, images, strict=True):
        check_image(image_tokens, pixels, groups, walkers)


@pytest.mark.parametrize(("ppb", "groups"), [(4, 1), (1, 3)])   # fast, compact
def test_kill_drops_the_rest_and_starts_the_next(ppb, groups):
    rng = np.random.default_rng(5)
    images = rng.integers(1, 256, size=(4, 24)).astype(np.uint8)
    dut = EventScheduler(24, ppb, groups)
    assert dut.compact == (ppb == 1)
    tokens = run_scheduler(dut, frames_from(images, ppb), kills={0: 5, 2: 1})
    per_image = split_images(tokens)
    assert len(per_image) == 4
    # The kill comes in the cycle after the 5th token leaves; one more token was on its way,
    # and the kill is registered (kill_to_finish) before it stops the walkers.
    assert len(per_image[0]) - 1 == 6 + dut.kill_to_finish
    assert len(per_image[2]) - 1 == 2 + dut.kill_to_finish
    check_image(per_image[1], images[1], groups)
    check_image(per_image[3], images[3], groups)
    # The image finishes kill_to_finish cycles after the kill; the next one starts finish_to_start
    # cycles later (the compact one's step list, 258 cycles after its short frame, is later
    # still: the cycle model's tests check that bound).
    first_start = per_image[0][-1]["cycle"] + 1 + dut.finish_to_start
    assert per_image[1][0]["cycle"] == first_start if ppb > 1 else \
        per_image[1][0]["cycle"] >= first_start


def test_a_kill_between_lane_groups_leaves_the_next_image_whole():
    rng = np.random.default_rng(6)
    images = rng.integers(1, 256, size=(4, 24)).astype(np.uint8)
    # Image 0 is killed after its 4th token: the second lane group of its second round.
    dut = EventScheduler(24, 4, 3, events_per_cycle=2)
    tokens = run_scheduler(dut, frames_from(images, 4), kills={0: 4, 2: 7})
    per_image = split_images(tokens)
    assert len(per_image) == 4
    check_image(per_image[1], images[1], 3, 2)
    check_image(per_image[3], images[3], 3, 2)


@pytest.mark.parametrize(("ppb", "groups"), [(4, 1), (1, 3)])   # fast, compact
def test_malformed_frames_give_empty_error_images(ppb, groups):
    dut = EventScheduler(8, ppb, groups)
    beats = 8 // ppb
    good = [(np.full(ppb, 9 + 6 * (k >= beats // 2), dtype=np.uint8), False)
            for k in range(beats)]
    short = [(np.full(ppb, 7, dtype=np.uint8), True)]
    long = good + [(np.full(ppb, 1, dtype=np.uint8), True)]
    tokens = run_scheduler(dut, [good, short, long, good])
    per_image = split_images(tokens)
    # Eight events in two steps, each sent once per lane group.
    assert [len(tokens) for tokens in per_image] == [1 + 8 * groups, 1, 1, 1 + 8 * groups]
    for index in (1, 2):
        assert per_image[index][0]["end"] and per_image[index][0]["error"]
    for index in (0, 3):
        assert not per_image[index][0]["error"]
        check_image(per_image[index], np.array([9] * 4 + [15] * 4, dtype=np.uint8), groups)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_inputs": 0, "pixels_per_beat": 8}, "n_inputs must be a positive integer, got 0"),
    ({"n_inputs": 8, "pixels_per_beat": 5},
     "pixels_per_beat must be one of (1, 2, 4, 8, 16), got 5"),
    ({"n_inputs": 8, "pixels_per_beat": 8, "groups": 0},
     "groups must be a positive integer, got 0"),
    ({"n_inputs": 8, "pixels_per_beat": 8, "credits": 3},
     "credits must be a power of two of at least 2, got 3"),
    ({"n_inputs": 8, "pixels_per_beat": 4, "events_per_cycle": 8},
     "events_per_cycle must be one of (1, 2, 4, 8, 16) and at most pixels_per_beat (4), got 8"),
])
def test_parameter_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        EventScheduler(**kwargs)
    assert str(info.value) == message
