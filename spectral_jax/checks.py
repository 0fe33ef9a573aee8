"""Argument checks shared by the transforms and optimizers.

Each raises ``ValueError`` naming the argument, the value and what is
allowed, at construction time, before any work. Traced values (from
``optax.inject_hyperparams``) pass: they are checked where they are used.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def concrete(value) -> float | None:
  """``float(value)`` for a concrete real scalar, ``None`` if traced/array."""
  if callable(value) or value is None:
    return None
  try:
    return float(value)
  except (TypeError, jax.errors.ConcretizationTypeError):
    return None


def check_choice(name: str, value, allowed: Sequence[str]) -> None:
  if not isinstance(value, str) or value not in allowed:
    raise ValueError(f"{name}={value!r} is not allowed; allowed: "
                     f"{tuple(allowed)}.")


def check_range(name: str, value, lo=None, hi=None, *, lo_open=False,
                 hi_open=False, what="") -> None:
  if isinstance(value, (str, bytes, bool)) or (
      isinstance(value, np.ndarray) and not np.issubdtype(value.dtype,
                                                          np.number)):
    # float("0.02") would pass and fail later, inside optax.
    raise ValueError(f"{name}={value!r} is not allowed; {name} must be {what}"
                     f" (a number, not {type(value).__name__}).")
  v = concrete(value)
  if v is None:
    return
  bad = (not math.isfinite(v)
         or (lo is not None and (v <= lo if lo_open else v < lo))
         or (hi is not None and (v >= hi if hi_open else v > hi)))
  if bad:
    raise ValueError(f"{name}={value!r} is not allowed; {name} must be {what}.")


def check_mu_dtype(mu_dtype):
  """The canonical ``mu_dtype`` (``None`` stays ``None``)."""
  if mu_dtype is None:
    return None
  try:
    dtype = jax.dtypes.canonicalize_dtype(mu_dtype)
  except TypeError:
    dtype = None
  if dtype is None or not jnp.issubdtype(dtype, jnp.inexact):
    raise ValueError(f"mu_dtype={mu_dtype!r} is not allowed; use a floating "
                     "or complex dtype or None.")
  return dtype


def check_ns_steps(ns_steps, allow_traced: bool = False) -> int | None:
  """The int ``ns_steps``; ``None`` if traced and ``allow_traced``.

  ``optax.inject_hyperparams`` injects every numeric default, ``ns_steps``
  included, so under ``jit`` it arrives as a tracer (optax then loops with a
  dynamic trip count; so do we).
  """
  if isinstance(ns_steps, bool):
    raise ValueError(f"ns_steps={ns_steps!r} is not allowed; ns_steps must be "
                     "an int >= 1.")
  try:
    steps = int(ns_steps)
  except (TypeError, jax.errors.ConcretizationTypeError):
    if allow_traced and isinstance(ns_steps, jax.core.Tracer):
      return None
    raise ValueError(
        f"ns_steps={ns_steps!r} is not allowed; ns_steps must be an int >= 1."
    ) from None
  if steps != ns_steps or steps < 1:
    raise ValueError(f"ns_steps={ns_steps!r} is not allowed; ns_steps must be "
                     "an int >= 1.")
  return steps


def check_compute_dtype(compute_dtype, exact_method: str | None = None):
  """The canonical ``compute_dtype`` (``None`` stays ``None``).

  ``exact_method``: the exact polar method it is for (they need float32 or
  wider), or ``None``.
  """
  if compute_dtype is None:
    return None
  try:
    dtype = jnp.dtype(compute_dtype)
  except TypeError:
    dtype = None
  if dtype is None or not jnp.issubdtype(dtype, jnp.inexact):
    raise ValueError(f"compute_dtype={compute_dtype!r} is not allowed; use a "
                     "floating or complex dtype (e.g. jnp.bfloat16) or None.")
  if exact_method is not None and dtype.itemsize < 4 and not (
      jnp.issubdtype(dtype, jnp.complexfloating)):
    raise ValueError(
        f"compute_dtype={compute_dtype!r} is not allowed with polar_method="
        f"{exact_method!r}: exact polar factors need float32 or wider.")
  return dtype


def check_learning_rate(name: str, value) -> None:
  """A schedule (any callable), or a finite number >= 0."""
  if not callable(value):
    check_range(name, value, 0.0, what="a finite number >= 0 or a schedule")


def check_muon_family(*, learning_rate, adam_learning_rate, adam_b1, adam_b2,
                      mu_dtype, **nonnegative) -> None:
  """The arguments ``muon``-style optimizers check themselves at build time
  (optax.adamw checks none of them; the transforms check the rest):
  learning rates, AdamW's betas in [0, 1), the momentum dtype, and every
  keyword in ``nonnegative`` (weight decays, eps_root, ...) finite and >= 0.
  """
  check_learning_rate("learning_rate", learning_rate)
  check_learning_rate("adam_learning_rate", adam_learning_rate)
  for name, value in (("adam_b1", adam_b1), ("adam_b2", adam_b2)):
    check_range(name, value, 0.0, 1.0, hi_open=True, what="in [0, 1)")
  check_mu_dtype(mu_dtype)
  for name, value in nonnegative.items():
    check_range(name, value, 0.0, what="a finite number >= 0")
