"""The one building block every model here shares: a linear map that records its input.

Convention (what :func:`spectral_jax.diagnostics.capture_activations` relies on):
a module that owns a matrix parameter ``kernel`` of shape ``(fan_in, fan_out)``
sows the activation that matrix multiplies — rows = samples/tokens, columns =
``fan_in`` features — as ``nnx.Intermediate`` under the name ``'inputs'``, on the
same module. Any NNX model that follows this convention gets the layerwise
report for free.

Sowing happens only inside ``nnx.capture``: a plain forward pass (training,
``nnx.jit``, ``nnx.grad``) must stay free of side effects, whereas Flax's
``Module.sow`` outside ``capture`` would attach a growing tuple to the module.
"""

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

Initializer = Callable[..., jax.Array]


class AttentionLogitMax(nnx.Intermediate):
  """Per-head maxima of an attention module's logits, sown as ``'logit_max'``
  (shape ``(..., n_head)``) by a module owning ``q`` and ``k`` projections.
  A type of its own: only ``nnx.capture(model, AttentionLogitMax)`` collects
  it (:mod:`spectral_jax.attention_clip`)."""


def sow(module: nnx.Module, name: str, value, kind=nnx.Intermediate) -> None:
  """``module.sow(kind, name, value)``, but only inside ``nnx.capture``.

  ``kind``: the variable type; ``nnx.capture(model, T)`` collects only values
  sown with type exactly ``T``, so a subclass of ``nnx.Intermediate`` keeps a
  value out of the activation captures (``capture(model, nnx.Intermediate)``).
  """
  # ``nnx.capture`` marks every submodule with ``__captures__`` for the duration
  # of the call; without it, ``Module.sow`` would store (deprecated) state.
  if hasattr(module, "__captures__"):
    module.sow(kind, name, value)


def torch_uniform(key, shape, dtype=jnp.float32) -> jax.Array:
  """PyTorch ``nn.Linear`` default: U(−1/√fan_in, 1/√fan_in), fan_in = shape[-2]."""
  bound = 1.0 / jnp.sqrt(jnp.asarray(shape[-2], jnp.float32))
  return jax.random.uniform(key, shape, dtype, -bound, bound).astype(dtype)


def normal_fan_in(key, shape, dtype=jnp.float32) -> jax.Array:
  """Plain Gaussian N(0, 1/fan_in), fan_in = shape[-2] (paper's Assumption A)."""
  std = 1.0 / jnp.sqrt(jnp.asarray(shape[-2], jnp.float32))
  return (std * jax.random.normal(key, shape, jnp.float32)).astype(dtype)


def zeros(key, shape, dtype=jnp.float32) -> jax.Array:
  del key
  return jnp.zeros(shape, dtype)


class Linear(nnx.Module):
  """y = x W (+ b) with ``W`` of shape (fan_in, fan_out); sows x as ``'inputs'``.

  Args:
    fan_in, fan_out: input and output features.
    use_bias: add a bias (initialised like PyTorch: U(−1/√fan_in, 1/√fan_in)).
    kernel_init: initializer ``(key, shape, dtype) -> array``.
    sow_input: record the input; False where the owner records the paired
      activation itself (the attention output projection, see ``gpt.py``).
    rngs: ``nnx.Rngs`` with a ``params`` stream.
    param_dtype: parameter dtype. dtype: compute dtype (None = that of x / W).
  """

  def __init__(self, fan_in: int, fan_out: int, *, use_bias: bool = False,
               kernel_init: Initializer = torch_uniform,
               sow_input: bool = True, rngs: nnx.Rngs,
               param_dtype=jnp.float32, dtype=None):
    self.kernel = nnx.Param(
        kernel_init(rngs.params(), (fan_in, fan_out), param_dtype))
    if use_bias:
      self.bias = nnx.Param(
          torch_uniform(rngs.params(), (fan_in, fan_out), param_dtype)[0])
    else:
      self.bias = None
    self.sow_input = sow_input
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.sow_input:
      sow(self, "inputs", x)
    w = self.kernel[...]
    if self.dtype is not None:
      x, w = x.astype(self.dtype), w.astype(self.dtype)
    y = x @ w
    if self.bias is not None:
      y = y + self.bias[...].astype(y.dtype)
    return y
