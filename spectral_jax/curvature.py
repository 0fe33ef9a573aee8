"""Curvature of a loss along parameter directions: HVPs, λ_max and step thresholds.

Everything here works on any pytree of parameters (a single matrix, an NNX
``nnx.State``, a dict of layers), because Hessian-vector products are taken by
forward-over-reverse differentiation and never form the Hessian.

Contents:
  * ``hvp``: H(θ)[v] = d/dε ∇L(θ + εv) at ε = 0.
  * ``hessian_lambda_max``: the top Hessian eigenvalue by power iteration.
  * ``step_threshold``: the exact one-step descent threshold of a quadratic
    model along a direction, 2⟨∇L, D⟩ / ⟨D, H[D]⟩.
  * ``average_singular_value``: σ̄(G) = ‖G‖_* / rank(G), the factor by which
    Muon's worst-case threshold exceeds GD's 2/λ_max.

References:
  Pearlmutter, *Fast exact multiplication by the Hessian*, Neural Computation
  6(1), 1994.
  Nguyen et al., *Spectral Flattening Is All Muon Needs*, arXiv:2605.13079.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from spectral_jax import linalg

__all__ = [
    "average_singular_value",
    "hessian_lambda_max",
    "hvp",
    "step_threshold",
]

PyTree = Any


def hvp(loss_fn: Callable[[PyTree], jax.Array], params: PyTree,
        v: PyTree) -> PyTree:
  r"""Hessian-vector product ``H(θ)[v]`` by forward-over-reverse AD.

  .. math::
    H(\theta)[v] = \frac{d}{d\varepsilon} \nabla L(\theta + \varepsilon v)
    \Big|_{\varepsilon = 0}

  computed as ``jax.jvp(jax.grad(loss_fn), (params,), (v,))``: one forward
  and one backward pass, memory of one gradient, no Hessian formed.

  Args:
    loss_fn: scalar function of ``params``.
    params: pytree at which the Hessian is taken.
    v: pytree with the structure, shapes and dtypes of ``params``.

  Returns:
    Pytree like ``params``: H(θ)[v].
  """
  return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def _tree_normalize(v):
  norm = optax.tree.norm(v)
  # A zero vector (zero Hessian, or an unlucky start) stays zero, not NaN.
  scale = jnp.where(norm > 0, 1.0 / jnp.where(norm > 0, norm, 1.0), 0.0)
  return optax.tree.scale(scale, v), norm


def hessian_lambda_max(loss_fn: Callable[[PyTree], jax.Array], params: PyTree,
                       *, iters: int = 50, key: jax.Array,
                       return_vector: bool = False):
  r"""Largest-magnitude Hessian eigenvalue by power iteration on HVPs.

  .. math::
    v_{t+1} = H[v_t] / \|H[v_t]\|, \qquad
    \lambda = \langle v_T, H[v_T] \rangle

  The Rayleigh quotient of the last iterate is returned, so the sign is kept
  (a saddle with a dominant negative direction gives a negative value). The
  error of the Rayleigh quotient decays like (λ_2/λ_1)^{2t}.

  Args:
    loss_fn: scalar function of ``params``.
    params: pytree at which the Hessian is taken.
    iters: number of power iterations (>= 1).
    key: PRNG key for the random start vector.
    return_vector: also return the unit eigenvector estimate.

  Returns:
    λ as a scalar array, or ``(λ, v)`` if ``return_vector``.

  Raises:
    ValueError: ``iters`` is not a positive int.
  """
  if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
    raise ValueError(f"iters must be an int >= 1, got {iters!r}.")

  # params is an argument, not a closed-over constant: XLA would otherwise
  # try to constant-fold the whole forward pass at compile time.
  @jax.jit
  def run(params, key):
    h = lambda v: hvp(loss_fn, params, v)
    v0, _ = _tree_normalize(optax.tree.random_like(key, params))
    v = jax.lax.fori_loop(0, iters, lambda _, v: _tree_normalize(h(v))[0], v0)
    return optax.tree.vdot(v, h(v)), v

  lam, v = run(params, key)
  return (lam, v) if return_vector else lam


def step_threshold(loss_fn: Callable[[PyTree], jax.Array], params: PyTree,
                   direction: PyTree) -> jax.Array:
  r"""Exact one-step descent threshold of the quadratic model along ``-D``.

  For ``L(θ − ηD) ≈ L(θ) − η⟨∇L, D⟩ + (η²/2)⟨D, H[D]⟩`` the loss decreases
  iff ``0 < η < η*`` with

  .. math::
    \eta^* = \frac{2 \langle \nabla L(\theta), D \rangle}{\langle D, H[D] \rangle}.

  ``D = ∇L`` gives GD's ``2‖G‖_F²/⟨G, H[G]⟩ ≥ 2/λ_max``; ``D = polar(G)``
  gives Muon's ``2‖G‖_*/⟨O, H[O]⟩`` (paper 2's exact threshold, as
  reconstructed in SPEC §3.2). Returns ``inf`` where the curvature along D is
  not positive (no finite threshold) and 0 where D is not a descent direction.

  Args:
    loss_fn: scalar function of ``params``.
    params: pytree.
    direction: pytree like ``params``.

  Returns:
    Scalar array η*.
  """
  grad = jax.grad(loss_fn)(params)
  slope = optax.tree.vdot(grad, direction)
  curv = optax.tree.vdot(direction, hvp(loss_fn, params, direction))
  safe = jnp.where(curv > 0, curv, 1.0)
  return jnp.where(curv > 0, jnp.maximum(2.0 * slope / safe, 0.0), jnp.inf)


def average_singular_value(g: jax.Array, *, rtol: float | None = None
                           ) -> jax.Array:
  r"""σ̄(G) = ‖G‖_* / rank(G), the mean of the nonzero singular values.

  With ``⟨G, polar(G)⟩ = ‖G‖_*`` and ``⟨O, H[O]⟩ ≤ λ_max rank(G)``, Muon
  without momentum descends for every Hessian with top eigenvalue λ_max when
  ``η < 2σ̄(G)/λ_max`` (SPEC §3.2, a reconstruction of paper 2's bound).
  Singular values at or below ``rtol · σ_1`` do not count toward the rank
  (default ``max(m, n) · eps``). Zero for G = 0. Batched over leading axes.
  """
  s = linalg.singular_values(g)
  if rtol is None:
    rtol = max(g.shape[-2:]) * float(jnp.finfo(s.dtype).eps)
  rank = jnp.sum(s > rtol * s[..., :1], axis=-1)
  return jnp.where(rank > 0, jnp.sum(s, -1) / jnp.maximum(rank, 1), 0.0)
