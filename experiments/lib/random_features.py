"""Random-feature regression problems of Davis & Drusvyatskiy, §1.2 and §3.

The experiments' problem generator (moved out of the library, issue 15): the
loss

.. math::
  L(W) = \\frac{1}{2n} \\|W A - Y\\|_F^2, \\qquad
  \\nabla L(W) = \\frac{1}{n} (W A - Y) A^\\top

on post-activations ``A = σ(V X)`` (features × samples) from
:func:`spectral_jax.models.random_features.features`. The loss is quadratic, so
the two steepest-descent steps of §1.2 are exact minimisers of upper models
with constants ``L_F = ‖A‖_op²/n`` and ``L_op = ‖A‖_F²/n``
(:func:`smoothness`).

Contents: ``make_problem`` (realizable or teacher–student targets),
``rf_loss``, ``rf_grad``, ``smoothness``, ``spiked_gram`` and ``gram_grad``
for the spiked model of Lemma 3.5; ``features`` is the library's, re-exported.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from spectral_jax import linalg
from spectral_jax.models.random_features import features

__all__ = [
    "RFProblem",
    "SpikedGram",
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
