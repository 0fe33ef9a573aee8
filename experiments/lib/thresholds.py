r"""Paper 2's one-step descent thresholds (Nguyen et al., arXiv:2605.13079).

Paper 2 states only that Muon's maximal stable step scales with the gradient's
*average* singular value where GD's scales with ``1/λ_max``; its derivation is
not published. The formulas here are the reconstruction the stability and
dual-optimizer experiments test (a quadratic model of the loss; paper 2's
abstract and its quoted threshold ``η_max = (2/λ_max)·σ̄(G)``), moved out of the
library because they are that paper's, not a user tool.

Contents:
  * ``step_threshold``: the exact one-step descent threshold of a quadratic
    model along a direction, 2⟨∇L, D⟩ / ⟨D, H[D]⟩ (HVP from
    :func:`spectral_jax.curvature.hvp`).
  * ``average_singular_value``: σ̄(G) = ‖G‖_* / rank(G), the factor by which
    Muon's worst-case threshold exceeds GD's 2/λ_max.

References:
  Nguyen et al., *Spectral Flattening Is All Muon Needs*, arXiv:2605.13079
  (abstract: "Muon's maximal stable step size scales with the average singular
  value of the gradient").
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from spectral_jax import curvature
from spectral_jax import linalg

__all__ = [
    "average_singular_value",
    "step_threshold",
]

PyTree = Any


def step_threshold(loss_fn: Callable[[PyTree], jax.Array], params: PyTree,
                   direction: PyTree) -> jax.Array:
  r"""Exact one-step descent threshold of the quadratic model along ``-D``.

  For ``L(θ − ηD) ≈ L(θ) − η⟨∇L, D⟩ + (η²/2)⟨D, H[D]⟩`` the loss decreases
  iff ``0 < η < η*`` with

  .. math::
    \eta^* = \frac{2 \langle \nabla L(\theta), D \rangle}{\langle D, H[D] \rangle}.

  ``D = ∇L`` gives GD's ``2‖G‖_F²/⟨G, H[G]⟩ ≥ 2/λ_max``; ``D = polar(G)``
  gives Muon's ``2‖G‖_*/⟨O, H[O]⟩`` (paper 2's exact threshold, as
  reconstructed from its abstract). Returns ``inf`` where the curvature along
  D is not positive (no finite threshold) and 0 where D is not a descent
  direction.

  Args:
    loss_fn: scalar function of ``params``.
    params: pytree.
    direction: pytree like ``params``.

  Returns:
    Scalar array η*.
  """
  grad = jax.grad(loss_fn)(params)
  slope = optax.tree.vdot(grad, direction)
  curv = optax.tree.vdot(direction,
                         curvature.hvp(loss_fn, params, direction))
  safe = jnp.where(curv > 0, curv, 1.0)
  return jnp.where(curv > 0, jnp.maximum(2.0 * slope / safe, 0.0), jnp.inf)


def average_singular_value(g: jax.Array, *, rtol: float | None = None
                           ) -> jax.Array:
  r"""σ̄(G) = ‖G‖_* / rank(G), the mean of the nonzero singular values.

  With ``⟨G, polar(G)⟩ = ‖G‖_*`` and ``⟨O, H[O]⟩ ≤ λ_max rank(G)``, Muon
  without momentum descends for every Hessian with top eigenvalue λ_max when
  ``η < 2σ̄(G)/λ_max`` (a reconstruction of paper 2's bound, arXiv:2605.13079).
  Singular values at or below ``rtol · σ_1`` do not count toward the rank
  (default ``max(m, n) · eps``). Zero for G = 0. Batched over leading axes.
  """
  s = linalg.singular_values(g)
  if rtol is None:
    rtol = max(g.shape[-2:]) * float(jnp.finfo(s.dtype).eps)
  rank = jnp.sum(s > rtol * s[..., :1], axis=-1)
  return jnp.where(rank > 0, jnp.sum(s, -1) / jnp.maximum(rank, 1), 0.0)
