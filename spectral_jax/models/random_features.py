"""Random-feature model: the model of §1.2 and §3 of Davis & Drusvyatskiy.

A fixed random first layer produces post-activations ``A = σ(V X)`` (features ×
samples, the paper's convention) and only the readout ``W`` is trained on

.. math::
  L(W) = \\frac{1}{2n} \\|W A - Y\\|_F^2, \\qquad
  \\nabla L(W) = \\frac{1}{n} (W A - Y) A^\\top .

Contents:
  * functional: ``features``;
  * Flax NNX: ``RandomFeatures`` (fixed ``V`` as a non-trainable variable,
    trainable zero-initialised readout ``W``).

The paper's problem generator (``make_problem``, ``rf_loss``, ``rf_grad``,
``smoothness``, the spiked model of Lemma 3.5) lives with the experiments, in
``experiments/lib/random_features.py``.

References:
  Davis & Drusvyatskiy, *When do spectral gradient updates help in deep
  learning?*, arXiv:2512.04299, §1.2 and §3.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax.models import layers
from spectral_jax.models.activations import get_activation

__all__ = [
    "FixedFeatures",
    "RandomFeatures",
    "features",
]


def _check_v(v, activation: str):
  v = jnp.asarray(v)
  if activation == "swiglu":
    if v.ndim != 3 or v.shape[0] != 2:
      raise ValueError(
          "activation='swiglu' needs v of shape (2, k, d) (gate and value "
          f"weights), got shape {v.shape}.")
  elif v.ndim != 2:
    raise ValueError(f"v must have shape (k, d), got shape {v.shape}.")
  return v


def features(v: jax.Array, x: jax.Array, activation: str = "relu") -> jax.Array:
  r"""Post-activations ``A = σ(V X)``, features × samples.

  For ``activation="swiglu"`` the two stacked weights ``v = (V_1, V_2)`` give
  ``A = SiLU(V_1 X) ⊙ (V_2 X)`` (a gated, nearly centred activation).

  Args:
    v: ``(k, d)`` feature weights, or ``(2, k, d)`` for ``"swiglu"``.
    x: ``(d, n)`` inputs, one sample per column.
    activation: a name understood by
      :func:`spectral_jax.models.activations.get_activation`, or ``"swiglu"``.

  Returns:
    ``(k, n)`` array.
  """
  v = _check_v(v, activation)
  x = jnp.asarray(x)
  if x.ndim != 2 or x.shape[0] != v.shape[-1]:
    raise ValueError(
        f"x must have shape (d, n) with d = {v.shape[-1]} (v's last axis), "
        f"got shape {x.shape}.")
  if activation == "swiglu":
    return jax.nn.silu(v[0] @ x) * (v[1] @ x)
  return get_activation(activation)(v @ x)


# --------------------------------------------------------------------------
# Flax NNX module
# --------------------------------------------------------------------------
class FixedFeatures(nnx.Variable):
  """Random feature weights that are part of the model but never trained."""


class RandomFeatures(nnx.Module):
  """Random-feature model ``f(x) = W σ(V x)`` with ``V`` fixed.

  Batch-first like every NNX layer: ``x`` has shape ``(batch, in_features)``
  and the output ``(batch, out_features)``. The features are sown as
  ``nnx.Intermediate`` under ``"inputs"`` (shape ``(batch, num_features)``,
  inside ``nnx.capture`` only; see ``layers.py``), the readout's incoming
  activation, so diagnostics can read ``A`` without the model carrying any
  plumbing.

  Args:
    in_features: d.
    num_features: k.
    out_features: m.
    activation: feature activation name, or ``"swiglu"``.
    rngs: ``nnx.Rngs`` (stream ``params``) for ``V ~ N(0, 1/d)``.
    dtype: parameter dtype.
  """

  def __init__(self, in_features: int, num_features: int, out_features: int,
               *, activation: str = "relu", rngs: nnx.Rngs,
               dtype=jnp.float32):
    if activation != "swiglu":
      get_activation(activation)  # Fail early on an unknown name.
    self.activation = activation
    shape = ((2, num_features, in_features) if activation == "swiglu"
             else (num_features, in_features))
    v = jax.random.normal(rngs.params(), shape, dtype) / jnp.sqrt(
        jnp.asarray(in_features, dtype))
    self.v = FixedFeatures(v)
    # Zeros, as the paper starts every random-feature run from W_0 = 0.
    self.w = nnx.Param(jnp.zeros((out_features, num_features), dtype))

  def __call__(self, x: jax.Array) -> jax.Array:
    a = features(self.v[...], x.T, self.activation)  # (k, batch)
    layers.sow(self, "inputs", a.T)
    return (self.w[...] @ a).T
