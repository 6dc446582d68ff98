# amaranth: UnusedElaboratable=no
"""PixelFramer: frames follow ``last``; frames of the wrong length are flagged."""

import pytest

from bs4nn.gen.pixel_input import PixelFramer
from bs4nn.sim.amaranth_harness import (
    pauses,
    simulate,
    stream_assert_idle,
    stream_get,
    stream_put,
)


def frame_beats(framer, lengths, ready_every=1):
    """Send frames of the given lengths in beats, ``ready`` on the framed side one cycle in
    ``ready_every``; return the framed payloads seen."""
    beats = [index == n - 1 for n in lengths for index in range(n)]
    seen = []

    async def source(ctx):
        for position, last in enumerate(beats):
            await stream_put(ctx, framer.i_beats, {"pixels": [position % 256], "last": last})

    async def sink(ctx):
        stall = pauses([False] + [True] * (ready_every - 1))
        for _ in beats:
            payload = await stream_get(ctx, framer.o_beats, stall=stall)
            seen.append({name: int(getattr(payload, name)) for name in
                         ("beat", "keep", "start", "end", "error")}
                        | {"pixel0": int(payload.pixels[0])})
        await stream_assert_idle(ctx, framer.o_beats, 8)

    simulate(framer, source, sink)
    return seen


@pytest.mark.parametrize("ready_every", [1, 3])
def test_good_and_bad_frames(ready_every):
    framer = PixelFramer(n_inputs=10, pixels_per_beat=4)     # 3 beats per frame
    seen = frame_beats(framer, [3, 2, 3, 5, 1, 3], ready_every)
    frames, current = [], []
    for beat in seen:
        current.append(beat)
        if beat["end"]:
            frames.append(current)
            current = []
    assert [len(frame) for frame in frames] == [3, 2, 3, 5, 1, 3]
    assert [frame[-1]["error"] for frame in frames] == [0, 1, 0, 1, 1, 0]
    for frame in frames:
        assert [beat["start"] for beat in frame] == [1] + [0] * (len(frame) - 1)
        assert [beat["beat"] for beat in frame] == [min(i, 3) for i in range(len(frame))]
        assert [beat["keep"] for beat in frame] == [int(i < 3) for i in range(len(frame))]
        assert all(beat["error"] == 0 for beat in frame[:-1])
    assert [beat["pixel0"] for beat in seen] == list(range(len(seen)))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_inputs": 0, "pixels_per_beat": 8}, "n_inputs must be a positive integer, got 0"),
    ({"n_inputs": 8, "pixels_per_beat": 3},
     "pixels_per_beat must be one of (1, 2, 4, 8, 16), got 3"),
])
def test_parameter_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        PixelFramer(**kwargs)
    assert str(info.value) == message


def test_beats_per_frame():
    assert PixelFramer(784, 8).n_beats == 98
    assert PixelFramer(10, 16).n_beats == 1
    assert PixelFramer(10, 1).n_beats == 10
