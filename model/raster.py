"""The spike raster of one image: input, hidden and output spike times, as a PNG."""

import os

import numpy as np

from .inference import encode, infer
from .network import NO_SPIKE, atomic_write

__all__ = ["write_raster"]


def write_raster(network, pixels, path, title):
    """Run ``network`` on one image (uint8 ``(n_in,)``) and plot its spikes into ``path``.

    The title gets the predicted class and the decision step appended. Returns the
    :class:`~.inference.Inference` of the image.
    """
    result = infer(network, pixels)
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    rows = [("input", encode(pixels))] + [
        (f"hidden {k + 1}" if k < len(network.layers) - 1 else "output", times[0])
        for k, times in enumerate(result.spike_times)]
    figure, axes = plt.subplots(len(rows) + 1, 1, figsize=(9, 2.2 * (len(rows) + 1)),
                                gridspec_kw={"height_ratios": [2] + [1] * len(rows)})
    axes[0].imshow(pixels.reshape(28, 28) if pixels.size == 784 else pixels[None],
                   cmap="gray_r")
    axes[0].set_axis_off()
    predicted, step = int(result.predicted[0]), int(result.decision_step[0])
    axes[0].set_title(f"{title}, predicted {predicted}, decision step "
                      f"{step if step < NO_SPIKE else 'none'}")
    for axis, (name, times) in zip(axes[1:], rows, strict=True):
        spiking = np.nonzero(times < NO_SPIKE)[0]
        colors = ["tab:red" if name == "output" and j == predicted else "tab:blue"
                  for j in spiking]
        axis.scatter(times[spiking], spiking, s=4 if name != "output" else 30, c=colors)
        if step < NO_SPIKE:
            axis.axvline(step, color="tab:red", linestyle="--", linewidth=1)
        axis.set_xlim(0, NO_SPIKE)
        axis.set_ylim(-1, times.size)
        axis.set_ylabel(f"{name}\nneuron")
    axes[-1].set_xlabel("time step (dashed: decision)")
    figure.tight_layout()
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=110)
    plt.close(figure)
    return result
