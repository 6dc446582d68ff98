"""Amaranth generator of the streaming BS4NN accelerator."""
