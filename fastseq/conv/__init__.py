"""Convolutional autoencoders trained layer by layer (faces)."""

__all__: list[str] = []
