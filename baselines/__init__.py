"""Comparison methods (interpolation, pretrained networks, user checkpoints), ZSSR adapters and the weight store.

Importing this package loads no model: methods are registered lazily in `baselines.methods.METHODS`.
"""
