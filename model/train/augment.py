"""Augmentation of the training images: random shifts and left-right flips."""

import numpy as np

__all__ = ["shift_images", "flip_images", "IMAGE_SIDE"]

IMAGE_SIDE = 28


def flip_images(images, rng):
    """Mirror a random half of the 28 x 28 ``images`` left to right."""
    flipped = rng.random(images.shape[0]) < 0.5
    out = images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE).copy()
    out[flipped] = out[flipped, :, ::-1]
    return out.reshape(images.shape)


def shift_images(images, rng, max_shift):
    """Shift each 28 x 28 image by a random ``-max_shift..max_shift`` pixels in x and y."""
    if max_shift == 0:
        return images
    n = images.shape[0]
    padded = np.zeros((n, IMAGE_SIDE + 2 * max_shift, IMAGE_SIDE + 2 * max_shift), np.uint8)
    padded[:, max_shift:-max_shift, max_shift:-max_shift] = images.reshape(n, IMAGE_SIDE,
                                                                          IMAGE_SIDE)
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    rows = dy[:, None] + np.arange(IMAGE_SIDE)
    cols = dx[:, None] + np.arange(IMAGE_SIDE)
    out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.reshape(n, -1)
