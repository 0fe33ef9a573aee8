"""Polar factors: exact (SVD, Gram eigendecomposition, QDWH) and the
dispatcher ``polar``, which sends ``"newton_schulz"`` to the one engine in
``spectral_jax.linalg.ns``.

References:
  Higham, Mackey, Mackey & Tisseur, *Computing the polar decomposition and the
  matrix sign decomposition in matrix groups*, 2004.
  Nakatsukasa & Higham, *Stable and efficient spectral divide and conquer
  algorithms*, SIAM J. Sci. Comput. 2013 (QDWH).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax.linalg.base import check_matrix
from spectral_jax.linalg.base import exact_dtype
from spectral_jax.linalg.base import mH
from spectral_jax.linalg.base import mT
from spectral_jax.linalg.base import unit_scale
from spectral_jax.linalg.ns import newton_schulz

POLAR_METHODS = ("svd", "eigh", "qdwh", "newton_schulz", "auto")


def _default_rtol(x) -> float:
  return max(x.shape[-2:]) * float(jnp.finfo(exact_dtype(x.dtype)).eps)


def _polar_svd(x, rtol):
  u, s, vh = jnp.linalg.svd(x, full_matrices=False)
  keep = s > rtol * s[..., :1]
  return (u * keep[..., None, :].astype(u.dtype)) @ vh


def _polar_eigh(x, rtol):
  # The authors' route: polar(G) = (G Gᴴ)^{-1/2} G on the smaller side, with
  # the Gram matrix symmetrised and eigenvalues clamped at zero. It squares the
  # condition number, so it is computed in float64 where x64 is enabled.
  wide = x.shape[-2] <= x.shape[-1]
  y = x if wide else mH(x)
  work = jnp.promote_types(y.dtype, jnp.float64 if jax.config.jax_enable_x64
                           else jnp.float32)
  y = y.astype(work)
  g = y @ mH(y)
  g = 0.5 * (g + mH(g))
  w, q = jnp.linalg.eigh(g)
  w = jnp.maximum(w, 0.0)
  # eigh resolves eigenvalues only to ~k·eps·λ_max, so smaller ones are noise
  # and must not be inverted, whatever rtol asks for: in float32 this drops
  # σ < √(k·eps)·σ_1 (≈ 5e-3·σ_1 at k = 256); in float64, σ < 2e-7·σ_1.
  k = g.shape[-1]
  floor = max(rtol**2, k * float(jnp.finfo(work).eps))
  keep = w > floor * w[..., -1:]
  inv_sqrt = jnp.where(keep, jax.lax.rsqrt(jnp.where(keep, w, 1.0)), 0.0)
  # (G Gᴴ)^{-1/2} as a k×k matrix first: k³ + k²n instead of 2 k²n.
  root = (q * inv_sqrt[..., None, :].astype(q.dtype)) @ mH(q)
  out = root @ y
  out = out if wide else mH(out)
  return out


def _polar_qdwh(x):
  wide = x.shape[-2] < x.shape[-1]
  y = mT(x) if wide else x
  fn = lambda a: jax.scipy.linalg.polar(a, method="qdwh")[0]
  for _ in range(y.ndim - 2):
    fn = jax.vmap(fn)
  u = fn(y)
  u = jnp.where(jnp.all(y == 0, axis=(-2, -1), keepdims=True), 0, u)
  return mT(u) if wide else u


def _auto_method(x) -> str:
  """The cheapest exact method for ``x`` on this backend (see ``polar``)."""
  backend = jax.default_backend()
  if backend == "cpu":
    # Measured on CPU (BENCHMARKS.md): eigh of the small Gram matrix is the
    # fastest exact route (it beat LAPACK's SVD ~2× and QDWH more), but it
    # squares κ, so it is exact to fp32 only with a float64 Gram matrix.
    if jax.config.jax_enable_x64 or x.dtype == jnp.float64:
      return "eigh"
    return "svd"
  # Not measured here (no accelerator was available): QDWH is made of
  # matmuls and QRs, which TPUs run well; GPUs have batched Jacobi SVDs.
  return "qdwh" if backend == "tpu" else "svd"


def polar(x: jax.Array, method: str = "svd", *, rtol: float | None = None,
          **ns_kwargs) -> jax.Array:
  r"""The polar factor ``polar(G) = U Vᴴ`` of ``G = U Σ Vᴴ``.

  Singular values at or below ``rtol · σ_1`` are treated as zero (``"svd"`` and
  ``"eigh"``), so a rank-deficient input gives the partial isometry onto its
  range and a zero input gives zero. The exact methods work on ``x / max|x|``
  in at least float32 (the polar factor is scale invariant), so inputs of
  scale 1e±30 neither underflow nor overflow, and 16-bit inputs work.

  Args:
    x: array of shape ``(..., m, n)``, real or complex.
    method: ``"svd"`` (exact, default), ``"eigh"`` (eigendecomposition of the
      Gram matrix of the smaller side, as the paper's code does; float64 when
      x64 is on; in float32 it drops σ < √(k·eps)·σ_1, k the smaller side,
      so it is accurate only for well-conditioned inputs, κ ≲ 1e2), ``"qdwh"`` (``jax.scipy.linalg.polar``; exact for full-rank inputs —
      on a rank-deficient input it equals the polar factor on the range, but
      its null-space part is amplified rounding noise with singular values
      anywhere in [0, 1], so use ``"svd"`` or ``"eigh"`` when gradients may be
      rank-deficient), ``"auto"`` (the fastest exact method for
      the backend, chosen from CPU measurements: ``"eigh"`` when x64 is on or
      ``x`` is float64, else ``"svd"``; unmeasured guesses elsewhere: TPU
      ``"qdwh"``, GPU ``"svd"``) or
      ``"newton_schulz"`` (approximate; ``ns_kwargs`` go to
      :func:`newton_schulz`).
    rtol: relative singular-value cut-off; default ``max(m, n) · eps`` of the
      working dtype (at least float32). Ignored by ``"qdwh"`` and
      ``"newton_schulz"``.

  Returns:
    Array of ``x``'s shape and dtype.

  Raises:
    ValueError: unknown method, ``rtol`` negative or not finite,
      ``x.ndim < 2`` or a non-float ``x``.

  References:
    Higham, Mackey, Mackey & Tisseur, *Computing the polar decomposition and
    the matrix sign decomposition in matrix groups*, 2004;
    Nakatsukasa & Higham, *Stable and efficient spectral divide and conquer
    algorithms*, SIAM J. Sci. Comput. 2013 (QDWH).
  """
  if method not in POLAR_METHODS:
    raise ValueError(
        f"method={method!r} is not a polar method; allowed: {POLAR_METHODS}.")
  if rtol is not None and not (isinstance(rtol, (int, float, np.floating,
                                                 np.integer))
                               and not isinstance(rtol, bool)
                               and np.isfinite(rtol) and rtol >= 0):
    # rtol < 0 would keep zero singular values (0 > rtol·σ₁): not a cut-off.
    raise ValueError(f"rtol={rtol!r} is not allowed; rtol must be a finite "
                     "number >= 0, or None (the default).")
  x = check_matrix(x, "polar")
  if method == "newton_schulz":
    return newton_schulz(x, **ns_kwargs)
  if ns_kwargs:
    raise ValueError(
        f"{sorted(ns_kwargs)} apply to method='newton_schulz' only, got "
        f"method={method!r}.")
  if x.size == 0:
    return x
  if method == "auto":
    method = _auto_method(x)
  rtol = _default_rtol(x) if rtol is None else float(rtol)
  return _polar_exact(x, method, rtol)


def _polar_exact_value(x, method, rtol):
  y = unit_scale(x.astype(exact_dtype(x.dtype)))
  if method == "svd":
    out = _polar_svd(y, rtol)
  elif method == "eigh":
    out = _polar_eigh(y, rtol)
  else:
    out = _polar_qdwh(y)
  return out.astype(x.dtype)


_polar_exact = jax.custom_jvp(_polar_exact_value, nondiff_argnums=(1, 2))


@_polar_exact.defjvp
def _polar_exact_jvp(method, rtol, primals, tangents):
  r"""The derivative of ``polar``, finite at repeated singular values.

  Differentiating through an SVD divides by σ_i² − σ_j² and is NaN at
  repeated singular values (e.g. the identity), where the polar factor is
  smooth. For a tall X = U Σ Vᴴ (a wide one is transposed), with
  A = Uᴴ dX V:

  .. math::
    dP = U \frac{A - A^H}{\sigma_i + \sigma_j} V^H
       + (I - U U^H)\, dX\, V \Sigma^{-1} V^H

  (Higham, *Functions of Matrices*, 2008, §8.1). Only singular values above
  the cut-off ``rtol · σ_1`` take part: at a rank-deficient X this is the
  derivative of U_k V_kᴴ with the null directions held fixed (the polar
  factor is not differentiable there).
  """
  (x,), (dx,) = primals, tangents
  p = _polar_exact(x, method, rtol)
  work = exact_dtype(x.dtype)
  xw, dxw = x.astype(work), dx.astype(work)
  wide = x.shape[-2] < x.shape[-1]
  if wide:
    xw, dxw = mH(xw), mH(dxw)
  u, s, vh = jnp.linalg.svd(xw, full_matrices=False)
  keep = s > rtol * s[..., :1]
  u = u * keep[..., None, :].astype(u.dtype)
  v = mH(vh) * keep[..., None, :].astype(vh.dtype)
  a = mH(u) @ dxw @ v
  both = keep[..., :, None] & keep[..., None, :]
  den = s[..., :, None] + s[..., None, :]
  k = jnp.where(both, (a - mH(a)) / jnp.where(both, den, 1), 0)
  inv_s = jnp.where(keep, 1 / jnp.where(keep, s, 1), 0)
  resid = dxw - u @ (mH(u) @ dxw)
  dp = u @ k @ mH(v) + ((resid @ v) * inv_s[..., None, :]) @ mH(v)
  if wide:
    dp = mH(dp)
  return p, dp.astype(x.dtype)
