"""The accelerator's schedule: the constants that fix the cycle of every result.

:class:`Schedule` is the one owner of these constants and of the latency formula (its
docstring). :attr:`bs4nn.gen.top.Accelerator.schedule` derives it from the blocks' latency
properties; ``bs4nn.json``, the cycle model (:mod:`bs4nn.sim.cycle_model`) and the
testbenches read it.
"""

import inspect
from dataclasses import asdict, dataclass

__all__ = ["Schedule"]


@dataclass(frozen=True)
class Schedule:
    """When each result leaves, exactly.

    Cycle 0 is the cycle whose rising edge accepts the first beat of the first image; beats
    are offered back to back and ``m_axis_tready`` is held high. The cycles below are those
    of the scheduler, which takes the beats ``input_latency`` cycles after the port (through
    the port's register slice, which holds back no beat while it is fed). ``E = events_per_cycle``,
    ``G = lane_groups``, ``D = event_to_result``, ``C = credits`` and ``H = hidden_layers``.
    Input ``i`` belongs to walker ``i % E``; a step with events costs as many *rounds* as the
    largest number of its events that one walker holds, and for image ``k``, ``n_k`` is its
    number of rounds (the sum over its steps; with ``E = 1``, its number of input events,
    pixels of value >= 1).

    * Loading: frame ``k`` goes into bank ``k % 2``; the scheduler takes its beats one per
      cycle from ``A_k = max(L_{k-1} + 1, W_{k-2} + finish_to_load)`` (``A_0 =
      input_latency``), where ``L`` is the cycle it takes a frame's last beat and ``W_k`` the
      cycle image ``k`` finishes (which frees its bank).
    * Start: ``S_k = max(W_{k-1} + finish_to_start, L_k + load_to_start,
      R_{k-C} + result_to_pop + 1)``: the previous image has finished, the image's bank is
      loaded and its first steps found, and one of the ``C`` result-queue slots is free
      (``R`` is the cycle a result is written into the queue; it leaves the queue
      ``result_to_pop`` cycles later, and its slot counts as free in the cycle after).
    * Events: the scheduler chooses a start token in cycle ``S_k``, then the image's ``n_k``
      rounds in time order, each for ``G`` lane-group cycles: round ``j``, lane group ``g`` is
      chosen in cycle ``S_k + 1 + j·G + g``. A token chosen in cycle ``c`` leaves the
      scheduler in cycle ``c + 1`` and reaches the result queue ``D`` cycles later.
    * Early exit: when the output fires (decision step ``d``), the deciding token is the last
      round of input step ``d - 1 - H`` (one step of delay per hidden layer); with ``n*``
      rounds at steps up to that one, the result is written at ``R_k = S_k + 1 + n*·G + D``,
      and the same cycle tells the scheduler to drop the rest of the image. Otherwise
      ``R_k = S_k + 1 + n_k·G + D``.
    * Finish: ``W_k = S_k + 1 + n_k·G`` (the cycle after the last event), or
      ``W_k = min(R_k + kill_to_finish, S_k + 1 + n_k·G)`` for an image that fires.
    * Transfer: ``T_k = R_k + result_to_pop + output_latency`` on ``m_axis``.

    So, back to back, an image that fires costs about ``max(beats_per_image, 2 + n*·G + D)``
    cycles, and one that does not about ``max(beats_per_image, 2 + n_k·G)``: loading overlaps
    computing, and computing stops at the decision.

    Parameters
    ----------
    beats_per_image : int
        ``ceil(n_inputs / pixels_per_beat)``.
    events_per_cycle : int
        ``E``: walkers of the scheduler, event slots per round.
    lane_groups : int
        ``G``: cycles per round, ``ceil(n_hidden / lanes)``.
    hidden_layers : int
        ``H``.
    credits : int
        ``C``: depth of the result queue, the most images started and not yet taken.
    banks : int
        Image banks of the scheduler: frames accepted and not yet started, at most.
    event_to_result : int
        ``D``: cycles from a token leaving the scheduler to the result it decides being
        written into the result queue (the sum of the layers' latencies).
    load_to_start, finish_to_start, finish_to_load, kill_to_finish : int
        The scheduler's latencies (see :class:`~bs4nn.gen.scheduler.EventScheduler`).
    input_latency, output_latency : int
        Cycles the input and the output stream ports add (their register slices, 0 without).
    port_entries : int
        Beats or results each registered stream port holds at most (0 without).
    result_to_pop : int
        Cycles from a result being written into the result queue to its leaving the queue.
    """

    beats_per_image: int
    events_per_cycle: int
    lane_groups: int
    hidden_layers: int
    credits: int
    banks: int
    event_to_result: int
    load_to_start: int
    finish_to_start: int
    finish_to_load: int
    kill_to_finish: int
    input_latency: int
    result_to_pop: int
    output_latency: int
    port_entries: int

    @staticmethod
    def formula():
        """The latency formula as text (this class's docstring up to its parameters)."""
        text = inspect.cleandoc(Schedule.__doc__)
        return text[:text.index("\nParameters\n")].strip()

    @property
    def result_to_transfer(self):
        """Cycles from a result being written into the result queue to its earliest transfer
        on ``m_axis``."""
        return self.result_to_pop + self.output_latency

    @property
    def frames_in_flight(self):
        """Frames accepted (their ``last`` beat taken) and not yet delivered as results, at
        most: ``credits`` started, one more waiting in each bank, and as many as the input
        and the output port hold."""
        return self.credits + self.banks + 2 * self.port_entries

    def result_bound(self, n_inputs):
        """With ``m_axis_tready`` high and no debug stream: cycles from the later of a frame's
        last beat and the previous result's transfer to this frame's result's transfer, less
        than this (the beat reaches the scheduler ``input_latency`` cycles later, the image
        starts within ``load_to_start`` cycles, then takes at most ``1 + n_inputs·G + D``
        cycles to its result and ``result_to_transfer`` to leave)."""
        return (self.input_latency + self.load_to_start + 1 + n_inputs * self.lane_groups
                + self.event_to_result + self.result_to_transfer + 1)

    def ready_bound(self, n_inputs):
        """With ``m_axis_tready`` high, no debug stream and no weight frame: ``s_axis_tready``
        is never low for this many cycles in a row. It is low only while the bank to load
        still holds an image: that image starts within ``load_to_start + event_to_result``
        cycles (the results before it drain meanwhile) and then takes at most
        ``1 + n_inputs·G`` cycles to finish; the port's register slice lowers and raises
        ``s_axis_tready`` ``input_latency`` cycles late."""
        return (self.load_to_start + self.event_to_result + 1 + n_inputs * self.lane_groups
                + self.finish_to_load + 1 + self.input_latency)

    def as_dict(self):
        return asdict(self)
