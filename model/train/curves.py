"""The training curves: one PNG of the per-epoch history."""

from pathlib import Path

from ..network import atomic_write

__all__ = ["plot_curves"]


def plot_curves(history, path, title):
    """Training curves: accuracies, loss, mean decision step and no-fire fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(epochs, [r["train"] for r in history], label="train (exact)")
    axes[0].plot(epochs, [r["validation"] for r in history], label="validation strict")
    axes[0].plot(epochs, [r["validation_lenient"] for r in history], "--",
                 label="validation lenient")
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    axes[1].plot(epochs, [r["loss"] for r in history])
    axes[1].set_ylabel("training loss")
    axes[2].plot(epochs, [r["mean_step"] for r in history], label="mean decision step")
    axes[2].set_ylabel("step")
    twin = axes[2].twinx()
    twin.plot(epochs, [r["no_fire"] for r in history], "r:", label="no-fire fraction")
    twin.set_ylabel("no-fire fraction")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100)
    plt.close(figure)
