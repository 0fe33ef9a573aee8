"""A small CNN for image classification (a "CIFAR-Net"-sized stand-in).

    x → [conv 3×3 → ReLU → max-pool 2×2] × len(channels) → global mean pool
      → hidden Linear → ReLU → head Linear → logits

Conv kernels are Flax's (kh, kw, in, out): as a matrix, fan_in = kh·kw·in and
fan_out = out, i.e. ``MuonDimensionNumbers(reduction_axis=(0, 1, 2),
output_axis=3)`` (what ``spectral_jax.labels.nnx_dimension_numbers`` gives with
``conv='flatten'``). The last layer is named ``head`` so that the labelling
helpers leave it to the non-spectral optimizer. The model knows nothing of
optimizers; the dense layers sow their inputs (``layers.Linear``) for the
layerwise diagnostics.

References:
  Nguyen et al., *Spectral Flattening Is All Muon Needs*, arXiv:2605.13079
  (a small CIFAR-10 CNN; its exact architecture is not public).
"""

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax.models import layers


class CNN(nnx.Module):
  """Conv blocks, global mean pool, one hidden dense layer and a head.

  Args:
    in_channels: image channels (1 for digits, 3 for CIFAR-10).
    num_classes: number of logits.
    channels: output channels of each conv block (each block halves H, W).
    hidden: width of the dense layer before the head (0: none).
    rngs: ``nnx.Rngs`` with a ``params`` stream.
    param_dtype: parameter dtype.
  """

  def __init__(self, in_channels: int, num_classes: int, *,
               channels: Sequence[int] = (32, 64), hidden: int = 128,
               rngs: nnx.Rngs, param_dtype=jnp.float32):
    channels = tuple(int(c) for c in channels)
    if in_channels < 1 or num_classes < 1 or not channels or \
        min(channels) < 1 or hidden < 0:
      raise ValueError(
          "in_channels, num_classes and every channel count must be >= 1 and "
          f"hidden >= 0, got in_channels={in_channels}, num_classes="
          f"{num_classes}, channels={channels}, hidden={hidden}.")
    widths = (in_channels, *channels)
    self.convs = nnx.List([
        nnx.Conv(c_in, c_out, kernel_size=(3, 3), padding="SAME",
                 param_dtype=param_dtype, rngs=rngs)
        for c_in, c_out in zip(widths[:-1], widths[1:])])
    if hidden:
      self.hidden = layers.Linear(channels[-1], hidden, use_bias=True,
                                  kernel_init=nnx.initializers.lecun_normal(),
                                  rngs=rngs, param_dtype=param_dtype)
    else:
      self.hidden = None
    self.head = layers.Linear(hidden or channels[-1], num_classes,
                              use_bias=True,
                              kernel_init=nnx.initializers.lecun_normal(),
                              rngs=rngs, param_dtype=param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: (B, H, W, C) images → (B, num_classes) logits."""
    if x.ndim != 4:
      raise ValueError(f"x must have shape (B, H, W, C), got {x.shape}.")
    for conv in self.convs:
      x = jax.nn.relu(conv(x))
      # Pool only while there is something to pool (8×8 digits allow three).
      if x.shape[1] >= 2 and x.shape[2] >= 2:
        x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = jnp.mean(x, axis=(1, 2))
    if self.hidden is not None:
      x = jax.nn.relu(self.hidden(x))
    return self.head(x)
