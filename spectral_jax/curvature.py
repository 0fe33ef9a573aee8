"""Curvature of a loss along parameter directions: HVPs and λ_max.

Everything here works on any pytree of parameters (a single matrix, an NNX
``nnx.State``, a dict of layers), because Hessian-vector products are taken by
forward-over-reverse differentiation and never form the Hessian.

Contents:
  * ``hvp``: H(θ)[v] = d/dε ∇L(θ + εv) at ε = 0.
  * ``hessian_lambda_max``: the top Hessian eigenvalue by power iteration.

Paper 2's one-step thresholds built on ``hvp`` (``step_threshold``,
``average_singular_value``) live with the experiments that test them, in
``experiments/lib/thresholds.py``.

References:
  Pearlmutter, *Fast exact multiplication by the Hessian*, Neural Computation
  6(1), 1994.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


__all__ = [
    "hessian_lambda_max",
    "hvp",
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
