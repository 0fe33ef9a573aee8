"""Newton–Schulz coefficient schedules: data, not branches.

A schedule is a table of odd quintics ``p_i(σ) = a_i σ + b_i σ³ + c_i σ⁵``,
one row per step, with a name and a safety factor. ``SCHEDULES`` holds the
named ones; ``polar_express_schedule`` computes Polar Express rows for any
step count, σ_min bound and safety factor; ``resolve_schedule`` and
``schedule_coeffs`` are the one parser every caller goes through.

References:
  Jordan et al., *Muon*, https://kellerjordan.github.io/posts/muon/.
  Amsel, Persson, Musco & Gower, *The Polar Express*, arXiv:2505.16932.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spectral_jax.linalg.base import check_steps
from spectral_jax.linalg.polar_express import check_polar_express_args
from spectral_jax.linalg.polar_express import polar_express_rows


class Schedule(NamedTuple):
  """A named Newton–Schulz schedule.

  Step ``i`` applies ``p(x) = a x + b x³ + c x⁵`` with ``(a, b, c) =
  coeffs[min(i, len(coeffs) - 1)]``: the last row repeats for longer runs.
  The first iterate's upper bound on σ_1 is multiplied by ``safety`` so that
  every singular value lies in (0, 1/safety]. ``steps`` is the step count
  when the caller gives none (``None``: 5, Muon's, for a named schedule; all
  rows for ``"custom"``).
  """

  name: str
  coeffs: tuple[tuple[float, float, float], ...]
  safety: float = 1.0
  steps: int | None = None


def polar_express_schedule(steps: int, sigma_min: float = 1e-3,
                           safety: float = 1.01) -> Schedule:
  r"""Polar Express coefficients for ``steps`` steps (Amsel et al. 2025).

  The greedy minimax construction of the paper's Algorithm 1 (degree 5):
  step ``t`` is the odd quintic closest to 1 in the max norm on the interval
  that holds every singular value after ``t`` steps, starting from
  ``[sigma_min, 1]``, with the paper's cushion and recentring; every row but
  the last is then damped by ``safety`` (``a/s, b/s³, c/s⁵``), and
  ``X_0`` is divided by ``safety·‖G‖_F``. See
  ``spectral_jax.linalg.polar_express`` for the steps. The defaults with
  ``steps=8`` give the paper's published table (``SCHEDULES
  ["polar_express"]``). Cached: repeated calls cost nothing.

  Args:
    steps: number of rows (int >= 1); also the default step count when the
      schedule is passed to ``newton_schulz`` without ``steps``.
    sigma_min: lower bound on σ_min / ‖G‖ the schedule is built for, in
      (0, 1]: smaller values spend early steps lifting tiny singular values.
    safety: factor >= 1 guarding against round-off (1 turns damping off).

  Returns:
    A ``Schedule`` usable as ``coeffs`` of ``newton_schulz`` and
    ``ns_coeffs`` of ``muon`` / ``scale_by_muon``.

  Raises:
    ValueError: ``steps`` not an int >= 1, ``sigma_min`` outside (0, 1],
      ``safety`` < 1 or not finite.

  References:
    Amsel, Persson, Musco & Gower, *The Polar Express: Optimal Matrix Sign
    Methods and Their Application to the Muon Algorithm*, arXiv:2505.16932,
    Algorithm 1 and Section 4.4.
  """
  check_polar_express_args(steps, sigma_min, safety)
  sigma_min, safety = float(sigma_min), float(safety)
  rows = polar_express_rows(int(steps), sigma_min, safety)
  name = (f"polar_express(steps={steps}, sigma_min={sigma_min!r}, "
          f"safety={safety!r})")
  return Schedule(name, rows, safety, int(steps))


SCHEDULES: dict[str, Schedule] = {
    # Keller Jordan's quintic, optax's default ("standard"). Maximises the
    # slope at zero; singular values end in roughly [0.7, 1.2], never 1.
    "jordan": Schedule("jordan", ((3.4445, -4.7750, 2.0315),)),
    # Amsel et al. (2025), Algorithm 1, degree 5, σ_min = 1e-3, safety 1.01:
    # the published 8-row table, computed (tests check it against the print).
    "polar_express": Schedule("polar_express",
                              polar_express_schedule(8).coeffs, 1.01),
    # Classic Newton–Schulz: converges for σ ∈ (0, √3), slowly from small σ.
    "cubic": Schedule("cubic", ((1.5, -0.5, 0.0),)),
    # microsoft/dion's five-step schedule (optax's "dion").
    "dion": Schedule(
        "dion",
        (
            (4.0848, -6.8946, 2.9270),
            (3.9505, -6.3029, 2.6377),
            (3.7418, -5.5913, 2.3037),
            (2.8769, -3.1427, 1.2046),
            (2.8366, -3.0525, 1.2012),
        ),
    ),
}
# Names other libraries use for the same schedules.
ALIASES = {"standard": "jordan", "muon": "jordan", "quintic": "jordan",
           "polar-express": "polar_express", "polarexpress": "polar_express"}


def resolve_schedule(coeffs) -> Schedule:
  """Return the ``Schedule`` named by ``coeffs`` or built from an array.

  Args:
    coeffs: a name in ``SCHEDULES`` (or an alias: ``"standard"``, ``"muon"``),
      a ``Schedule``, a single row ``(a, b, c)`` or an array of shape
      ``(steps, 3)``.

  Raises:
    ValueError: for an unknown name or an array of the wrong shape.
  """
  if isinstance(coeffs, Schedule):
    return coeffs
  if isinstance(coeffs, str):
    name = ALIASES.get(coeffs, coeffs)
    if name not in SCHEDULES:
      allowed = sorted(set(SCHEDULES) | set(ALIASES))
      raise ValueError(
          f"coeffs={coeffs!r} is not a known Newton–Schulz schedule; allowed "
          f"names: {allowed}, or an array of shape (3,) or (steps, 3).")
    return SCHEDULES[name]
  rows = np.asarray(coeffs, dtype=np.float64)
  if rows.ndim == 1:
    rows = rows[None]
  if rows.ndim != 2 or rows.shape[-1] != 3 or rows.shape[0] < 1:
    raise ValueError(
        f"coeffs must have shape (3,) or (steps, 3) with steps >= 1, got shape "
        f"{np.shape(coeffs)}.")
  if not np.all(np.isfinite(rows)):
    raise ValueError(f"coeffs must be finite, got {rows.tolist()}.")
  return Schedule("custom", tuple(tuple(float(v) for v in r) for r in rows))


def default_steps(sched: Schedule) -> int:
  """The step count of ``sched`` when the caller gives none."""
  if sched.steps is not None:
    return sched.steps
  # Named schedules default to Muon's five steps; a custom array runs its
  # listed rows.
  return len(sched.coeffs) if sched.name == "custom" else 5


def schedule_coeffs(coeffs, steps: int | None = None) -> np.ndarray:
  """The ``(steps, 3)`` float64 array of per-step coefficients.

  ``steps=None`` means the schedule's own ``steps`` if it has one, else 5
  for a named schedule and the listed rows for a custom array; a larger
  ``steps`` repeats the last row, a smaller one takes the first ``steps``
  rows.
  """
  sched = resolve_schedule(coeffs)
  rows = np.asarray(sched.coeffs, dtype=np.float64)
  if steps is None:
    steps = default_steps(sched)
  check_steps(steps)
  idx = np.minimum(np.arange(steps), len(rows) - 1)
  return rows[idx]
