"""Tests for experiments/lib/thresholds.py (paper 2's one-step descent
thresholds, moved out of spectral_jax.curvature with their tests unchanged)
against closed forms on quadratics.

References are NumPy float64. On the random-feature quadratic
L(W) = ‖WA − Y‖_F²/(2n) the Hessian is H[V] = V (AAᵀ/n), so the one-step
thresholds have closed forms; float64 on both sides, so only rounding differs
(rtol 1e-10).
"""

import jax.numpy as jnp
import numpy as np

from experiments.lib import thresholds
from references import rf_quadratic


def test_thresholds_closed_form_and_bound(rng):
  loss, a, y, n = rf_quadratic(rng)
  k = a.shape[0]
  w0 = jnp.zeros((k, k))
  b = a @ a.T / n
  g = -(y @ a.T) / n  # ∇L(0)
  lam = np.linalg.eigvalsh(b)[-1]
  eta_gd = float(thresholds.step_threshold(loss, w0, jnp.asarray(g)))
  np.testing.assert_allclose(eta_gd, 2 * np.sum(g * g) / np.trace(g @ b @ g.T),
                             rtol=1e-10)
  assert eta_gd >= 2 / lam * (1 - 1e-12)
  u, s, vt = np.linalg.svd(g)
  o = u @ vt
  eta_mu = float(thresholds.step_threshold(loss, w0, jnp.asarray(o)))
  np.testing.assert_allclose(eta_mu, 2 * s.sum() / np.trace(o @ b @ o.T),
                             rtol=1e-10)
  sbar = float(thresholds.average_singular_value(jnp.asarray(g)))
  np.testing.assert_allclose(sbar, s.mean(), rtol=1e-10)
  # The average-σ bound is a worst case over Hessians: never above the exact one.
  assert 2 * sbar / lam <= eta_mu * (1 + 1e-10)


def test_step_threshold_nonpositive_curvature():
  loss = lambda x: -0.5 * jnp.sum(x**2)
  assert np.isinf(float(thresholds.step_threshold(loss, jnp.ones(2),
                                                 jnp.ones(2))))


def test_average_singular_value_rank_deficient_and_zero(rng):
  u = rng.standard_normal((8, 1))
  g = u @ rng.standard_normal((1, 5)) * 3
  np.testing.assert_allclose(float(thresholds.average_singular_value(
      jnp.asarray(g))), np.linalg.norm(g, 2), rtol=1e-10)
  assert float(thresholds.average_singular_value(jnp.zeros((3, 4)))) == 0.0
