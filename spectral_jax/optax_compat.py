"""optax.contrib.muon's (and torch.optim.Muon's) conventions, as a thin
adapter over :func:`spectral_jax.linalg.newton_schulz`.

optax reads ``ns_coeffs`` / ``ns_steps`` its own way (a row repeats
``ns_steps`` times; a ``(k, 3)`` table runs its rows and needs ``k <=
ns_steps``), names its first steps ``preconditioning`` and keeps the
coefficients in ``MuonState.ns_coeffs``. This module translates those
conventions for ``scale_by_muon`` / ``muon``, and holds optax's public
``orthogonalize_via_newton_schulz`` and shape scaling ``scale_by_shape``
(with torch's ``adjust_lr`` presets); the iteration itself is linalg's.

References:
  optax ``contrib/_muon.py`` (0.2.8).
  Boissin et al., *Turbo-Muon* (AOL preconditioning), arXiv:2512.04632.
  Grishina et al., *Chebyshev-type Newton–Schulz*, arXiv:2506.10935.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spectral_jax import checks
from spectral_jax import linalg
from spectral_jax.labels import path_name
from spectral_jax.matrices import MuonDimensionNumbers
from spectral_jax.matrices import compute_muon_reshape
from spectral_jax.matrices import leaf_dimension_numbers
from spectral_jax.matrices import matrix_shape
from spectral_jax.matrices import resolve_dimension_numbers

__all__ = [
    "ADJUST_LR",
    "DEFAULT_NS_COEFFS",
    "NSPlan",
    "PRECONDITIONINGS",
    "PRECONDITIONING_NORMS",
    "nan_if_nonfinite",
    "ns_plan",
    "orthogonalize_via_newton_schulz",
    "scale_by_shape",
]

WeightDimNumOrFn = Any  # MuonDimensionNumbers | tree of them | Callable | None

# optax's names for the first step of Newton–Schulz, and linalg's. optax's
# 'schatten' is the Schatten-4 start; 'schatten8' is ours.
PRECONDITIONING_NORMS = {"frobenius": "frobenius", "spectral": "spectral",
                         "aol": "aol", "schatten": "schatten4",
                         "schatten4": "schatten4", "schatten8": "schatten8"}
PRECONDITIONINGS = tuple(PRECONDITIONING_NORMS)
# torch.optim.Muon's adjust_lr_fn presets (scale_by_shape maps them onto its
# rules; torch's A×B weight is out×in: A = fan_out, B = fan_in).
ADJUST_LR = ("original", "match_rms_adamw", "spectral_unclamped")
# optax.contrib.muon's presets keep optax's ns_steps semantics: a single row
# repeats ns_steps times; a (k, 3) table runs its k rows, needing k <= ns_steps.
DEFAULT_NS_COEFFS = linalg.SCHEDULES["jordan"].coeffs[0]
_OPTAX_PRESETS = {
    "standard": DEFAULT_NS_COEFFS,
    "dion": linalg.SCHEDULES["dion"].coeffs,
}


class NSPlan(NamedTuple):
  """A resolved Newton–Schulz schedule: static rows and the normaliser."""
  # With static steps: the coefficients of every step, in order. With traced
  # steps: the rows to index with min(i, len - 1).
  schedule: linalg.Schedule
  state_coeffs: Any  # what MuonState.ns_coeffs holds (optax's layout).
  steps: Any = None  # None (static, len(schedule.coeffs)) or a traced count.


def ns_plan(ns_coeffs, ns_steps) -> NSPlan:
  """Resolve ``ns_coeffs`` / ``ns_steps`` with optax's semantics.

  optax: a row ``(a, b, c)`` repeats ``ns_steps`` times; a ``(k, 3)`` table
  (``'dion'`` included) runs its ``k`` rows and needs ``k <= ns_steps``. Our
  names (``'jordan'``, ``'polar_express'``, ``'cubic'``) and ``Schedule``s run
  ``ns_steps`` steps, repeating their last row (``linalg.schedule_coeffs``).
  """
  steps = checks.check_ns_steps(ns_steps, allow_traced=True)
  if isinstance(ns_coeffs, str) and ns_coeffs in _OPTAX_PRESETS:
    ns_coeffs = _OPTAX_PRESETS[ns_coeffs]
  if isinstance(ns_coeffs, (str, linalg.Schedule)):
    try:
      sched = linalg.resolve_schedule(ns_coeffs)
    except ValueError:
      allowed = sorted(set(linalg.SCHEDULES) | set(_OPTAX_PRESETS)
                       | {"polar-express", "muon", "quintic"})
      raise ValueError(
          f"ns_coeffs={ns_coeffs!r} is not a known Newton–Schulz schedule; "
          f"allowed names: {allowed}, a Schedule, or coefficients of shape "
          "(3,) or (k, 3).") from None
    if steps is None:
      return NSPlan(sched, jnp.asarray(sched.coeffs), ns_steps)
    rows = linalg.schedule_coeffs(sched, steps)
    return NSPlan(linalg.Schedule(sched.name, tuple(map(tuple, rows)),
                                  sched.safety), jnp.asarray(rows))
  try:
    arr = np.asarray(ns_coeffs, dtype=np.float64)
  except (TypeError, jax.errors.TracerArrayConversionError):
    raise ValueError(f"ns_coeffs={ns_coeffs!r} must be concrete (a name or "
                     "numbers), not traced.") from None
  if arr.ndim not in (1, 2) or arr.shape[-1] != 3 or arr.size == 0:
    raise ValueError(f"ns_coeffs must have shape (3,) or (k, 3), got shape "
                     f"{arr.shape}.")
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"ns_coeffs must be finite, got {arr.tolist()}.")
  if arr.ndim == 1 and steps is None:
    return NSPlan(linalg.Schedule("custom", (tuple(arr),)),
                   jnp.asarray(ns_coeffs), ns_steps)
  if arr.ndim == 1:
    rows = np.tile(arr, (steps, 1))
    state = jnp.asarray(ns_coeffs)
  elif steps is None:  # A table runs its rows; the count only validates.
    rows, state = arr, jnp.asarray(ns_coeffs)
  else:
    if arr.shape[0] > steps:
      raise ValueError(
          f"ns_coeffs has {arr.shape[0]} rows but ns_steps={steps}: optax runs "
          "every row of a (k, 3) table and needs k <= ns_steps.")
    rows = arr
    state = jnp.asarray(ns_coeffs)[-steps:]
  return NSPlan(linalg.Schedule("custom", tuple(map(tuple, rows))), state)


def nan_if_nonfinite(fn):
  """Wrap ``fn`` so a slice with a non-finite entry maps to an all-NaN slice.

  optax propagates a non-finite gradient into the update; so do we, slice by
  slice and for every polar method alike (an SVD of an inf is not defined):
  the other slices of the leaf and the other leaves of a batched group are
  untouched.
  """
  def wrapped(x):
    finite = jnp.all(jnp.isfinite(x), axis=(-2, -1), keepdims=True)
    # fn reads x with the non-finite slices zeroed (fn(0) = 0 for every
    # polar method; those slices become NaN below): the mask is then taken
    # before fn starts, and x dies at fn's first read. Masking only the
    # output let XLA schedule the check after fn and hold x, a whole batched
    # call's stack, through the iteration (GPT-2-small, float32: 56.6 ->
    # 42.5 MB of temp memory per update).
    out = fn(jnp.where(finite, x, jnp.zeros((), x.dtype)))
    return jnp.where(finite, out, jnp.asarray(jnp.nan, out.dtype))
  return wrapped


def orthogonalize_via_newton_schulz(
    x: jax.Array,
    ns_coeffs,
    ns_steps: int = 5,
    preconditioning: str = "frobenius",
    eps: float = 1e-8,
    dimension_numbers: MuonDimensionNumbers | None = None,
) -> jax.Array:
  r"""Orthogonalise ``x`` by Newton–Schulz, as ``optax.contrib`` does.

  .. math::
    X_0 = G / (\|G\|_F + \epsilon), \qquad
    X_{i+1} = a_i X_i + (b_i A_i + c_i A_i^2) X_i,\quad A_i = X_i X_i^H

  (``'spectral'`` divides by ``σ_1 + ε`` instead; ``'aol'`` and ``'schatten'``
  rescale inside the first step.) Each ``(fan_in, fan_out)`` slice of the
  reshaped ``x`` is handled on its own, by :func:`spectral_jax.linalg.
  newton_schulz`.

  Args:
    x: a 2-D array, or any array with ``dimension_numbers``.
    ns_coeffs: ``(3,)`` coefficients repeated ``ns_steps`` times, or a
      ``(k, 3)`` table run row by row (``k <= ns_steps`` is not required
      here, as in optax). May be a traced array.
    ns_steps: iterations for a ``(3,)`` row; ignored for a table.
    preconditioning: ``'frobenius'``, ``'spectral'``, ``'aol'``,
      ``'schatten'`` (optax's four), ``'schatten8'``.
    eps: added to the Frobenius / spectral normaliser.
    dimension_numbers: how to read ``x`` as ``(batch, fan_in, fan_out)``.

  Returns:
    Array of ``x``'s shape and dtype.
  """
  checks.check_choice("preconditioning", preconditioning, PRECONDITIONINGS)
  if x.ndim != 2 and not isinstance(dimension_numbers, MuonDimensionNumbers):
    raise ValueError(
        "Input must have shape (m, n) or dimension_numbers must be given; got "
        f"shape={x.shape} and dimension_numbers={dimension_numbers!r}.")
  if x.ndim == 2:
    dimension_numbers = MuonDimensionNumbers()
  coeffs = jnp.asarray(ns_coeffs)
  if coeffs.ndim > 2 or coeffs.shape[-1] != 3:
    raise ValueError("ns_coeffs must have shape (3,) or (k, 3), got "
                     f"{coeffs.shape}.")
  # optax's rule: a row repeats ns_steps times, a table runs its own rows.
  steps = checks.check_ns_steps(ns_steps) if coeffs.ndim == 1 else coeffs.shape[0]
  if not isinstance(ns_coeffs, jax.core.Tracer):
    ns_coeffs = np.asarray(ns_coeffs, dtype=np.float64)
  fn = lambda y: linalg.newton_schulz(
      y, steps, ns_coeffs, eps=eps,
      norm=PRECONDITIONING_NORMS[preconditioning])
  reshape_fn, inverse_fn = compute_muon_reshape(x, dimension_numbers)
  return inverse_fn(nan_if_nonfinite(fn)(reshape_fn(x)))


def scale_by_shape(
    weight_dimension_numbers: WeightDimNumOrFn | None = None,
    consistent_rms: float | None = None,
    adjust_lr: str | None = None,
) -> optax.GradientTransformation:
  r"""Scale each matrix update by a factor of its shape (optax's semantics).

  .. math::
    u \mapsto \sqrt{\max(1, \text{fan\_out}/\text{fan\_in})}\; u
    \quad\text{or, with consistent\_rms}=\rho,\quad
    u \mapsto \rho\sqrt{\max(\text{fan\_in}, \text{fan\_out})}\; u

  or one of torch.optim.Muon's ``adjust_lr_fn`` rules by name.

  Args:
    weight_dimension_numbers: as in :func:`spectral_jax.scale_by_muon`.
    consistent_rms: ``None`` (width scaling, KellerJordan/Muon) or ``ρ >= 0``
      (arXiv:2502.16982 recommends 0.2 to match AdamW's update RMS).
    adjust_lr: ``None`` (the rules above) or torch.optim.Muon's preset:
      ``'original'`` (``√max(1, fan_out/fan_in)``, = the width scaling),
      ``'match_rms_adamw'`` (``0.2·√max(fan_in, fan_out)``, = ``ρ = 0.2``)
      or ``'spectral_unclamped'`` (``√(fan_out/fan_in)``). Not together with
      ``consistent_rms``.

  Returns:
    A stateless ``optax.GradientTransformation``.
  """
  checks.check_range("consistent_rms", consistent_rms, 0.0,
                     what="a finite number >= 0, or None")
  if adjust_lr is not None:
    checks.check_choice("adjust_lr", adjust_lr, ADJUST_LR)
    if consistent_rms is not None:
      raise ValueError(
          f"adjust_lr={adjust_lr!r} and consistent_rms={consistent_rms!r} "
          "both set the shape scaling; pass one of them.")
    if adjust_lr == "match_rms_adamw":
      consistent_rms = 0.2

  def scale(x, d, path):
    _, fan_in, fan_out = matrix_shape(x.shape, d, path_name(path))
    if adjust_lr == "spectral_unclamped":
      return jnp.sqrt(fan_out / max(fan_in, 1)) * x
    if consistent_rms is None:
      # fan_in = 0: a zero-size leaf; any finite factor gives the empty update.
      return jnp.sqrt(max(1.0, fan_out / max(fan_in, 1))) * x
    return jnp.sqrt(jnp.maximum(fan_in, fan_out)) * consistent_rms * x

  def update_fn(updates, state, params=None):
    del params
    dims = resolve_dimension_numbers(weight_dimension_numbers, updates)
    paths, leaves, treedef, leaf_dims = leaf_dimension_numbers(updates, dims)
    return treedef.unflatten(
        [scale(x, d, p) for p, x, d in zip(paths, leaves, leaf_dims)]), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)
