"""The shipped trained networks (``*.npz``) as package data; see
``bs4nn.model.network.SHIPPED_WEIGHTS``."""
