"""Amaranth generator of the streaming BS4NN accelerator.

One block per file, each a ``wiring.Component`` joined by ``lib.stream`` interfaces:

``pixel_input.PixelFramer``     frames pixel beats by ``last``, flags frames of the wrong length
``scheduler.EventScheduler``    encodes pixels as spike steps and replays them in time order
                                (double-buffered linked lists; early exit; result credits)
``compact_scheduler``           the scheduler's small parts at one pixel per beat (block RAM)
``event_layer.EventLayer``      first hidden layer, one weight column per input spike (ROM);
                                folded (counters in a memory) when LANES < n_hidden
``spram.Spram``                 iCE40UP5K SB_SPRAM256KA blocks for the first layer's weights
``vector_layer.VectorLayer``    further hidden layers, a step's spike vector (or chunk) per cycle
``output_layer.OutputLayer``    output neurons and the decision (earliest spike, tie-breaks)
``popcount.RowPopcount``        the registered adder trees of the step layers
``weight_loader.WeightLoader``  run-time weights (``weight_storage`` ram or spram)
``debug_events.DebugEvents``    the optional stream of hidden spike events (``ChunkJoiner``)
``top.Accelerator``/``TopLevel``  the blocks wired together; the flat AXI-stream module ``bs4nn``
``build``                       ``generate`` and ``write_design`` (``bs4nn verilog``)
``schedule.Schedule``           the schedule's constants and the latency formula, one owner

The exact schedule (which cycle each result leaves) is modelled by ``bs4nn.sim.cycle_model``
from the latencies these blocks publish as properties.
"""
