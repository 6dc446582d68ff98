# amaranth: UnusedElaboratable=no
# (An Accelerator is built here for its schedule alone, never elaborated.)
"""Cycle model of the generated accelerator: when each result leaves, exactly.

The accelerator (``bs4nn.gen``) is a chain of fixed-latency blocks behind one scheduler, so
the cycle of every result follows from a few per-image counts (input events, and events up to
the decision) and the design's :class:`~bs4nn.gen.schedule.Schedule`, whose docstring holds
the formula this module computes. The schedule is read from the generator
(:attr:`bs4nn.gen.top.Accelerator.schedule`), never copied here.
"""

import numpy as np

from ..model.errors import UserError
from ..model.inference import encode, infer
from ..model.network import MAX_STEP

__all__ = ["schedule_of", "predict", "breakdown"]


def schedule_of(network, *, lanes=0, pixels_per_beat=8, events_per_cycle=1,
                weight_storage="rom"):
    """The :class:`~bs4nn.gen.schedule.Schedule` of the accelerator generated with these
    parameters (checked by :func:`bs4nn.gen.top.check_parameters`; the weight storage decides
    whether it is pipelined)."""
    from ..gen.top import Accelerator

    return Accelerator(network, lanes=lanes, pixels_per_beat=pixels_per_beat,
                       events_per_cycle=events_per_cycle, weight_storage=weight_storage).schedule


def _round_counts(network, pixels, schedule):
    """Per image: input events, rounds ``n_k`` and rounds up to the deciding step ``n*`` (or
    ``n_k``), with the inference.

    A step's rounds are the most events of that step held by one walker
    (:meth:`bs4nn.gen.scheduler.Walkers.walker_of`)."""
    from ..gen.scheduler import Walkers

    inference = infer(network, pixels)
    steps = encode(pixels)
    n, n_in = steps.shape
    walkers = schedule.events_per_cycle
    walker = Walkers.walker_of(np.arange(n_in), walkers)
    trigger_step = inference.decision_step.astype(np.int64) - 1 - schedule.hidden_layers
    n_events = np.zeros(n, dtype=np.int64)
    n_rounds = np.zeros(n, dtype=np.int64)
    n_trigger = np.zeros(n, dtype=np.int64)
    chunk = 1024
    for first in range(0, n, chunk):
        block = steps[first:first + chunk].astype(np.int64)
        rows = block.shape[0]
        index = ((np.arange(rows)[:, None] * (MAX_STEP + 1) + block) * walkers + walker)
        counts = np.bincount(index.ravel(), minlength=rows * (MAX_STEP + 1) * walkers)
        held = counts.reshape(rows, MAX_STEP + 1, walkers)[:, :MAX_STEP]
        n_events[first:first + rows] = held.sum(axis=(1, 2))
        rounds = held.max(axis=2)
        cumulative = np.concatenate([np.zeros((rows, 1), dtype=np.int64),
                                     np.cumsum(rounds, axis=1)], axis=1)
        n_rounds[first:first + rows] = cumulative[:, -1]
        upto = np.clip(trigger_step[first:first + rows] + 1, 0, MAX_STEP)
        n_trigger[first:first + rows] = cumulative[np.arange(rows), upto]
    return inference, n_events, n_rounds, n_trigger


def breakdown(network, pixels, *, lanes=0, pixels_per_beat=8, events_per_cycle=1,
              weight_storage="rom"):
    """Per-image schedule as a dict of int64 ``(n,)`` arrays.

    Keys: ``first_beat``, ``last_beat`` (the cycles the scheduler takes them, ``input_latency``
    after the port when it is not held), ``start``, ``finish``, ``result`` (written into the
    result queue), ``transfer`` (on ``m_axis``), ``events`` (input events), ``rounds``
    (``n_k``), ``rounds_used`` (``n*``, rounds up to the decision), ``fired``.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.shape[1] != network.n_inputs:
        raise UserError(f"pixels must have shape (n, {network.n_inputs}), got {pixels.shape}")
    schedule = schedule_of(network, lanes=lanes, pixels_per_beat=pixels_per_beat,
                           events_per_cycle=events_per_cycle, weight_storage=weight_storage)
    inference, n_events, n_rounds, n_trigger = _round_counts(network, pixels, schedule)
    n = pixels.shape[0]
    g, d = schedule.lane_groups, schedule.event_to_result
    out = {name: np.zeros(n, dtype=np.int64) for name in
           ("first_beat", "last_beat", "start", "finish", "result", "transfer")}
    for k in range(n):
        first = schedule.input_latency if k == 0 else out["last_beat"][k - 1] + 1
        if k >= 2:
            first = max(first, out["finish"][k - 2] + schedule.finish_to_load)
        last = first + schedule.beats_per_image - 1
        start = last + schedule.load_to_start
        if k >= 1:
            start = max(start, out["finish"][k - 1] + schedule.finish_to_start)
        if k >= schedule.credits:
            start = max(start, out["result"][k - schedule.credits] + schedule.result_to_pop + 1)
        run_out = start + 1 + n_rounds[k] * g
        if inference.fired[k]:
            result = start + 1 + n_trigger[k] * g + d
            finish = min(result + schedule.kill_to_finish, run_out)
        else:
            result = run_out + d
            finish = run_out
        out["first_beat"][k], out["last_beat"][k] = first, last
        out["start"][k], out["finish"][k], out["result"][k] = start, finish, result
        out["transfer"][k] = result + schedule.result_to_transfer
    out["events"] = n_events
    out["rounds"] = n_rounds
    out["rounds_used"] = np.where(inference.fired, n_trigger, n_rounds)
    out["fired"] = inference.fired
    return out


def predict(network, pixels, *, lanes=0, pixels_per_beat=8, events_per_cycle=1,
            weight_storage="rom"):
    """Transfer cycle of each result, int64 ``(n,)``, for uint8 ``(n, n_in)`` images streamed
    back to back with ``m_axis_tready`` high (cycle 0 accepts the first beat)."""
    return breakdown(network, pixels, lanes=lanes, pixels_per_beat=pixels_per_beat,
                     events_per_cycle=events_per_cycle, weight_storage=weight_storage)["transfer"]
