"""A real-valued teacher for distillation: a 784-1000-10 ReLU network trained first.

With ``--distill A`` the snapshot loss is distilled (Hinton et al., 2015): ``1 - A`` of the
cross-entropy with the label plus ``A · T²`` of the cross-entropy between the teacher's
softened prediction (``softmax(logits / T)``, on the same shifted and flipped pixels) and the
student's output potentials softened alike, so the binary network also learns which wrong
classes are near. The teacher only shapes the loss: the deployed network is the student's
signs and integer thresholds, as without it.
"""

import dataclasses

import numpy as np

from .parameters import adam_correction, adam_step
from .snapshot import softmax

__all__ = ["Teacher", "train_teacher", "soft_predictions", "TEACHER_HIDDEN", "TEACHER_EPOCHS"]

TEACHER_HIDDEN = 1000
TEACHER_EPOCHS = 12
TEACHER_LR = 1e-3
TEACHER_BATCH = 100


@dataclasses.dataclass
class Teacher:
    """The teacher's weights: ``w1`` float32 ``(784, H)``, ``b1`` ``(H,)``, ``w2`` ``(H, 10)``,
    ``b2`` ``(10,)``, on pixels scaled to ``[0, 1]``."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    NAMES = ("w1", "b1", "w2", "b2")

    def logits(self, pixels):
        """Float32 ``(n, 10)`` logits of uint8 ``(n, 784)`` pixels."""
        hidden = np.maximum(pixels.astype(np.float32) / 255 @ self.w1 + self.b1, 0)
        return hidden @ self.w2 + self.b2

    def accuracy(self, pixels, labels):
        return float(np.mean(np.argmax(self.logits(pixels), axis=1) == labels))

    def arrays(self, prefix="teacher_"):
        """Name → array mapping for checkpoints."""
        return {prefix + name: getattr(self, name) for name in self.NAMES}

    @classmethod
    def from_arrays(cls, arrays, prefix="teacher_"):
        """The teacher saved by :meth:`arrays`, or ``None`` when ``arrays`` holds none."""
        if prefix + cls.NAMES[0] not in arrays:
            return None
        return cls(*(arrays[prefix + name] for name in cls.NAMES))


def train_teacher(images, labels, rng, progress=None):
    """A :class:`Teacher` trained on uint8 ``images`` with cross-entropy and Adam,
    :data:`TEACHER_EPOCHS` passes of minibatches of :data:`TEACHER_BATCH`."""
    n_in, n_out = images.shape[1], int(labels.max()) + 1
    scale1, scale2 = np.sqrt(2 / n_in), np.sqrt(2 / TEACHER_HIDDEN)
    teacher = Teacher(rng.normal(0, scale1, (n_in, TEACHER_HIDDEN)).astype(np.float32),
                      np.zeros(TEACHER_HIDDEN, np.float32),
                      rng.normal(0, scale2, (TEACHER_HIDDEN, n_out)).astype(np.float32),
                      np.zeros(n_out, np.float32))
    values = [getattr(teacher, name) for name in Teacher.NAMES]
    moments = [(np.zeros_like(value), np.zeros_like(value)) for value in values]
    step = 0
    for _ in range(TEACHER_EPOCHS):
        order = rng.permutation(images.shape[0])
        for start in range(0, order.size, TEACHER_BATCH):
            batch = order[start:start + TEACHER_BATCH]
            x = images[batch].astype(np.float32) / 255
            hidden = np.maximum(x @ teacher.w1 + teacher.b1, 0)
            d_logits = softmax(hidden @ teacher.w2 + teacher.b2)
            d_logits[np.arange(batch.size), labels[batch]] -= 1
            d_logits /= batch.size
            d_hidden = (d_logits @ teacher.w2.T) * (hidden > 0)
            grads = (x.T @ d_hidden, d_hidden.sum(axis=0), hidden.T @ d_logits,
                     d_logits.sum(axis=0))
            step += 1
            rate = TEACHER_LR * adam_correction(step)
            for value, grad, (m, v) in zip(values, grads, moments, strict=True):
                adam_step(value, grad, m, v, rate)
            if progress is not None:
                progress.update(batch.size)
    return teacher


def soft_predictions(teacher, pixels, temperature):
    """The teacher's ``softmax(logits / temperature)`` of uint8 ``pixels``; float32
    ``(n, 10)``."""
    return softmax(teacher.logits(pixels) / temperature)
