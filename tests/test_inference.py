"""Golden model: hand-computed networks and property tests against the step-by-step reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bs4nn.model.inference import infer, reference_infer
from bs4nn.model.network import NO_SPIKE, Layer, Network


def network(*layers):
    return Network(tuple(Layer(np.array(signs), np.array(thresholds))
                         for signs, thresholds in layers))


def test_hidden_layer_delay_and_spike_times():
    # Pixels 255, 250, 0, 245 spike at steps 0, 5, 255, 10.
    net = network(
        ([[1, 1, -1, 1], [1, -1, 1, 1], [-1, 1, 1, 1]], [1, 0, 0]),
        ([[1, 1, 1], [-1, 1, 1]], [1, 0]),
    )
    result = infer(net, np.array([[255, 250, 0, 245]], dtype=np.uint8))
    # h0 crosses at 5 (V=2 > 1), h1 at 0, h2 at 10: spikes one step later.
    assert result.spike_times[0].tolist() == [[6, 1, 11]]
    # o0 sees h1 at 1 and h0 at 6: V(6) = 2 > 1, spike 7; o1: V(1) = 1 > 0, spike 2.
    assert result.spike_times[1].tolist() == [[7, 2]]
    assert result.predicted.tolist() == [1]
    assert result.decision_step.tolist() == [2]
    assert result.fired.tolist() == [True]


def test_tie_goes_to_larger_potential_then_lower_index():
    # Three inputs spike at step 0; every output crosses there.
    net = network(([[1, 1, -1, 1], [1, 1, 1, -1], [1, 1, 1, 1]], [0, 0, 2]))
    result = infer(net, np.array([[255, 255, 255, 0]], dtype=np.uint8))
    assert result.spike_times[0].tolist() == [[1, 1, 1]]
    # Potentials at the crossing: 1, 3, 3 -> neuron 1 (larger, then lower index).
    assert result.predicted.tolist() == [1]
    assert result.decision_step.tolist() == [1]
    assert result.tied.tolist() == [[True, True, True]]
    assert result.lenient_accuracy(np.array([2])) == 1.0
    assert result.strict_accuracy(np.array([2])) == 0.0


def test_no_output_spike_falls_back_to_final_potential():
    # o2 only crosses at step 255 (pixel 0), which yields no spike; final V = 2, 0, 4.
    net = network(([[1, 1, -1, 1], [1, -1, -1, 1], [1, 1, 1, 1]], [2, 2, 3]))
    result = infer(net, np.array([[255, 255, 255, 0]], dtype=np.uint8))
    assert result.spike_times[0].tolist() == [[NO_SPIKE] * 3]
    assert result.fired.tolist() == [False]
    assert result.decision_step.tolist() == [NO_SPIKE]
    assert result.predicted.tolist() == [2]
    assert result.lenient_accuracy(np.array([0])) == 0.0


def test_hidden_crossing_at_254_spikes_at_255_and_counts_in_final_potential():
    # Pixel 1 spikes at 254: h0 crosses at 254, spikes at 255; o0 and o1 never fire, but
    # o1's final potential includes h0's spike at 255.
    net = network(([[1]], [0]), ([[-1], [1]], [0, 0]))
    result = infer(net, np.array([[1]], dtype=np.uint8))
    assert result.spike_times[0].tolist() == [[255]]
    assert result.fired.tolist() == [False]
    assert result.predicted.tolist() == [1]


def test_batch_equals_one_image_at_a_time():
    rng = np.random.default_rng(7)
    net = network((rng.choice([-1, 1], (9, 20)), rng.integers(0, 4, 9)),
                  (rng.choice([-1, 1], (4, 9)), rng.integers(0, 3, 4)))
    pixels = rng.integers(0, 256, (300, 20)).astype(np.uint8)
    batch = infer(net, pixels)
    for n in (0, 17, 299):
        single = infer(net, pixels[n])
        assert single.predicted[0] == batch.predicted[n]
        assert single.decision_step[0] == batch.decision_step[n]


@st.composite
def networks_and_images(draw):
    sizes = [draw(st.integers(1, 10))]
    sizes += [draw(st.integers(1, 7)) for _ in range(draw(st.integers(0, 2)))]
    sizes.append(draw(st.integers(1, 4)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(sizes, sizes[1:], strict=False):
        layers.append(Layer(rng.choice([-1, 1], (n_out, n_in)),
                            rng.integers(0, min(n_in, 4), n_out)))
    # Few distinct pixel values make simultaneous spikes and ties common.
    palette = np.array([0, 1, 2, 200, 254, 255], dtype=np.uint8)
    images = palette[rng.integers(0, palette.size, (8, sizes[0]))]
    return Network(tuple(layers)), images


@settings(max_examples=150, deadline=None)
@given(networks_and_images())
def test_event_driven_model_equals_step_by_step_reference(case):
    net, images = case
    result = infer(net, images)
    for n, pixels in enumerate(images):
        predicted, step, fired, spikes = reference_infer(net, pixels)
        assert result.predicted[n] == predicted
        assert result.decision_step[n] == step
        assert result.fired[n] == fired
        for k, times in enumerate(spikes):
            assert result.spike_times[k][n].tolist() == times


@pytest.mark.parametrize("shape", [(0, 4), (3,)])
def test_layer_rejects_bad_shapes(shape):
    from bs4nn.model.errors import UserError

    with pytest.raises(UserError, match="2-D"):
        Layer(np.ones(shape, dtype=np.int8), np.zeros(shape[0], dtype=np.int32))
