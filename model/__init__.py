"""Golden model: data, network file format, bit packing, exact inference, training."""
