"""Tests for spectral_jax.curvature against closed forms on quadratics.

References are NumPy float64. On the random-feature quadratic
L(W) = ‖WA − Y‖_F²/(2n) the Hessian is H[V] = V (AAᵀ/n), so HVPs, λ_max and
the one-step thresholds all have closed forms (the thresholds, paper 2's,
are tested in tests/test_experiments_thresholds.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax import curvature
from references import rf_quadratic


def test_hvp_matches_closed_form(rng):
  loss, a, _, n = rf_quadratic(rng)
  w = rng.standard_normal((a.shape[0], a.shape[0]))
  v = rng.standard_normal(w.shape)
  got = curvature.hvp(loss, jnp.asarray(w), jnp.asarray(v))
  # float64 on both sides: only rounding differs.
  np.testing.assert_allclose(np.asarray(got), v @ (a @ a.T) / n, rtol=1e-10,
                             atol=1e-10)


def test_hvp_on_pytree(rng):
  # Coupled two-leaf quadratic L = ½ xᵀPx + xᵀQz + ½ zᵀRz: H is the block matrix.
  p, q, r = (rng.standard_normal((4, 4)) for _ in range(3))
  p, r = p @ p.T, r @ r.T
  loss = lambda t: (0.5 * t["x"] @ p @ t["x"] + t["x"] @ q @ t["z"]
                    + 0.5 * t["z"] @ r @ t["z"])
  params = {"x": jnp.asarray(rng.standard_normal(4)),
            "z": jnp.asarray(rng.standard_normal(4))}
  vx, vz = rng.standard_normal(4), rng.standard_normal(4)
  got = curvature.hvp(loss, params, {"x": jnp.asarray(vx), "z": jnp.asarray(vz)})
  np.testing.assert_allclose(got["x"], p @ vx + q @ vz, rtol=1e-10)
  np.testing.assert_allclose(got["z"], q.T @ vx + r @ vz, rtol=1e-10)


def test_lambda_max_matches_closed_form(rng):
  loss, a, _, n = rf_quadratic(rng)
  w0 = jnp.zeros((a.shape[0], a.shape[0]))
  lam = curvature.hessian_lambda_max(
      loss, w0, iters=200, key=jax.random.key(int(rng.integers(1 << 30))))
  ref = np.linalg.eigvalsh(a @ a.T / n)[-1]
  # ReLU features have a dominant spike (λ_1/λ_2 ≫ 1), so 200 iterations
  # converge to rounding; 1e-8 leaves room for a smaller gap on some draws.
  np.testing.assert_allclose(float(lam), ref, rtol=1e-8)


def test_lambda_max_keeps_sign_and_vector(rng):
  q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
  eig = np.array([-5.0, 1.0, 0.5, 0.2, 0.1, -0.3])
  h = q @ np.diag(eig) @ q.T
  loss = lambda x: 0.5 * x @ jnp.asarray(h) @ x
  lam, v = curvature.hessian_lambda_max(loss, jnp.zeros(6), iters=300,
                                        key=jax.random.key(0),
                                        return_vector=True)
  np.testing.assert_allclose(float(lam), -5.0, rtol=1e-8)
  np.testing.assert_allclose(abs(np.dot(np.asarray(v), q[:, 0])), 1.0,
                             rtol=1e-8)


def test_zero_hessian_gives_zero_not_nan():
  lam = curvature.hessian_lambda_max(lambda x: jnp.sum(x), jnp.ones(3),
                                     iters=5, key=jax.random.key(1))
  assert float(lam) == 0.0


def test_bad_iters():
  with pytest.raises(ValueError, match="iters"):
    curvature.hessian_lambda_max(lambda x: jnp.sum(x**2), jnp.ones(3),
                                 iters=0, key=jax.random.key(0))
