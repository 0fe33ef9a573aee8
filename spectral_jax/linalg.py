"""Matrix functions for spectral gradient methods.

Every function treats the last two axes as the matrix and any leading axes as a
batch, works for tall and wide inputs, jits, and keeps the input dtype. This
module imports jax and numpy only: everything else in the package stands on it.

Contents:
  * ``polar``: the polar factor U Vᵀ of G = U Σ Vᵀ, exactly (``"svd"``,
    ``"eigh"``, ``"qdwh"``) or approximately (``"newton_schulz"``).
  * ``newton_schulz`` and the named coefficient schedules ``SCHEDULES``.
  * ``nuclear_norm``, ``stable_rank``, ``nuclear_rank``, ``spectral_entropy``
    and the Gram-matrix route to the stable rank for many columns.

References:
  Davis & Drusvyatskiy, *When do spectral gradient updates help in deep
  learning?*, arXiv:2512.04299.
  Amsel, Persson, Musco & Gower, *The Polar Express*, arXiv:2505.16932.
  Jordan et al., *Muon*, https://kellerjordan.github.io/posts/muon/.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "POLAR_METHODS",
    "SCHEDULES",
    "Schedule",
    "gram",
    "newton_schulz",
    "newton_schulz_flops",
    "nuclear_norm",
    "nuclear_rank",
    "polar",
    "resolve_schedule",
    "schedule_coeffs",
    "singular_values",
    "spectral_entropy",
    "stable_rank",
    "stable_rank_from_gram",
]

POLAR_METHODS = ("svd", "eigh", "qdwh", "newton_schulz")


# --------------------------------------------------------------------------
# Newton–Schulz coefficient schedules: data, not branches.
# --------------------------------------------------------------------------
class Schedule(NamedTuple):
  """A named Newton–Schulz schedule.

  Step ``i`` applies ``p(x) = a x + b x³ + c x⁵`` with ``(a, b, c) =
  coeffs[min(i, len(coeffs) - 1)]``: the last row repeats for longer runs.
  The input is first divided by ``safety · ‖G‖_F`` so that every singular value
  lies in (0, 1/safety].
  """

  name: str
  coeffs: tuple[tuple[float, float, float], ...]
  safety: float = 1.0


def _polar_express_rows(safety: float = 1.01):
  # Amsel et al. (2025), Algorithm 1, degree 5, ℓ = 1e-3. Every listed step but
  # the last is divided by the safety factor (a/s, b/s³, c/s⁵) so that
  # round-off cannot push a singular value past the interval the step was
  # optimised for; the final listed step then repeats.
  rows = (
      (8.28721201814563, -23.595886519098837, 17.300387312530933),
      (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
      (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
      (3.3184196573706015, -2.488488024314874, 0.51004894012372),
      (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
      (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
      (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
      (1.875, -1.25, 0.375),
  )
  damped = tuple(
      (a / safety, b / safety**3, c / safety**5) for a, b, c in rows[:-1]
  )
  return damped + rows[-1:]


SCHEDULES: dict[str, Schedule] = {
    # Keller Jordan's quintic, optax's default ("standard"). Maximises the
    # slope at zero; singular values end in roughly [0.7, 1.2], never 1.
    "jordan": Schedule("jordan", ((3.4445, -4.7750, 2.0315),)),
    "polar_express": Schedule("polar_express", _polar_express_rows(), 1.01),
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
_ALIASES = {"standard": "jordan", "muon": "jordan", "quintic": "jordan",
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
    name = _ALIASES.get(coeffs, coeffs)
    if name not in SCHEDULES:
      allowed = sorted(set(SCHEDULES) | set(_ALIASES))
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


def schedule_coeffs(coeffs, steps: int | None = None) -> np.ndarray:
  """The ``(steps, 3)`` float64 array of per-step coefficients.

  ``steps=None`` means 5 for a named schedule and the listed rows for a custom
  array; a larger ``steps`` repeats the last row, a smaller one takes the
  first ``steps`` rows.
  """
  sched = resolve_schedule(coeffs)
  rows = np.asarray(sched.coeffs, dtype=np.float64)
  if steps is None:
    # Named schedules default to Muon's five steps; a custom array runs its
    # listed rows.
    steps = len(rows) if sched.name == "custom" else 5
  _check_steps(steps)
  idx = np.minimum(np.arange(steps), len(rows) - 1)
  return rows[idx]


def _check_steps(steps) -> None:
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
    raise ValueError(f"steps must be an int >= 1, got {steps!r}.")
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}.")


def _check_matrix(x, fn: str) -> jax.Array:
  x = jnp.asarray(x)
  if x.ndim < 2:
    raise ValueError(
        f"{fn} expects an array whose last two axes are a matrix (ndim >= 2), "
        f"got shape {x.shape}.")
  if not (jnp.issubdtype(x.dtype, jnp.floating)
          or jnp.issubdtype(x.dtype, jnp.complexfloating)):
    raise ValueError(
        f"{fn} expects a floating or complex dtype, got {x.dtype}.")
  return x


def _mT(x):
  return jnp.swapaxes(x, -1, -2)


def _mH(x):
  return jnp.conj(_mT(x)) if jnp.iscomplexobj(x) else _mT(x)


def _safe_div(num, den):
  """num / den, and 0 where den == 0 (never NaN on zero inputs)."""
  ok = den > 0
  return jnp.where(ok, num / jnp.where(ok, den, 1), jnp.zeros_like(num))


def _frobenius(x):
  """‖x‖_F over the last two axes, without underflow or overflow.

  Squaring 1e-30 underflows in float32 (and 1e30 overflows), so the norm is
  taken of x / max|x| and scaled back.
  """
  scale = jnp.max(jnp.abs(x), axis=(-2, -1), keepdims=True)
  y = _safe_div(x, scale)
  return jnp.sqrt(jnp.sum(jnp.abs(y) ** 2, axis=(-2, -1), keepdims=True)) * scale


# --------------------------------------------------------------------------
# Newton–Schulz
# --------------------------------------------------------------------------
def newton_schulz(
    x: jax.Array,
    steps: int | None = None,
    coeffs="jordan",
    *,
    eps: float | None = None,
    compute_dtype=None,
) -> jax.Array:
  r"""Approximate polar factor by a Newton–Schulz iteration.

  .. math::
    X_0 = G / (s \|G\|_F + \epsilon), \qquad
    X_{i+1} = a_i X_i + (b_i A_i + c_i A_i^2) X_i, \quad A_i = X_i X_i^H

  with the input transposed first when it is tall, so that ``A`` is always the
  small Gram matrix. Singular vectors are preserved; each singular value goes
  through the scalar polynomial ``p_i(σ) = a_i σ + b_i σ³ + c_i σ⁵``.

  Args:
    x: array of shape ``(..., m, n)``, real or complex.
    steps: number of iterations; ``None`` means 5 for a named schedule and
      the listed rows for a custom ``(steps, 3)`` array.
    coeffs: a schedule name (``"jordan"``, ``"polar_express"``, ``"cubic"``,
      ``"dion"``), a ``Schedule`` or an array of shape ``(3,)`` / ``(steps, 3)``.
    eps: added to the normaliser (optax and Muon use 1e-8 / 1e-7). ``None``
      divides by the norm itself, so tiny inputs are orthogonalised too; a zero
      input gives a zero output either way.
    compute_dtype: dtype of the iteration (e.g. ``jnp.bfloat16``); the result
      is cast back to ``x.dtype``. Defaults to ``x.dtype``.

  Returns:
    Array of ``x``'s shape and dtype.
  """
  x = _check_matrix(x, "newton_schulz")
  sched = resolve_schedule(coeffs)
  rows = schedule_coeffs(sched, steps)
  out_dtype = x.dtype
  dtype = jnp.dtype(compute_dtype) if compute_dtype is not None else x.dtype
  tall = x.shape[-2] > x.shape[-1]
  if tall:
    x = _mT(x)
  norm = _frobenius(x.astype(jnp.promote_types(dtype, jnp.float32)))
  denom = norm * sched.safety + (0.0 if eps is None else eps)
  y = _safe_div(x.astype(denom.dtype), denom).astype(dtype)
  for a, b, c in rows:  # Unrolled: steps is small and static.
    gram_ = y @ _mH(y)
    poly = b * gram_ + c * (gram_ @ gram_) if c != 0.0 else b * gram_
    y = a * y + poly @ y
  if tall:
    y = _mT(y)
  return y.astype(out_dtype)


def newton_schulz_flops(shape: Sequence[int], steps: int) -> int:
  """Real multiply-add FLOPs of ``newton_schulz`` on an array of ``shape``."""
  *batch, m, n = shape
  m, n = min(m, n), max(m, n)
  per_step = 2 * m * m * n + 2 * m**3 + 2 * m * m * n
  return int(np.prod(batch, dtype=np.int64)) * steps * per_step


# --------------------------------------------------------------------------
# Exact polar factors
# --------------------------------------------------------------------------
def _default_rtol(x) -> float:
  return max(x.shape[-2:]) * float(jnp.finfo(x.dtype).eps)


def _polar_svd(x, rtol):
  u, s, vh = jnp.linalg.svd(x, full_matrices=False)
  keep = s > rtol * s[..., :1]
  return (u * keep[..., None, :].astype(u.dtype)) @ vh


def _polar_eigh(x, rtol):
  # The authors' route: polar(G) = (G Gᴴ)^{-1/2} G on the smaller side, with
  # the Gram matrix symmetrised and eigenvalues clamped at zero. It squares the
  # condition number, so it is computed in float64 where x64 is enabled.
  wide = x.shape[-2] <= x.shape[-1]
  y = x if wide else _mH(x)
  work = jnp.promote_types(y.dtype, jnp.float64 if jax.config.jax_enable_x64
                           else jnp.float32)
  y = y.astype(work)
  g = y @ _mH(y)
  g = 0.5 * (g + _mH(g))
  w, q = jnp.linalg.eigh(g)
  w = jnp.maximum(w, 0.0)
  keep = w > (rtol**2) * w[..., -1:]
  inv_sqrt = jnp.where(keep, jax.lax.rsqrt(jnp.where(keep, w, 1.0)), 0.0)
  out = (q * inv_sqrt[..., None, :].astype(q.dtype)) @ (_mH(q) @ y)
  out = out if wide else _mH(out)
  return out.astype(x.dtype)


def _polar_qdwh(x):
  wide = x.shape[-2] < x.shape[-1]
  y = _mT(x) if wide else x
  fn = lambda a: jax.scipy.linalg.polar(a, method="qdwh")[0]
  for _ in range(y.ndim - 2):
    fn = jax.vmap(fn)
  u = fn(y)
  u = jnp.where(jnp.all(y == 0, axis=(-2, -1), keepdims=True), 0, u)
  return _mT(u) if wide else u


def polar(x: jax.Array, method: str = "svd", *, rtol: float | None = None,
          **ns_kwargs) -> jax.Array:
  r"""The polar factor ``polar(G) = U Vᵀ`` of ``G = U Σ Vᵀ``.

  Singular values at or below ``rtol · σ_1`` are treated as zero (``"svd"`` and
  ``"eigh"``), so a rank-deficient input gives the partial isometry onto its
  range and a zero input gives zero.

  Args:
    x: array of shape ``(..., m, n)``.
    method: ``"svd"`` (exact, default), ``"eigh"`` (eigendecomposition of the
      Gram matrix of the smaller side, as the paper's code does; float64 when
      x64 is on), ``"qdwh"`` (``jax.scipy.linalg.polar``; full-rank inputs —
      on a rank-deficient input it returns *a* unitary polar factor, whose
      null-space part is not unique) or ``"newton_schulz"`` (approximate;
      ``ns_kwargs`` go to :func:`newton_schulz`).
    rtol: relative singular-value cut-off; default ``max(m, n) · eps(dtype)``.

  Returns:
    Array of ``x``'s shape and dtype.

  Raises:
    ValueError: unknown method or ``x.ndim < 2``.
  """
  if method not in POLAR_METHODS:
    raise ValueError(
        f"method={method!r} is not a polar method; allowed: {POLAR_METHODS}.")
  x = _check_matrix(x, "polar")
  if method == "newton_schulz":
    return newton_schulz(x, **ns_kwargs)
  if ns_kwargs:
    raise ValueError(
        f"{sorted(ns_kwargs)} apply to method='newton_schulz' only, got "
        f"method={method!r}.")
  if x.size == 0:
    return x
  rtol = _default_rtol(x) if rtol is None else rtol
  if method == "svd":
    return _polar_svd(x, rtol)
  if method == "eigh":
    return _polar_eigh(x, rtol)
  return _polar_qdwh(x)


# --------------------------------------------------------------------------
# Spectral summaries
# --------------------------------------------------------------------------
def singular_values(x: jax.Array) -> jax.Array:
  """Singular values over the last two axes, descending."""
  x = _check_matrix(x, "singular_values")
  return jnp.linalg.svd(x, compute_uv=False)


def nuclear_norm(x: jax.Array) -> jax.Array:
  """‖X‖_* = Σ σ_i over the last two axes."""
  return jnp.sum(singular_values(x), axis=-1)


def nuclear_rank(x: jax.Array) -> jax.Array:
  r"""nr(G) = ‖G‖_*² / ‖G‖_F², between 1 and rank(G); 0 for G = 0."""
  s = singular_values(x)
  return _safe_div(jnp.sum(s, -1) ** 2, jnp.sum(s**2, -1))


def stable_rank(x: jax.Array) -> jax.Array:
  r"""st(A) = ‖A‖_F² / ‖A‖_op², between 1 and rank(A); 0 for A = 0."""
  s = singular_values(x)
  return _safe_div(jnp.sum(s**2, -1), s[..., 0] ** 2)


def spectral_entropy(x: jax.Array, power: int = 1,
                     normalized: bool = True) -> jax.Array:
  r"""Spectral entropy H = −Σ p_i log p_i with p_i ∝ σ_iᵖ.

  ``power=1`` weighs by σ (paper 3's likely convention), ``power=2`` by σ²
  (energy). ``normalized`` divides by log(min(m, n)), giving a value in [0, 1].
  """
  if power not in (1, 2):
    raise ValueError(f"power must be 1 or 2, got {power!r}.")
  s = singular_values(x) ** power
  p = _safe_div(s, jnp.sum(s, -1, keepdims=True))
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
  a = _check_matrix(a, "gram")
  if dtype is None:
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  n = a.shape[-1]
  if chunk_size is None or chunk_size >= n:
    b = a.astype(dtype)
    return b @ _mH(b)
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
  n_full = n // chunk_size
  head = a[..., : n_full * chunk_size]
  chunks = jnp.moveaxis(
      head.reshape(*a.shape[:-1], n_full, chunk_size), -2, 0)

  def body(acc, c):
    c = c.astype(dtype)
    return acc + c @ _mH(c), None

  init = jnp.zeros((*a.shape[:-1], a.shape[-2]), dtype)
  acc, _ = jax.lax.scan(body, init, chunks)
  tail = a[..., n_full * chunk_size:].astype(dtype)
  return acc + tail @ _mH(tail)


def stable_rank_from_gram(g: jax.Array) -> jax.Array:
  """st(A) from its Gram matrix A Aᴴ: tr(G) / λ_max(G); 0 for G = 0."""
  g = _check_matrix(g, "stable_rank_from_gram")
  g = 0.5 * (g + _mH(g))
  lam_max = jnp.linalg.eigvalsh(g)[..., -1]
  return _safe_div(jnp.real(jnp.trace(g, axis1=-2, axis2=-1)), lam_max)
