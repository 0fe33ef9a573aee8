"""Spectral summaries: singular values, nuclear norm, stable and nuclear
ranks, spectral entropy, Gram accumulation and the operator norm by power
iteration. Batched over leading axes; computed in at least float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax.linalg.base import check_matrix
from spectral_jax.linalg.base import check_steps
from spectral_jax.linalg.base import exact_dtype
from spectral_jax.linalg.base import mH
from spectral_jax.linalg.base import safe_div
from spectral_jax.linalg.base import unit_scale


def singular_values(x: jax.Array) -> jax.Array:
  """Singular values over the last two axes, descending.

  Computed in at least float32 (16-bit inputs are upcast: there is no 16-bit
  SVD); the result has that working dtype (real).
  """
  x = check_matrix(x, "singular_values")
  return jnp.linalg.svd(x.astype(exact_dtype(x.dtype)), compute_uv=False)


def _unit_singular_values(x, fn):
  # Ratios of singular values only: σ/σ_1, so that σ² neither overflows
  # (1e30 in float32) nor underflows (1e-30); zero stays zero. The input is
  # brought to unit scale first: an SVD of entries near the float maximum
  # overflows inside LAPACK (nuclear_rank(G·1e38) was NaN).
  x = check_matrix(x, fn)
  s = singular_values(unit_scale(x) if x.size else x)
  return safe_div(s, s[..., :1])


def nuclear_norm(x: jax.Array) -> jax.Array:
  """‖X‖_* = Σ σ_i over the last two axes."""
  return jnp.sum(singular_values(x), axis=-1)


def nuclear_rank(x: jax.Array) -> jax.Array:
  r"""nr(G) = ‖G‖_*² / ‖G‖_F², between 1 and rank(G); 0 for G = 0."""
  s = _unit_singular_values(x, "nuclear_rank")
  return safe_div(jnp.sum(s, -1) ** 2, jnp.sum(s**2, -1))


def stable_rank(x: jax.Array) -> jax.Array:
  r"""st(A) = ‖A‖_F² / ‖A‖_op², between 1 and rank(A); 0 for A = 0."""
  s = _unit_singular_values(x, "stable_rank")
  return jnp.sum(s**2, -1)  # s_1 = 1 here (or 0 for A = 0).


def spectral_entropy(x: jax.Array, power: int = 1,
                     normalized: bool = True) -> jax.Array:
  r"""Spectral entropy H = −Σ p_i log p_i with p_i = σ_iᵖ / Σ_j σ_jᵖ.

  ``power=1`` weighs by σ (paper 3's likely convention), ``power=2`` by σ²
  (energy). ``normalized`` divides by log(min(m, n)), giving a value in [0, 1]
  (and 0 for a 1×n or n×1 matrix). A zero matrix has entropy 0.
  """
  if isinstance(power, bool) or power not in (1, 2):
    raise ValueError(f"power must be 1 or 2, got {power!r}.")
  x = check_matrix(x, "spectral_entropy")
  s = _unit_singular_values(x, "spectral_entropy") ** power
  p = safe_div(s, jnp.sum(s, -1, keepdims=True))
  h = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1)), 0), -1)
  if normalized:
    k = min(x.shape[-2:])
    h = h / np.log(k) if k > 1 else jnp.zeros_like(h)
  return h


def gram(a: jax.Array, chunk_size: int | None = None, dtype=None) -> jax.Array:
  r"""Σ_j a_j a_jᴴ over the columns a_j of ``a`` (features × samples).

  Accumulates over column chunks of ``chunk_size`` in ``dtype`` (default
  float32, or float64 with x64) so a long token axis never has to be held in
  high precision at once — what the paper's tracker does for NanoGPT.
  """
  a = check_matrix(a, "gram", "a")
  if dtype is None:
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  if jnp.iscomplexobj(a):  # Never drop the imaginary part.
    dtype = jnp.promote_types(dtype, jnp.complex64)
  if chunk_size is not None and (isinstance(chunk_size, bool) or not
                                 isinstance(chunk_size, (int, np.integer))
                                 or chunk_size < 1):
    raise ValueError(f"chunk_size must be None or an int >= 1, got "
                     f"{chunk_size!r}.")
  n = a.shape[-1]
  if chunk_size is None or chunk_size >= n:
    b = a.astype(dtype)
    return b @ mH(b)
  n_full = n // chunk_size
  head = a[..., : n_full * chunk_size]
  chunks = jnp.moveaxis(
      head.reshape(*a.shape[:-1], n_full, chunk_size), -2, 0)

  def body(acc, c):
    c = c.astype(dtype)
    return acc + c @ mH(c), None

  init = jnp.zeros((*a.shape[:-1], a.shape[-2]), dtype)
  acc, _ = jax.lax.scan(body, init, chunks)
  tail = a[..., n_full * chunk_size:].astype(dtype)
  return acc + tail @ mH(tail)


def operator_norm_sq(x: jax.Array, iters: int = 100) -> jax.Array:
  r"""‖X‖_op² = λ_max(XᴴX) by power iteration on the smaller Gram matrix.

  One Gram product, then ``iters`` matrix–vector products: far cheaper than an
  SVD when it is needed at every step (the paper's per-layer step sizes). The
  Rayleigh quotient's relative error is ~(σ₂/σ₁)^{4·iters}, so this is exact
  to working precision for matrices with a spectral gap, such as the
  mean-spiked activations of non-centred nonlinearities; use
  :func:`singular_values` where there may be none. Batched; 0 for X = 0.
  """
  x = check_matrix(x, "operator_norm_sq", "x")
  check_steps(iters, "iters")
  y = x if x.shape[-2] >= x.shape[-1] else mH(x)
  g = mH(y) @ y
  k = g.shape[-1]
  # A fixed, non-symmetric start: never orthogonal to the top eigenvector of
  # the non-negative Gram matrices met in practice, and deterministic.
  v0 = (1.0 + 0.01 * jnp.sin(jnp.arange(k))) / np.sqrt(k)
  v = jnp.broadcast_to(v0.astype(g.dtype), g.shape[:-1])

  def body(_, v):
    w = jnp.einsum("...ij,...j->...i", g, v)
    return safe_div(w, jnp.linalg.norm(w, axis=-1, keepdims=True))

  v = jax.lax.fori_loop(0, iters, body, v)
  return jnp.real(jnp.einsum("...i,...ij,...j->...", jnp.conj(v), g, v))


def stable_rank_from_gram(g: jax.Array) -> jax.Array:
  """st(A) from its Gram matrix A Aᴴ: tr(G) / λ_max(G); 0 for G = 0."""
  g = check_matrix(g, "stable_rank_from_gram", "g")
  g = 0.5 * (g + mH(g))
  lam_max = jnp.linalg.eigvalsh(g)[..., -1]
  return safe_div(jnp.real(jnp.trace(g, axis1=-2, axis2=-1)), lam_max)
