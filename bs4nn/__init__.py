"""bs4nn: binarized time-to-first-spike networks, from training to a verified FPGA accelerator."""

__version__ = "0.1.0"
