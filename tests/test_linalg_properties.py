"""Hypothesis property tests of the polar factor's invariances.

polar(cG) = polar(G) for c > 0, polar(Gᵀ) = polar(G)ᵀ and polar(QG) =
Q polar(G) for orthogonal Q, for the exact methods in float32 (tolerance 1e-5
relative, as in test_linalg.py) and for Newton–Schulz, which is built from
products of G and Gᵀ and so satisfies them too (up to fp32 rounding).
Few examples, small shapes: each example compiles new shapes.
"""

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

from spectral_jax import linalg

SETTINGS = settings(max_examples=5, deadline=None)

# A fixed menu of shapes (wide, tall, square, vector-like) so that compiled
# kernels are reused across examples: the runtime is compilation-bound.
shapes = st.sampled_from([(3, 7), (7, 3), (5, 5), (2, 9), (9, 2), (6, 8)])
scales = st.sampled_from([1e-20, 1e-3, 1.0, 7.5, 1e20])
methods = st.sampled_from(["svd", "qdwh", "eigh", "newton_schulz"])
seeds = st.integers(0, 2**32 - 1)


def _matrix(seed, shape):
  # Well-conditioned by construction (σ ∈ [1, 3]): the invariances are exact
  # for every input, but the fp32 *tolerance* would otherwise depend on κ.
  r = np.random.default_rng(seed)
  m, n = shape
  k = min(m, n)
  u, _ = np.linalg.qr(r.standard_normal((m, k)))
  v, _ = np.linalg.qr(r.standard_normal((n, k)))
  return ((u * r.uniform(1, 3, k)) @ v.T).astype(np.float32)


def _close(a, b, tol=1e-5):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert np.linalg.norm(a - b) <= tol * max(np.linalg.norm(b), 1.0)


@SETTINGS
@given(seeds, shapes, scales, methods)
def test_polar_scale_invariant(seed, shape, c, method):
  g = _matrix(seed, shape)
  _close(linalg.polar(jnp.asarray(g * np.float32(c)), method),
         linalg.polar(jnp.asarray(g), method))


@SETTINGS
@given(seeds, shapes, methods)
def test_polar_commutes_with_transpose(seed, shape, method):
  g = _matrix(seed, shape)
  _close(linalg.polar(jnp.asarray(g.T), method),
         np.asarray(linalg.polar(jnp.asarray(g), method)).T)


@SETTINGS
@given(seeds, shapes, methods)
def test_polar_left_orthogonal_equivariance(seed, shape, method):
  g = _matrix(seed, shape)
  q, _ = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal(
      (shape[0], shape[0])))
  q = q.astype(np.float32)
  _close(linalg.polar(jnp.asarray(q @ g), method),
         q.astype(np.float64) @ np.asarray(linalg.polar(jnp.asarray(g),
                                                        method), np.float64),
         tol=3e-5)


@SETTINGS
@given(seeds, shapes)
def test_exact_polar_is_orthogonal_and_matches_svd(seed, shape):
  g = _matrix(seed, shape)
  p = np.asarray(linalg.polar(jnp.asarray(g), "svd"), np.float64)
  u, _, vt = np.linalg.svd(g.astype(np.float64), full_matrices=False)
  _close(p, u @ vt)
  k = min(shape)
  small = p @ p.T if shape[0] <= shape[1] else p.T @ p
  _close(small, np.eye(k))
