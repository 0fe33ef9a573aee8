"""Shared pieces of the matrix functions: input checks, transposes and the
scale-safe helpers every routine in ``spectral_jax.linalg`` stands on.

Public within the package (other modules import these names); not part of
the user API.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_matrix(x, fn: str, name: str = "x") -> jax.Array:
  """``x`` as an array whose last two axes are a float or complex matrix."""
  x = jnp.asarray(x)
  if x.ndim < 2:
    raise ValueError(
        f"{fn}: {name} must be an array whose last two axes are a matrix "
        f"(ndim >= 2), got {name} with shape {x.shape}.")
  if not (jnp.issubdtype(x.dtype, jnp.floating)
          or jnp.issubdtype(x.dtype, jnp.complexfloating)):
    raise ValueError(
        f"{fn}: {name} must have a floating or complex dtype, got "
        f"{name}.dtype={x.dtype}.")
  return x


def check_steps(steps, name: str = "steps") -> None:
  """Raise unless ``steps`` is a Python or NumPy int >= 1."""
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
    raise ValueError(f"{name} must be an int >= 1, got {steps!r}.")
  if steps < 1:
    raise ValueError(f"{name} must be >= 1, got {steps}.")


def mT(x):
  """Transpose of the last two axes."""
  return jnp.swapaxes(x, -1, -2)


def mH(x):
  """Conjugate transpose of the last two axes."""
  return jnp.conj(mT(x)) if jnp.iscomplexobj(x) else mT(x)


def safe_div(num, den):
  """num / den, and 0 where den == 0 (never NaN on zero inputs).

  Only an exact zero is guarded: a NaN or inf denominator propagates, so a
  non-finite input never turns silently into a zero update.
  """
  ok = den != 0
  return jnp.where(ok, num / jnp.where(ok, den, 1), jnp.zeros_like(num))


def times_pow2(x, k):
  """``x · 2^k`` for an integer array ``k`` (broadcast), exactly.

  In two halves, so no factor is subnormal: XLA on CPU flushes subnormals to
  zero, and ``x / 1e38`` (computed as ``x · (1/1e38)``) gave 0 in float32.
  """
  half = k // 2
  one = jnp.ones((), x.real.dtype)
  f1 = jnp.ldexp(one, half).astype(x.dtype)
  f2 = jnp.ldexp(one, k - half).astype(x.dtype)
  return x * f1 * f2


def unit_exponent(x):
  """The int exponent ``e`` per matrix with ``max |x_ij| ∈ [2^(e-1), 2^e)``;
  0 for a zero matrix."""
  big = jnp.max(jnp.abs(x), axis=(-2, -1), keepdims=True)
  return jnp.frexp(big)[1]


def unit_scale(x):
  """``x · 2^-e`` with ``max |x_ij| ∈ [1/2, 1)`` (0 for x = 0): exact, since
  a power of two changes no mantissa. Polar factors and rank ratios are scale
  invariant, and a unit-scale input keeps σ² and Gram matrices inside the
  float range (1e±30 in float32 would underflow or overflow when squared)."""
  return times_pow2(x, -unit_exponent(x))


def frobenius(x):
  """‖x‖_F over the last two axes, without underflow or overflow in the
  squares (taken at unit scale, then scaled back)."""
  e = unit_exponent(x)
  y = times_pow2(x, -e)
  norm = jnp.sqrt(jnp.sum(jnp.abs(y) ** 2, axis=(-2, -1), keepdims=True))
  return times_pow2(norm, e)


def exact_dtype(dtype):
  """Working dtype of the LAPACK routes: at least float32 (there is no bf16
  or fp16 SVD / eigh, and their eps would make the rank cut-off meaningless)."""
  return jnp.promote_types(dtype, jnp.float32)
