"""Golden model: data, network file format, bit packing, exact inference, evaluation, ROM
export, reference import, rasters, training."""
