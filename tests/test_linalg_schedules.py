"""Tests for spectral_jax.linalg.schedules and .polar_express.

The Polar Express rows are checked against the paper's published table
(Amsel et al. 2025, arXiv:2505.16932; the rows as printed in its code, before
the 1.01 damping) and, for other arguments, against properties that follow
from the construction itself (composition bands), not stored numbers.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax import linalg
from spectral_jax.linalg import polar_express

EPS = np.finfo(np.float64).eps

# The published degree-5 table for σ_min = 1e-3 (undamped), as printed.
PUBLISHED = np.array([
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
])
PUBLISHED_CUSHION = 0.02407327424182761


def _p(row, x):
  a, b, c = row
  return a * x + b * x**3 + c * x**5


def _row_tolerances(rows, sigma_min, lam):
  """Relative accuracy of each float64 row, from the construction.

  A Remez row solves a 4×4 system at its equioscillation points (the
  interval's ends and p's critical points): its relative error is about
  cond·eps. A row whose interval is narrower than eps^(1/4) is the
  osculating limit, exact up to O(δ²) in the half-width δ.
  """
  l, u, tols = sigma_min, 1.0, []
  for row in rows:
    lo = max(l, lam * u)
    delta = (u - lo) / (u + lo)
    if delta <= EPS ** 0.25:
      tols.append(delta**2 + 4 * EPS)
    else:
      a, b, c = row
      q, r = np.sqrt(np.sort(np.roots([5 * c, 3 * b, a]).real))
      pts = np.array([lo, q, r, u])
      lhs = np.stack([pts, pts**3, pts**5, [1.0, -1.0, 1.0, -1.0]], 1)
      tols.append(np.linalg.cond(lhs) * EPS)
    l = _p(row, l)
    u = 2.0 - l
  return np.array(tols)


def test_cushion_is_the_published_constant():
  # Bisection on E(λ) = 9/11; E is computed to cond·eps ≈ 63·eps = 1.4e-14
  # and dE/dλ ≈ −6.6 there, so λ is good to ~2e-15 absolute (1e-13 rel).
  assert polar_express.cushion() == pytest.approx(PUBLISHED_CUSHION,
                                                  rel=1e-13)


def test_polar_express_reproduces_published_table():
  got = np.array(linalg.polar_express_schedule(8, 1e-3, 1.0).coeffs)
  tols = _row_tolerances(PUBLISHED, 1e-3, PUBLISHED_CUSHION)
  # The published rows carry the same float64 Remez error as ours: 2×.
  rel = np.max(np.abs(got / PUBLISHED - 1), axis=1)
  assert np.all(rel <= 2 * tols), (rel, tols)
  assert np.all(tols[:6] < 1e-13)  # So the check above is a tight one.


def test_shipped_table_is_the_computed_one():
  sched = linalg.SCHEDULES["polar_express"]
  pe = linalg.polar_express_schedule(8)
  assert sched.coeffs == pe.coeffs and sched.safety == pe.safety == 1.01
  # Damping: every row but the last is p(x/s).
  s = 1.01
  undamped = np.array(linalg.polar_express_schedule(8, 1e-3, 1.0).coeffs)
  want = undamped / np.array([s, s**3, s**5])
  want[-1] = undamped[-1]
  np.testing.assert_allclose(np.array(pe.coeffs), want, rtol=4 * EPS)


@pytest.mark.parametrize("steps,sigma_min", [(3, 1e-3), (6, 1e-2), (10, 1e-5),
                                             (12, 0.3), (5, 1.0)])
def test_composition_maps_interval_into_narrowing_band(steps, sigma_min):
  # From the construction: p_t is increasing up to its first critical point
  # and equioscillates above it, and p_t(l) + p_t(u) = 2, so p_t maps
  # [l, u] into [l', 2 − l'] with l' = p_t(l) > l: the composition maps
  # [σ_min, 1] into a band around 1 of half-width h_t = 1 − P_t(σ_min),
  # which narrows every step until it reaches float64 rounding. Tolerance:
  # the rows' own accuracy (cond·eps ≤ 4e-8 for intervals down to
  # δ = eps^(1/4)) times |p| ≤ 2, plus evaluation rounding.
  rows = linalg.polar_express_schedule(steps, sigma_min, 1.0).coeffs
  tol = 1e-7
  x = np.concatenate([np.geomspace(sigma_min, 1.0, 4001),
                      np.linspace(sigma_min, 1.0, 4001)])
  lo, half = sigma_min, 1.0 - sigma_min
  for row in rows:
    x, lo = _p(row, x), _p(row, lo)
    new_half = 1.0 - lo
    assert np.max(np.abs(x - 1.0)) <= new_half + tol
    assert new_half < half or new_half <= tol
    half = new_half
  if sigma_min == 1.0:
    assert np.allclose(rows, [(1.875, -1.25, 0.375)] * steps, rtol=4 * EPS)


def test_schedule_runs_its_steps_and_converges(rng):
  # End to end against the float64 SVD: with safety 1 and σ_min/‖G‖_F ≥
  # sigma_min, every σ of X_0 is in [sigma_min, 1], so ‖NS(G) − UVᵀ‖_2 ≤
  # the band half-width after the last step (plus float64 rounding).
  m, n, sigma_min = 24, 40, 1e-4
  u, _ = np.linalg.qr(rng.standard_normal((m, m)))
  v, _ = np.linalg.qr(rng.standard_normal((n, m)))
  s = np.logspace(0, -2.5, m)
  g = (u * s) @ v.T
  assert s[-1] / np.linalg.norm(g) >= sigma_min
  sched = linalg.polar_express_schedule(9, sigma_min, 1.0)
  out = np.asarray(linalg.newton_schulz(jnp.asarray(g), coeffs=sched,
                                        gram_form=False))
  same = linalg.newton_schulz(jnp.asarray(g), 9, sched, gram_form=False)
  np.testing.assert_array_equal(out, np.asarray(same))  # steps=None → 9.
  lo = sigma_min
  for row in sched.coeffs:
    lo = _p(row, lo)
  err = np.linalg.norm(out - u @ v.T, 2)
  assert err <= (1.0 - lo) + 1e-12
  assert 1.0 - lo < 1e-3  # And the band is tight: a test that can fail.


def test_schedule_is_cached_and_usable_by_muon():
  from spectral_jax import transforms  # Import here: linalg tests stay lean.
  a = linalg.polar_express_schedule(7, 1e-3, 1.01)
  hits = polar_express.polar_express_rows.cache_info().hits
  assert linalg.polar_express_schedule(7, 1e-3, 1.01) == a
  assert polar_express.polar_express_rows.cache_info().hits == hits + 1
  assert linalg.resolve_schedule(a) is a
  g = {"w": jnp.asarray(np.random.default_rng(0).standard_normal((8, 12)),
                        jnp.float32)}
  tx = transforms.scale_by_muon(ns_coeffs=a, ns_steps=7)
  upd, _ = tx.update(g, tx.init(g))
  want = linalg.newton_schulz(g["w"], 7, a, eps=1e-8)
  assert float(jnp.max(jnp.abs(upd["w"] - want))) <= 1e-5


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=0), "steps"), (dict(steps=2.5), "steps"),
    (dict(steps=True), "steps"),
    (dict(steps=4, sigma_min=0.0), "sigma_min"),
    (dict(steps=4, sigma_min=1.5), "sigma_min"),
    (dict(steps=4, sigma_min=math.nan), "sigma_min"),
    (dict(steps=4, sigma_min="small"), "sigma_min"),
    (dict(steps=4, safety=0.99), "safety"),
    (dict(steps=4, safety=math.inf), "safety"),
    (dict(steps=4, safety=math.nan), "safety"),
])
def test_polar_express_schedule_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    linalg.polar_express_schedule(**kwargs)
