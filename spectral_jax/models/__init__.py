"""Flax NNX models: random features, MLP, GPT, CNN, ViT. They know nothing of optimizers;
activations are exposed through ``nnx.sow`` (see ``layers.py`` for the convention)."""

from spectral_jax.models.activations import ACTIVATIONS
from spectral_jax.models.activations import get_activation
from spectral_jax.models.cnn import CNN
from spectral_jax.models.gpt import GPT
from spectral_jax.models.gpt import GPTConfig
from spectral_jax.models.layers import Linear
from spectral_jax.models.mlp import MLP
from spectral_jax.models.random_features import RandomFeatures
from spectral_jax.models.vit import ViT
from spectral_jax.models.vit import ViTConfig

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "GPT",
    "GPTConfig",
    "Linear",
    "MLP",
    "RandomFeatures",
    "ViT",
    "ViTConfig",
    "get_activation",
]
