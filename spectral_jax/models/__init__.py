"""Flax NNX models: random features, MLP, GPT. They know nothing of optimizers;
activations are exposed through ``nnx.sow`` (see ``layers.py`` for the convention)."""

from spectral_jax.models.activations import ACTIVATIONS
from spectral_jax.models.activations import get_activation
from spectral_jax.models.gpt import GPT
from spectral_jax.models.gpt import GPTConfig
from spectral_jax.models.layers import Linear
from spectral_jax.models.mlp import MLP

__all__ = [
    "ACTIVATIONS",
    "GPT",
    "GPTConfig",
    "Linear",
    "MLP",
    "get_activation",
]
