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


def frobenius(x):
  """‖x‖_F over the last two axes, without underflow or overflow.

  Squaring 1e-30 underflows in float32 (and 1e30 overflows), so the norm is
  taken of x / max|x| and scaled back.
  """
  scale = jnp.max(jnp.abs(x), axis=(-2, -1), keepdims=True)
  y = safe_div(x, scale)
  return jnp.sqrt(jnp.sum(jnp.abs(y) ** 2, axis=(-2, -1), keepdims=True)) * scale


def unit_scale(x):
  """x / max|x| (0 for x = 0): polar factors and rank ratios are scale
  invariant, and a unit-scale input keeps σ² and Gram matrices inside the
  float range (1e±30 in float32 would underflow or overflow when squared)."""
  scale = jnp.max(jnp.abs(x), axis=(-2, -1), keepdims=True)
  return safe_div(x, scale)


def pow2_prescale(x):
  """``x · 2^-e`` per matrix with ``max |x_ij| < 2^e``: exact, ``|x_ij| < 1``.

  For rescalings read off the Gram matrix ``X Xᴴ`` (AOL, Schatten-4), which
  is formed before any normalisation and would overflow for float32 entries
  ~1e20. A power-of-two scale changes no mantissa.
  """
  big = jnp.max(jnp.abs(x), axis=(-2, -1), keepdims=True)
  _, exp = jnp.frexp(big)  # frexp(0) = (0, 0): zero slices stay as they are.
  if not jnp.iscomplexobj(x):
    return jnp.ldexp(x, -exp)
  return jax.lax.complex(jnp.ldexp(x.real, -exp), jnp.ldexp(x.imag, -exp))


def exact_dtype(dtype):
  """Working dtype of the LAPACK routes: at least float32 (there is no bf16
  or fp16 SVD / eigh, and their eps would make the rank cut-off meaningless)."""
  return jnp.promote_types(dtype, jnp.float32)
