"""The golden model's rule (:mod:`bs4nn.model.inference`) as combinational Verilog, for the
formal equivalence check of small networks.

The module it writes, ``bs4nn_golden``, maps one image's pixels to the result word the
accelerator must deliver for it. It is a transcription of the rule, not of the hardware: no
steps are walked; a potential only changes at its inputs' spike times, so each neuron's
crossing step is the earliest input spike time ``s`` whose potential ``V(s)`` (the sum of the
signs of the inputs with spike time ``<= s``) exceeds the threshold. Hidden layers count the
inputs that spike before ``MAX_STEP``, the output layer those up to ``MAX_STEP``; a crossing
at ``k < MAX_STEP`` spikes at ``k + 1``. The decision is the earliest output spike, ties to the
larger potential at the crossing, then to the lower index; when none fires, the largest
final potential, then the lower index.
"""

from ..model import packing
from ..model.network import MAX_STEP, NO_SPIKE

__all__ = ["golden_module"]

#: Width of every time and potential wire (spike times are at most ``NO_SPIKE`` = 256).
TIME_W = 10
POTENTIAL_W = 12


def _signed(value):
    return f"{POTENTIAL_W}'sd{value}" if value >= 0 else f"-{POTENTIAL_W}'sd{-value}"


def _layer(lines, index, layer, inputs, is_output):
    """Append the wires of layer ``index``; returns the names of its spike times and, for the
    output layer, of its crossing and final potentials."""
    last_input_step = MAX_STEP if is_output else MAX_STEP - 1
    spikes, crossing_potentials, finals = [], [], []

    def potential_at(j, step):
        """``V_j(step)``: the signs of the counted inputs with spike time ``<= step``."""
        terms = [f"(({s} <= {step} && {s} <= {last_input_step}) ? {_signed(int(sign))} : "
                 f"{_signed(0)})" for s, sign in zip(inputs, layer.signs[j], strict=True)]
        return " + ".join(terms)

    for j in range(layer.n_out):
        name = f"l{index}_n{j}"
        threshold = int(layer.thresholds[j])
        # The earliest counted input spike time at which V exceeds the threshold.
        candidates = []
        for i, s in enumerate(inputs):
            lines.append(f"wire signed [{POTENTIAL_W - 1}:0] {name}_v{i} = {potential_at(j, s)};")
            lines.append(f"wire [{TIME_W - 1}:0] {name}_c{i} = ({s} <= {last_input_step} && "
                         f"{name}_v{i} > {_signed(threshold)}) ? {s} : {TIME_W}'d{NO_SPIKE};")
            candidates.append(f"{name}_c{i}")
        crossing = candidates[0]
        for k, candidate in enumerate(candidates[1:], start=1):
            lines.append(f"wire [{TIME_W - 1}:0] {name}_m{k} = {candidate} < {crossing} ? "
                         f"{candidate} : {crossing};")
            crossing = f"{name}_m{k}"
        lines.append(f"wire [{TIME_W - 1}:0] {name}_spike = {crossing} < {MAX_STEP} ? "
                     f"{crossing} + {TIME_W}'d1 : {TIME_W}'d{NO_SPIKE};")
        spikes.append(f"{name}_spike")
        if is_output:
            lines.append(f"wire signed [{POTENTIAL_W - 1}:0] {name}_at_crossing = "
                         f"{potential_at(j, crossing)};")
            lines.append(f"wire signed [{POTENTIAL_W - 1}:0] {name}_final = "
                         f"{potential_at(j, MAX_STEP)};")
            crossing_potentials.append(f"{name}_at_crossing")
            finals.append(f"{name}_final")
    return spikes, crossing_potentials, finals


def golden_module(network):
    """Verilog text of ``module bs4nn_golden(input [8*n_inputs-1:0] pixels, output
    [RESULT_BITS-1:0] result)`` for ``network`` (weights and thresholds built in): pixel
    ``i`` in bits ``[8i, 8i + 8)``, the result packed as :func:`packing.result_fields`, with
    ``error`` 0."""
    n_inputs, n_classes = network.n_inputs, network.layers[-1].n_out
    fields = packing.result_fields(n_classes)
    result_bits = sum(width for _, width in fields)
    lines = [f"module bs4nn_golden(input [{8 * n_inputs - 1}:0] pixels, "
             f"output [{result_bits - 1}:0] result);"]
    inputs = []
    for i in range(n_inputs):
        lines.append(f"wire [{TIME_W - 1}:0] l0_s{i} = {TIME_W}'d{MAX_STEP} - "
                     f"pixels[{8 * i + 7}:{8 * i}];")
        inputs.append(f"l0_s{i}")
    for index, layer in enumerate(network.layers, start=1):
        is_output = index == len(network.layers)
        inputs, crossing_potentials, finals = _layer(lines, index, layer, inputs, is_output)
    # The decision, neuron by neuron: a later neuron wins only when strictly better.
    best, first, at_crossing = "8'd0", inputs[0], crossing_potentials[0]
    best_final, final_best = "8'd0", finals[0]
    for j in range(1, n_classes):
        better = (f"({inputs[j]} < {first} || ({inputs[j]} == {first} && "
                  f"{crossing_potentials[j]} > {at_crossing}))")
        lines += [f"wire d{j}_better = {better};",
                  f"wire [7:0] d{j}_best = d{j}_better ? 8'd{j} : {best};",
                  f"wire [{TIME_W - 1}:0] d{j}_first = d{j}_better ? {inputs[j]} : {first};",
                  f"wire signed [{POTENTIAL_W - 1}:0] d{j}_at_crossing = d{j}_better ? "
                  f"{crossing_potentials[j]} : {at_crossing};",
                  f"wire f{j}_better = {finals[j]} > {final_best};",
                  f"wire [7:0] f{j}_best = f{j}_better ? 8'd{j} : {best_final};",
                  f"wire signed [{POTENTIAL_W - 1}:0] f{j}_final = f{j}_better ? {finals[j]} : "
                  f"{final_best};"]
        best, first, at_crossing = f"d{j}_best", f"d{j}_first", f"d{j}_at_crossing"
        best_final, final_best = f"f{j}_best", f"f{j}_final"
    widths = dict(fields)
    lines += [f"wire fired = {first} < {NO_SPIKE};",
              f"wire [{widths['predicted'] - 1}:0] predicted = fired ? {best} : {best_final};",
              f"wire [{widths['decision_step'] - 1}:0] decision_step = {first};",
              "wire error = 1'b0;"]
    lines.append(f"assign result = {{{', '.join(name for name, _ in reversed(fields))}}};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
