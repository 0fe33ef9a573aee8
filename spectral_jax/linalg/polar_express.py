"""Polar Express coefficients for any step count, σ_min bound and safety.

Amsel, Persson, Musco & Gower, *The Polar Express*, arXiv:2505.16932,
Algorithm 1 (degree 5), computed in float64 NumPy at schedule-build time:

1. Start from the interval ``[l, u] = [σ_min, 1]`` that holds every singular
   value of ``X_0``.
2. Step t uses the odd quintic ``p_t`` that minimises ``max |1 − p(x)|`` over
   ``[max(l, λu), u]`` (Remez exchange, Section 4.2): the *cushion* λ stops a
   tiny ``l`` from giving a polynomial that dips towards zero inside the
   interval (Section 4.4).
3. When the cushion was active, ``p_t`` is rescaled so that ``p_t(l) +
   p_t(u) = 2``: centred on 1 over the true interval.
4. The next interval is ``[p_t(l), 2 − p_t(l)]``: ``p_t`` is increasing up to
   its first critical point and equioscillates above, so it maps ``[l, u]``
   into that band, which narrows every step.
5. Finally every row but the last is damped by the safety factor ``s``
   (``a/s, b/s³, c/s⁵``, i.e. ``p(x/s)``) so that round-off pushing a singular
   value slightly past ``u`` is still inside the step's design interval; the
   bands of step 4 are those of the undamped rows (as in the published table).

The cushion is not a free constant: the authors' λ = 0.02407327424182761 is
the ``l`` at which the minimax error on ``[l, 1]`` is 9/11, i.e. where the
minimax quintic's lowest value on its interval is 1/10 of its highest
((1 − E)/(1 + E) = 1/10). ``cushion()`` solves that equation (it matches the
published λ to float64 rounding, see the tests).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from spectral_jax.linalg.base import check_steps

# The cushion rule: the minimax quintic's floor over its interval is at least
# this fraction of its top (see the module docstring).
CUSHION_FLOOR = 0.1
# Below this half-width δ = (u − l)/(u + l) the Remez system is singular to
# float64 (its error grows like eps/δ², measured: 1e-11 at δ = 1.2e-3) while
# the osculating limit p(x) = (15 t − 10 t³ + 3 t⁵)/8, t = x/m, is off by
# O(δ²): the two errors cross at δ = eps^(1/4) ≈ 1.2e-4.
_POINT_WIDTH = np.finfo(np.float64).eps ** 0.25
_REMEZ_MAX_ITERS = 100


def _solve_equioscillation(l, q, r, u):
  """(a, b, c, E) with p(x) − 1 = ∓E alternating at l < q < r < u."""
  pts = np.array([l, q, r, u])
  lhs = np.stack([pts, pts**3, pts**5, np.array([1.0, -1.0, 1.0, -1.0])], 1)
  return np.linalg.solve(lhs, np.ones(4))


def minimax_quintic(lo: float, hi: float) -> tuple[float, float, float]:
  """The odd quintic ``a x + b x³ + c x⁵`` closest to 1 on ``[lo, hi]`` in
  the max norm (0 < lo ≤ hi), by the Remez exchange of Amsel et al. §4.2.

  The error equioscillates at ``lo, q, r, hi`` (``p(lo) = 1 − E``); ``q, r``
  are the critical points of ``p``, the roots of ``5c y² + 3b y + a`` in
  ``y = x²``.
  """
  if (hi - lo) <= _POINT_WIDTH * (hi + lo):
    m = 0.5 * (lo + hi)
    return 15 / 8 / m, -10 / 8 / m**3, 3 / 8 / m**5
  return _remez(lo, hi)[:3]


def _remez(lo, hi):
  q, r = (3 * lo + hi) / 4, (lo + 3 * hi) / 4
  err = math.inf
  for _ in range(_REMEZ_MAX_ITERS):
    a, b, c, new_err = _solve_equioscillation(lo, q, r, hi)
    if abs(new_err - err) <= 1e-15:
      return float(a), float(b), float(c), float(new_err)
    err = new_err
    disc = math.sqrt(9 * b * b - 20 * a * c)
    q, r = np.sqrt((-3 * b + np.array([-disc, disc])) / (10 * c))
  raise RuntimeError(f"Remez on [{lo}, {hi}] did not converge in "
                     f"{_REMEZ_MAX_ITERS} exchanges.")


@functools.cache
def cushion() -> float:
  """λ with minimax error ``E(λ) = (1 − f)/(1 + f)`` on ``[λ, 1]``, ``f =
  CUSHION_FLOOR``, by bisection (E decreases as the interval shrinks)."""
  target = (1 - CUSHION_FLOOR) / (1 + CUSHION_FLOOR)
  lo, hi = 1e-6, 0.5
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    if mid in (lo, hi):
      break
    if _remez(mid, 1.0)[3] > target:
      lo = mid
    else:
      hi = mid
  return 0.5 * (lo + hi)


def _undamped_rows(steps: int, sigma_min: float):
  lam = cushion()
  l, u = sigma_min, 1.0
  rows = []
  for _ in range(steps):
    lo = max(l, lam * u)
    a, b, c = minimax_quintic(lo, u)
    if lo > l:  # Cushioned: centre p on 1 over [l, u], p(l) + p(u) = 2.
      k = 2.0 / (a * (l + u) + b * (l**3 + u**3) + c * (l**5 + u**5))
      a, b, c = a * k, b * k, c * k
    rows.append((a, b, c))
    l = a * l + b * l**3 + c * l**5
    u = 2.0 - l
  return rows


@functools.lru_cache(maxsize=64)
def polar_express_rows(steps: int, sigma_min: float,
                       safety: float) -> tuple[tuple[float, float, float], ...]:
  """The ``steps`` rows ``(a, b, c)`` of Algorithm 1, every row but the last
  damped by ``safety`` (see the module docstring). Arguments unchecked: use
  ``schedules.polar_express_schedule``."""
  rows = _undamped_rows(steps, sigma_min)
  damped = [(a / safety, b / safety**3, c / safety**5)
            for a, b, c in rows[:-1]]
  return tuple(damped + rows[-1:])


def check_polar_express_args(steps, sigma_min, safety) -> None:
  """Raise a ValueError naming the first bad argument."""
  check_steps(steps)
  for name, v in (("sigma_min", sigma_min), ("safety", safety)):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating,
                                                 np.integer)):
      raise ValueError(f"polar_express_schedule: {name} must be a real "
                       f"number, got {v!r}.")
  if not 0.0 < sigma_min <= 1.0:
    raise ValueError(f"polar_express_schedule: sigma_min must be in (0, 1] "
                     f"(a lower bound on σ/σ_1), got {sigma_min!r}.")
  if not 1.0 <= safety < math.inf:
    raise ValueError(f"polar_express_schedule: safety must be a finite "
                     f"number >= 1, got {safety!r}.")
