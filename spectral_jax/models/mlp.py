"""Bias-free MLP of the paper's sparse-regression experiments (E4, E5).

    a_0 = x,   a_ℓ = σ(a_{ℓ−1} W_ℓ)  (ℓ < L),   f(x) = a_{L−1} W_L

with W_ℓ of shape (fan_in, fan_out) (Flax convention, samples are rows).
Each ``Linear`` sows its incoming activation a_{ℓ−1} as ``'inputs'`` and each
hidden layer sows its pre-activation z_ℓ = a_{ℓ−1} W_ℓ as ``'preactivation'``
(both only inside ``nnx.capture``), which is what the layerwise condition
nr(G_ℓ) ≥ st(A_{ℓ−1}) compares.

SwiGLU hidden layers (E5) are one ``Linear`` to 2·h outputs split into
(z_1, z_2), giving silu(z_1)·z_2, as in the authors' code.

References:
  Davis & Drusvyatskiy, arXiv:2512.04299, §1.2.1 and Appendix A.
  Shazeer, *GLU variants improve Transformer*, arXiv:2002.05202.
"""

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax.models import layers
from spectral_jax.models.activations import ACTIVATIONS
from spectral_jax.models.activations import get_activation

_INITS = {
    # PyTorch nn.Linear default, what the paper's E4/E5 code uses.
    "torch": layers.torch_uniform,
    "lecun": nnx.initializers.lecun_normal(),
}


class MLP(nnx.Module):
  """Fully connected network ``widths[0] → … → widths[-1]``.

  Args:
    widths: (d_in, h_1, …, d_out); at least two entries.
    activation: one of 'relu', 'relu2', 'abs', 'gelu', 'silu', 'tanh',
      'sigmoid', 'swiglu'. None after the last layer.
    init: 'torch' (U(−1/√fan_in, 1/√fan_in)) or 'lecun' (lecun_normal).
    use_bias: add biases (the paper's networks have none).
    rngs: ``nnx.Rngs``.
    param_dtype: parameter dtype.
  """

  def __init__(self, widths: Sequence[int], activation: str = "relu2", *,
               init: str = "torch", use_bias: bool = False, rngs: nnx.Rngs,
               param_dtype=jnp.float32):
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2 or min(widths) < 1:
      raise ValueError(
          f"widths must hold at least two positive ints, got {widths}.")
    if activation != "swiglu" and activation not in ACTIVATIONS:
      raise ValueError(
          f"activation must be one of {sorted([*ACTIVATIONS, 'swiglu'])}, "
          f"got {activation!r}.")
    if init not in _INITS:
      raise ValueError(f"init must be one of {sorted(_INITS)}, got {init!r}.")
    self.widths = widths
    self.activation = activation
    gate = 2 if activation == "swiglu" else 1
    n = len(widths) - 1
    self.layers = nnx.List([
        layers.Linear(widths[i], widths[i + 1] * (gate if i < n - 1 else 1),
                      use_bias=use_bias, kernel_init=_INITS[init], rngs=rngs,
                      param_dtype=param_dtype)
        for i in range(n)
    ])

  def _act(self, z: jax.Array) -> jax.Array:
    if self.activation == "swiglu":
      z1, z2 = jnp.split(z, 2, axis=-1)
      return jax.nn.silu(z1) * z2
    return get_activation(self.activation)(z)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps x of shape (n, d_in) to (n, d_out)."""
    *hidden, last = self.layers
    for layer in hidden:
      z = layer(x)
      layers.sow(layer, "preactivation", z)
      x = self._act(z)
    return last(x)
