"""Training of BS4NN networks: real latent parameters, the exact integer network forward.

The forward pass is the deployed network itself (``sign`` of the latent weights, thresholds
rounded to integers), evaluated event-driven by :func:`~bs4nn.model.inference.layer_forward`,
so the training accuracy is the hardware's. Two losses:

* the snapshot loss (the default, :mod:`.snapshot`): cross-entropy of ``softmax(β V)`` over
  the output potentials at the crossing step of the earliest output spike, where the decision
  reads them (the final potentials when nothing fires); straight-through to the output
  weights, a Laplace surrogate of their potential for the hidden neurons;
* the BS4NN temporal loss on spike times (``loss="spike-time"``, :mod:`.spike_time`), with
  near misses and optional recruitment.

Adam on the latent weights (clipped to ``[-1, 1]``, straight-through sign) and on per-neuron
thresholds, minibatches, cosine learning-rate decay, optional shifts, flips and hidden-spike
dropout (:mod:`.augment`, :mod:`.parameters`), optional distillation from a real-valued
teacher (:mod:`.teacher`). The epoch with the best exact validation
accuracy is kept (:mod:`.loop`); the output thresholds may then be calibrated for exact
accuracy (:mod:`.calibration`); :func:`train_and_save` runs all of it and writes the weights
file. Every option is a :class:`TrainConfig` field (:mod:`.config`).
"""

from .augment import flip_images, shift_images
from .calibration import calibrate_output_thresholds
from .config import DEFAULT_HIDDEN, Option, TrainConfig, option_flag
from .curves import plot_curves
from .loop import CHECKPOINT_NAME, evaluate, train, train_epoch
from .parameters import LayerState, Parameters, adam_update, forward, init_parameters, to_network
from .pipeline import train_and_save
from .snapshot import snapshot_gradients
from .spike_time import backward, effective_times, near_misses, recruitment, spike_loss
from .teacher import Teacher, soft_predictions, train_teacher

__all__ = ["TrainConfig", "Option", "option_flag", "DEFAULT_HIDDEN", "Parameters",
           "LayerState", "init_parameters", "to_network", "adam_update", "forward",
           "snapshot_gradients", "effective_times", "spike_loss", "recruitment", "near_misses",
           "backward", "shift_images", "flip_images", "calibrate_output_thresholds", "evaluate",
           "train_epoch", "train", "plot_curves", "train_and_save", "CHECKPOINT_NAME",
           "Teacher", "train_teacher", "soft_predictions"]
