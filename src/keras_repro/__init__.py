"""Prove, or disprove, that Keras training is bit-reproducible."""
