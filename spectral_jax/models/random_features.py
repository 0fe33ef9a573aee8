"""Random-feature regression: the model of §1.2 and §3 of Davis & Drusvyatskiy.

A fixed random first layer produces post-activations ``A = σ(V X)`` (features ×
samples, the paper's convention) and only the readout ``W`` is trained on

.. math::
  L(W) = \\frac{1}{2n} \\|W A - Y\\|_F^2, \\qquad
  \\nabla L(W) = \\frac{1}{n} (W A - Y) A^\\top .

The loss is quadratic, so the two steepest-descent steps of §1.2 are exact
minimisers of upper models with constants ``L_F = ‖A‖_op²/n`` (Frobenius norm on
the step) and ``L_op = ‖A‖_F²/n`` (operator norm on the step); see
:func:`smoothness`.

Contents:
  * functional: ``features``, ``make_problem`` (realizable or teacher–student
    targets), ``rf_loss``, ``rf_grad``, ``smoothness``, ``spiked_gram`` and
    ``gram_grad`` for the spiked model of Lemma 3.5;
  * Flax NNX: ``RandomFeatures`` (fixed ``V`` as a non-trainable variable,
    trainable zero-initialised readout ``W``).

References:
  Davis & Drusvyatskiy, *When do spectral gradient updates help in deep
  learning?*, arXiv:2512.04299, §1.2 and §3.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax import linalg
from spectral_jax.models import layers
from spectral_jax.models.activations import get_activation

__all__ = [
    "FixedFeatures",
    "RFProblem",
    "RandomFeatures",
    "TARGETS",
    "features",
    "gram_grad",
    "make_problem",
    "rf_grad",
    "rf_loss",
    "smoothness",
    "spiked_gram",
]

TARGETS = ("realizable", "teacher_student")


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


class RFProblem(NamedTuple):
  """One random-feature least-squares instance (all matrices samples-last)."""
  x: jax.Array         # (d, n) inputs, iid N(0, 1).
  v: jax.Array         # (k, d) or (2, k, d) student feature weights, N(0, 1/d).
  a: jax.Array         # (k, n) student features σ(V X).
  y: jax.Array         # (m, n) targets.
  w_sharp: jax.Array   # (m, k) teacher readout W♯ ~ N(0, 1/k).
  a_teacher: jax.Array  # (k, n) features the target is built from (= a if realizable).
  activation: str


def make_problem(
    key: jax.Array,
    k: int,
    d: int,
    n: int,
    *,
    m: int | None = None,
    activation: str = "relu",
    target: str = "realizable",
    dtype=jnp.float64,
) -> RFProblem:
  r"""A random-feature regression instance as in the paper's code.

  ``X ~ N(0, 1)`` (d×n), ``V ~ N(0, 1/d)`` (k×d; two independent ones for
  ``"swiglu"``), ``A = σ(V X)``, ``W♯ ~ N(0, 1/k)`` (m×k) and

  * ``target="realizable"``: ``Y = W♯ A`` (so the minimum loss is 0);
  * ``target="teacher_student"`` (Model II, (3.14)): a separate teacher
    ``V̄ ~ N(0, 1/d)`` gives ``Ā = σ(V̄ X)`` and ``Y = W♯ Ā``.

  Args:
    key: a JAX PRNG key.
    k: number of features (rows of A); d: input dimension; n: samples.
    m: output dimension (rows of W and Y); default ``k`` as in the paper.
    activation: feature activation (see :func:`features`).
    target: ``"realizable"`` or ``"teacher_student"``.
    dtype: floating dtype of every array (the paper uses float64).

  Returns:
    An :class:`RFProblem`.
  """
  for name, val in (("k", k), ("d", d), ("n", n)):
    if not isinstance(val, int) or val < 1:
      raise ValueError(f"{name} must be a positive int, got {val!r}.")
  if target not in TARGETS:
    raise ValueError(f"target={target!r} is not allowed; choose from {TARGETS}.")
  m = k if m is None else m
  kx, kv, kw, kt = jax.random.split(key, 4)
  vshape = (2, k, d) if activation == "swiglu" else (k, d)
  x = jax.random.normal(kx, (d, n), dtype)
  v = jax.random.normal(kv, vshape, dtype) / jnp.sqrt(jnp.asarray(d, dtype))
  a = features(v, x, activation)
  w_sharp = jax.random.normal(kw, (m, k), dtype) / jnp.sqrt(
      jnp.asarray(k, dtype))
  if target == "realizable":
    a_teacher = a
  else:
    v_teacher = jax.random.normal(kt, vshape, dtype) / jnp.sqrt(
        jnp.asarray(d, dtype))
    a_teacher = features(v_teacher, x, activation)
  return RFProblem(x=x, v=v, a=a, y=w_sharp @ a_teacher, w_sharp=w_sharp,
                   a_teacher=a_teacher, activation=activation)


def rf_loss(w: jax.Array, a: jax.Array, y: jax.Array) -> jax.Array:
  r"""``L(W) = ‖W A − Y‖_F² / (2n)`` with ``n = a.shape[-1]``."""
  r = w @ a - y
  return jnp.sum(r * r) / (2 * a.shape[-1])


def rf_grad(w: jax.Array, a: jax.Array, y: jax.Array) -> jax.Array:
  r"""``∇L(W) = (W A − Y) Aᵀ / n``."""
  return (w @ a - y) @ a.T / a.shape[-1]


def smoothness(a: jax.Array) -> tuple[jax.Array, jax.Array]:
  r"""The two curvature constants of (1.4): ``(L_F, L_op)``.

  .. math::
    \tfrac1n\|UA\|_F^2 \le L_F \|U\|_F^2, \; L_F = \|A\|_{op}^2/n;
    \qquad \tfrac1n\|UA\|_F^2 \le L_{op} \|U\|_{op}^2, \;
    L_{op} = \|A\|_F^2/n.

  GD's step is ``1/L_F`` and SpecGD's is ``‖G‖_*/L_op`` along ``polar(G)``;
  their ratio of guaranteed decreases is ``nr(G)/st(A)``.
  """
  n = a.shape[-1]
  s = linalg.singular_values(a)
  return s[..., 0] ** 2 / n, jnp.sum(s**2, -1) / n


class SpikedGram(NamedTuple):
  """``B = u uᵀ + diag(sigma)`` (Assumption E)."""
  b: jax.Array      # (d, d)
  u: jax.Array      # (d,), ‖u‖² = spike_norm2
  sigma: jax.Array  # (d,) bulk eigenvalues


def spiked_gram(key: jax.Array, d: int, *, spike_norm2: float | None = None,
                bulk=(1.0, 2.0), dtype=jnp.float64) -> SpikedGram:
  r"""A synthetic spiked Gram matrix ``B = u uᵀ + Σ`` for Lemma 3.5.

  ``u`` has a uniformly random direction and ``‖u‖² = spike_norm2`` (default
  ``d``, the ``‖u‖² ≍ d`` of Assumption E); ``Σ = diag(s)`` with
  ``s_i ~ U[bulk]``, so ``c_1 I ⪯ Σ ⪯ c_2 I``.
  """
  if not isinstance(d, int) or d < 1:
    raise ValueError(f"d must be a positive int, got {d!r}.")
  lo, hi = bulk
  if not 0 < lo <= hi:
    raise ValueError(f"bulk must satisfy 0 < lo <= hi, got {bulk!r}.")
  ku, ks = jax.random.split(key)
  u = jax.random.normal(ku, (d,), dtype)
  norm2 = float(d) if spike_norm2 is None else float(spike_norm2)
  u = u * jnp.sqrt(norm2) / jnp.linalg.norm(u)
  sigma = jax.random.uniform(ks, (d,), dtype, lo, hi)
  return SpikedGram(b=jnp.outer(u, u) + jnp.diag(sigma), u=u, sigma=sigma)


def gram_grad(w: jax.Array, w_sharp: jax.Array, b: jax.Array) -> jax.Array:
  r"""Realizable gradient through the Gram matrix: ``∇L(W) = (W − W♯) B``.

  With ``B = AAᵀ/n`` and ``Y = W♯A`` this equals :func:`rf_grad`.
  """
  return (w - w_sharp) @ b


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
