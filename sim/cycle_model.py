"""Cycle model of the generated accelerator: when each result leaves, exactly.

How the schedule works
----------------------
The accelerator (``bs4nn.gen``) is a chain of fixed-latency blocks behind one scheduler, so
the cycle of every result follows from a few per-image counts. Cycle 0 is the cycle whose
rising edge accepts the first beat of the first image; beats are offered back to back and
``m_axis_tready`` is held high.

* **Loading.** Frame ``k`` goes into bank ``k % 2``. Its beats are accepted one per cycle from
  ``A_k = max(L_{k-1} + 1, W_{k-2} + finish_to_load)``, where ``L`` is the cycle of a frame's
  last beat and ``W_k`` the cycle image ``k`` finishes computing (which frees its bank).
* **Start.** Image ``k`` starts at
  ``S_k = max(W_{k-1} + finish_to_start, L_k + load_to_start, T_{k-C} + 1)``: the previous
  image has finished, its own bank is loaded (and its first steps found), and one of the
  ``C = credits`` result-queue slots is free (``T`` is a result's transfer cycle).
* **Events.** The scheduler emits one start token in cycle ``S_k``, then the image's ``n_k``
  input events (pixels of value >= 1) in time order, each for ``G`` lane-group cycles. The
  token chosen in cycle ``c`` leaves the scheduler in cycle ``c + 1``, and reaches the result
  queue ``D = event_to_result`` cycles later.
* **Early exit.** When the output fires (decision step ``d``), the deciding token is the last
  event of input step ``d - 1 - H`` (``H`` hidden layers, one step of delay each); with ``n*``
  events at steps up to that one, the result is written at ``R_k = S_k + 1 + n*·G + D`` and
  the same cycle tells the scheduler to drop the rest of the image. Otherwise the image runs
  out of events: ``R_k = S_k + 1 + n_k·G + D``.
* **Finish.** ``W_k = S_k + 1 + n_k·G`` (the cycle after the last event), or ``R_k`` when the
  early exit comes first: ``W_k = min(R_k, S_k + 1 + n_k·G)`` for an image that fires.
* **Transfer.** ``T_k = R_k + result_to_transfer``.

So, back to back, an image costs about ``max(beats, 2 + n*·G + D)`` cycles: loading overlaps
computing, and computing stops at the decision.
"""

from dataclasses import dataclass

import numpy as np

from ..model.errors import UserError
from ..model.inference import encode, infer
from ..model.network import MAX_STEP

__all__ = ["Schedule", "schedule_of", "predict", "breakdown"]


@dataclass(frozen=True)
class Schedule:
    """The constants of the schedule, read from the generator's blocks."""

    beats_per_image: int
    lane_groups: int
    hidden_layers: int
    credits: int
    event_to_result: int
    load_to_start: int
    finish_to_start: int
    finish_to_load: int
    result_to_transfer: int


def schedule_of(network, *, lanes=0, pixels_per_beat=8):
    """The :class:`Schedule` of the accelerator generated with these parameters."""
    from ..gen.pixel_input import PIXELS_PER_BEAT_CHOICES
    from ..gen.scheduler import EventScheduler
    from ..gen.top import RESULT_CREDITS, Accelerator, event_to_result

    n_hidden = network.layers[0].n_out
    if len(network.layers) < 2:
        raise UserError("the accelerator needs at least one hidden layer")
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 0 <= lanes <= n_hidden:
        raise UserError(f"lanes must be between 1 and {n_hidden} (or 0 for all), got {lanes!r}")
    if pixels_per_beat not in PIXELS_PER_BEAT_CHOICES:
        raise UserError(f"pixels_per_beat must be one of {PIXELS_PER_BEAT_CHOICES}, "
                        f"got {pixels_per_beat!r}")
    return Schedule(
        beats_per_image=-(-network.n_inputs // pixels_per_beat),
        lane_groups=-(-n_hidden // (lanes or n_hidden)),
        hidden_layers=len(network.layers) - 1,
        credits=RESULT_CREDITS,
        event_to_result=event_to_result(network),
        load_to_start=EventScheduler.load_to_start,
        finish_to_start=EventScheduler.finish_to_start,
        finish_to_load=EventScheduler.finish_to_load,
        result_to_transfer=Accelerator.result_to_transfer,
    )


def _event_counts(network, pixels, schedule):
    """Per image: events ``n_k`` and events up to the deciding step ``n*`` (or ``n_k``)."""
    inference = infer(network, pixels)
    steps = encode(pixels)
    events = steps < MAX_STEP
    n_events = events.sum(axis=1)
    trigger_step = inference.decision_step.astype(np.int64) - 1 - schedule.hidden_layers
    n_trigger = (events & (steps <= trigger_step[:, None])).sum(axis=1)
    return inference, n_events.astype(np.int64), n_trigger.astype(np.int64)


def breakdown(network, pixels, *, lanes=0, pixels_per_beat=8):
    """Per-image schedule as a dict of int64 ``(n,)`` arrays.

    Keys: ``first_beat``, ``last_beat``, ``start``, ``finish``, ``result`` (written into the
    result queue), ``transfer`` (on ``m_axis``), ``events`` (``n_k``), ``events_used``
    (``n*``, events up to the decision), ``fired``.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.shape[1] != network.n_inputs:
        raise UserError(f"pixels must have shape (n, {network.n_inputs}), got {pixels.shape}")
    schedule = schedule_of(network, lanes=lanes, pixels_per_beat=pixels_per_beat)
    inference, n_events, n_trigger = _event_counts(network, pixels, schedule)
    n = pixels.shape[0]
    g, d = schedule.lane_groups, schedule.event_to_result
    out = {name: np.zeros(n, dtype=np.int64) for name in
           ("first_beat", "last_beat", "start", "finish", "result", "transfer")}
    for k in range(n):
        first = 0 if k == 0 else out["last_beat"][k - 1] + 1
        if k >= 2:
            first = max(first, out["finish"][k - 2] + schedule.finish_to_load)
        last = first + schedule.beats_per_image - 1
        start = last + schedule.load_to_start
        if k >= 1:
            start = max(start, out["finish"][k - 1] + schedule.finish_to_start)
        if k >= schedule.credits:
            start = max(start, out["transfer"][k - schedule.credits] + 1)
        run_out = start + 1 + n_events[k] * g
        if inference.fired[k]:
            result = start + 1 + n_trigger[k] * g + d
            finish = min(result, run_out)
        else:
            result = run_out + d
            finish = run_out
        out["first_beat"][k], out["last_beat"][k] = first, last
        out["start"][k], out["finish"][k], out["result"][k] = start, finish, result
        out["transfer"][k] = result + schedule.result_to_transfer
    out["events"] = n_events
    out["events_used"] = np.where(inference.fired, n_trigger, n_events)
    out["fired"] = inference.fired
    return out


def predict(network, pixels, *, lanes=0, pixels_per_beat=8):
    """Transfer cycle of each result, int64 ``(n,)``, for uint8 ``(n, n_in)`` images streamed
    back to back with ``m_axis_tready`` high (cycle 0 accepts the first beat)."""
    return breakdown(network, pixels, lanes=lanes, pixels_per_beat=pixels_per_beat)["transfer"]
