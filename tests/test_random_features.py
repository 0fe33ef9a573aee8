"""Tests for spectral_jax.models.random_features (the model) and
experiments/lib/random_features.py (the problem generator) against NumPy
float64 references.

Tolerances: float64 throughout, so agreement with NumPy is at ~1e-12 relative
(a few hundred flops per entry); statistical checks use ranges many standard
errors wide.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.lib import random_features as rfp
from spectral_jax import linalg
from spectral_jax.models import random_features as rf


def _np_silu(t):
  return t / (1 + np.exp(-t))


@pytest.mark.parametrize("activation", ["relu", "abs", "relu2", "tanh"])
def test_features_matches_numpy(rng, activation):
  v, x = rng.standard_normal((7, 5)), rng.standard_normal((5, 11))
  ref = {"relu": lambda z: np.maximum(z, 0), "abs": np.abs,
         "relu2": lambda z: np.maximum(z, 0) ** 2, "tanh": np.tanh}[activation]
  np.testing.assert_allclose(rf.features(v, x, activation), ref(v @ x),
                             rtol=1e-12, atol=1e-12)


def test_features_swiglu_matches_numpy(rng):
  v, x = rng.standard_normal((2, 6, 4)), rng.standard_normal((4, 9))
  np.testing.assert_allclose(rf.features(v, x, "swiglu"),
                             _np_silu(v[0] @ x) * (v[1] @ x), rtol=1e-12)


def test_features_rejects_bad_shapes():
  with pytest.raises(ValueError, match="swiglu"):
    rf.features(np.ones((3, 4)), np.ones((4, 5)), "swiglu")
  with pytest.raises(ValueError, match="x must have shape"):
    rf.features(np.ones((3, 4)), np.ones((5, 5)), "relu")
  with pytest.raises(ValueError, match="activation"):
    rf.features(np.ones((3, 4)), np.ones((4, 5)), "nope")


@pytest.mark.parametrize("target", rfp.TARGETS)
def test_make_problem_shapes_and_targets(rng, target):
  k, d, n = 12, 6, 40
  p = rfp.make_problem(jax.random.key(int(rng.integers(1 << 30))), k, d, n,
                      target=target)
  assert p.x.shape == (d, n) and p.v.shape == (k, d) and p.a.shape == (k, n)
  assert p.w_sharp.shape == (k, k) and p.y.shape == (k, n)
  assert p.a.dtype == jnp.float64
  np.testing.assert_allclose(p.a, np.maximum(np.asarray(p.v) @ p.x, 0),
                             rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(p.y, np.asarray(p.w_sharp) @ p.a_teacher,
                             rtol=1e-12, atol=1e-12)
  realizable = np.allclose(p.y, np.asarray(p.w_sharp) @ p.a)
  assert realizable == (target == "realizable")


def test_make_problem_scales(rng):
  # V ~ N(0, 1/d) and W♯ ~ N(0, 1/k): entry variances d·Var(V) = k·Var(W♯) = 1;
  # with 200·100 entries the standard error of the variance is ~1%.
  p = rfp.make_problem(jax.random.key(int(rng.integers(1 << 30))), 200, 100, 5,
                      m=100)
  assert abs(float(jnp.var(p.v)) * 100 - 1) < 0.1
  assert abs(float(jnp.var(p.w_sharp)) * 200 - 1) < 0.1
  assert p.w_sharp.shape == (100, 200)


def test_make_problem_rejects_bad_input():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="target"):
    rfp.make_problem(key, 4, 3, 5, target="nope")
  with pytest.raises(ValueError, match="k must"):
    rfp.make_problem(key, 0, 3, 5)


def test_loss_and_grad_match_numpy_and_autodiff(rng):
  w, a, y = (rng.standard_normal(s) for s in ((5, 7), (7, 30), (5, 30)))
  n = a.shape[1]
  ref_loss = np.sum((w @ a - y) ** 2) / (2 * n)
  ref_grad = (w @ a - y) @ a.T / n
  np.testing.assert_allclose(rfp.rf_loss(w, a, y), ref_loss, rtol=1e-12)
  np.testing.assert_allclose(rfp.rf_grad(w, a, y), ref_grad, rtol=1e-12,
                             atol=1e-13)
  np.testing.assert_allclose(jax.grad(rfp.rf_loss)(jnp.asarray(w), a, y),
                             ref_grad, rtol=1e-12, atol=1e-13)


def test_smoothness_constants_majorize(rng):
  a = rng.standard_normal((8, 50))
  n = a.shape[1]
  l_f, l_op = rfp.smoothness(a)
  s = np.linalg.svd(a, compute_uv=False)
  np.testing.assert_allclose(l_f, s[0] ** 2 / n, rtol=1e-12)
  np.testing.assert_allclose(l_op, np.sum(s**2) / n, rtol=1e-12)
  for _ in range(5):
    u = rng.standard_normal((4, 8))
    quad = np.sum((u @ a) ** 2) / n
    assert quad <= l_f * np.sum(u**2) * (1 + 1e-12)
    assert quad <= l_op * np.linalg.norm(u, 2) ** 2 * (1 + 1e-12)


def test_one_step_guarantees_and_interval_argument(rng):
  """§1.2: both guaranteed decreases, and nr ≥ 2 st ⇒ L(W_SD) ≤ L(W_GD)."""
  p = rfp.make_problem(jax.random.key(int(rng.integers(1 << 30))), 40, 20, 160)
  l_f, l_op = rfp.smoothness(p.a)
  st = float(linalg.stable_rank(p.a))
  w = jnp.asarray(rng.standard_normal((40, 40)) * 0.1)
  g = rfp.rf_grad(w, p.a, p.y)
  loss = rfp.rf_loss(w, p.a, p.y)
  nuc = linalg.nuclear_norm(g)
  w_gd = w - g / l_f
  w_sd = w - nuc / l_op * linalg.polar(g)
  dec_gd = loss - rfp.rf_loss(w_gd, p.a, p.y)
  dec_sd = loss - rfp.rf_loss(w_sd, p.a, p.y)
  tol = 1e-10 * float(loss)
  assert dec_gd >= jnp.sum(g * g) / (2 * l_f) - tol
  assert dec_sd >= nuc**2 / (2 * l_op) - tol
  if float(linalg.nuclear_rank(g)) >= 2 * st:
    assert dec_sd >= dec_gd - tol


def test_spiked_gram_and_gram_grad(rng):
  d = 30
  sg = rfp.spiked_gram(jax.random.key(int(rng.integers(1 << 30))), d)
  np.testing.assert_allclose(jnp.sum(sg.u**2), d, rtol=1e-12)
  assert float(sg.sigma.min()) >= 1 and float(sg.sigma.max()) <= 2
  np.testing.assert_allclose(sg.b, np.outer(sg.u, sg.u) + np.diag(sg.sigma),
                             rtol=1e-12)
  # gram_grad with B = AAᵀ/n equals rf_grad for a realizable target.
  p = rfp.make_problem(jax.random.key(int(rng.integers(1 << 30))), 10, 5, 25)
  w = jnp.asarray(rng.standard_normal((10, 10)))
  b = p.a @ p.a.T / 25
  np.testing.assert_allclose(rfp.gram_grad(w, p.w_sharp, b),
                             rfp.rf_grad(w, p.a, p.y), rtol=1e-10, atol=1e-12)
  with pytest.raises(ValueError, match="bulk"):
    rfp.spiked_gram(jax.random.key(0), 5, bulk=(2.0, 1.0))


def test_spiked_one_step_nuclear_rank_grows(rng):
  # Lemma 3.5: nr at W₀ is O(1), after one step with η = 1/(1+‖B‖) it is
  # a constant fraction of d (0.7·d measured; assert a wide 0.4·d).
  d = 120
  key = jax.random.key(int(rng.integers(1 << 30)))
  b = rfp.spiked_gram(key, d).b
  w_sharp = jax.random.normal(jax.random.fold_in(key, 1), (d, d)) / np.sqrt(d)
  eta = 1 / (1 + np.linalg.norm(np.asarray(b), 2))
  g0 = rfp.gram_grad(jnp.zeros((d, d)), w_sharp, b)
  g1 = rfp.gram_grad(-eta * g0, w_sharp, b)
  assert float(linalg.nuclear_rank(g0)) < 12
  assert float(linalg.nuclear_rank(g1)) > 0.4 * d


def test_nnx_module(rng):
  model = rf.RandomFeatures(6, 9, 3, activation="relu",
                            rngs=nnx.Rngs(int(rng.integers(1 << 30))),
                            dtype=jnp.float64)
  x = jnp.asarray(rng.standard_normal((5, 6)))
  # Zero readout at init, as the paper starts from W₀ = 0.
  np.testing.assert_array_equal(model(x), np.zeros((5, 3)))
  # Only W is trainable; V is a FixedFeatures variable.
  params = nnx.state(model, nnx.Param)
  assert [p.shape for p in jax.tree.leaves(params)] == [(3, 9)]
  assert len(jax.tree.leaves(nnx.state(model, rf.FixedFeatures))) == 1
  model.w[...] = jnp.asarray(rng.standard_normal((3, 9)))
  out, inter = nnx.capture(model, nnx.Intermediate)(x)
  a = np.maximum(np.asarray(model.v[...]) @ np.asarray(x).T, 0)
  np.testing.assert_allclose(jax.tree.leaves(inter)[0], a.T, rtol=1e-12)
  np.testing.assert_allclose(out, (np.asarray(model.w[...]) @ a).T, rtol=1e-12)


def test_nnx_module_swiglu_and_bad_activation():
  m = rf.RandomFeatures(4, 5, 2, activation="swiglu", rngs=nnx.Rngs(0))
  assert m.v[...].shape == (2, 5, 4)
  assert m(jnp.ones((3, 4), jnp.float32)).shape == (3, 2)
  with pytest.raises(ValueError, match="activation"):
    rf.RandomFeatures(4, 5, 2, activation="nope", rngs=nnx.Rngs(0))
