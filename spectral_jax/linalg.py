"""Matrix functions for spectral gradient methods.

Every function treats the last two axes as the matrix and any leading axes as a
batch, works for tall and wide inputs and jits. Polar factors keep the input
dtype; spectral summaries come in at least float32 (there is no 16-bit SVD).
This module imports jax and numpy only: everything else in the package stands
on it.

Contents:
  * ``polar``: the polar factor U Vᵀ of G = U Σ Vᵀ, exactly (``"svd"``,
    ``"eigh"``, ``"qdwh"``, or ``"auto"``: the fastest of these measured for
    the backend) or approximately (``"newton_schulz"``).
  * ``newton_schulz`` (direct or m×m Gram-polynomial form, Frobenius or
    Schatten-8 start), the named coefficient schedules ``SCHEDULES`` and
    ``newton_schulz_flops``.
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
    "NS_NORMS",
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
    "operator_norm_sq",
]

POLAR_METHODS = ("svd", "eigh", "qdwh", "newton_schulz", "auto")


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


def _check_steps(steps, name: str = "steps") -> None:
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
    raise ValueError(f"{name} must be an int >= 1, got {steps!r}.")
  if steps < 1:
    raise ValueError(f"{name} must be >= 1, got {steps}.")


def _check_matrix(x, fn: str, name: str = "x") -> jax.Array:
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


def _mT(x):
  return jnp.swapaxes(x, -1, -2)


def _mH(x):
  return jnp.conj(_mT(x)) if jnp.iscomplexobj(x) else _mT(x)


def _safe_div(num, den):
  """num / den, and 0 where den == 0 (never NaN on zero inputs).

  Only an exact zero is guarded: a NaN or inf denominator propagates, so a
  non-finite input never turns silently into a zero update.
  """
  ok = den != 0
  return jnp.where(ok, num / jnp.where(ok, den, 1), jnp.zeros_like(num))


def _frobenius(x):
  """‖x‖_F over the last two axes, without underflow or overflow.

  Squaring 1e-30 underflows in float32 (and 1e30 overflows), so the norm is
  taken of x / max|x| and scaled back.
  """
  scale = jnp.max(jnp.abs(x), axis=(-2, -1), keepdims=True)
  y = _safe_div(x, scale)
  return jnp.sqrt(jnp.sum(jnp.abs(y) ** 2, axis=(-2, -1), keepdims=True)) * scale


def _unit_scale(x):
  """x / max|x| (0 for x = 0): polar factors and rank ratios are scale
  invariant, and a unit-scale input keeps σ² and Gram matrices inside the
  float range (1e±30 in float32 would underflow or overflow when squared)."""
  scale = jnp.max(jnp.abs(x), axis=(-2, -1), keepdims=True)
  return _safe_div(x, scale)


def _exact_dtype(dtype):
  """Working dtype of the LAPACK routes: at least float32 (there is no bf16
  or fp16 SVD / eigh, and their eps would make the rank cut-off meaningless)."""
  return jnp.promote_types(dtype, jnp.float32)


# --------------------------------------------------------------------------
# Newton–Schulz
# --------------------------------------------------------------------------
NS_NORMS = ("frobenius", "schatten8")

# On the Gram ("polynomial") form of Newton–Schulz: every iterate is
# X_k = Q_k X_0 with Q_k a polynomial in A_0 = X_0 X_0ᴴ, so for a wide m×n
# input the loop can run on m×m matrices only and touch X_0 twice (A_0 and the
# final Q X_0). Real FLOPs for s quintic steps (s >= 2):
#   direct: s (4 m² n + 2 m³)       gram: 4 m² n + (4 s - 3) · 2 m³
# so the Gram form wins once n/m exceeds about 1.5 (s = 5): 0.56× the FLOPs at
# 256×1024. It cannot resolve σ² below eps·σ_1² (A_0 is rounded once, never
# re-formed from X), so it limits the *attainable* accuracy: measured in
# float32 on 256×768 / 256×1024 (Gaussian and logspace(0,-3) spectra), its
# error to the exact polar factor equals the direct form's to <= 3e-5
# relative at <= 6 steps, is 0.1% worse at 7, 2.5% at 8, and stalls near 4e-3
# at 20 steps where the direct form reaches 2e-5. Hence "auto" uses it only
# for <= 6 steps (the Muon regime), n >= 1.5 m and 32/64-bit compute dtypes
# (16-bit rounding times ‖Q‖ ~ a^s would show).
_GRAM_FORM_MIN_ASPECT = 1.5
_GRAM_FORM_MAX_STEPS = 6


def _use_gram_form(m: int, n: int, dtype, steps: int, gram_form) -> bool:
  if gram_form is not None:
    return bool(gram_form)
  if jnp.dtype(dtype).itemsize < 4 and not jnp.issubdtype(
      dtype, jnp.complexfloating):
    return False
  return (2 <= steps <= _GRAM_FORM_MAX_STEPS
          and n >= _GRAM_FORM_MIN_ASPECT * m)


def newton_schulz(
    x: jax.Array,
    steps: int | None = None,
    coeffs="jordan",
    *,
    eps: float | None = None,
    compute_dtype=None,
    norm: str = "frobenius",
    gram_form: bool | None = None,
) -> jax.Array:
  r"""Approximate polar factor by a Newton–Schulz iteration.

  .. math::
    X_0 = G / (s \|G\|_F + \epsilon), \qquad
    X_{i+1} = a_i X_i + (b_i A_i + c_i A_i^2) X_i, \quad A_i = X_i X_i^H

  with the input transposed first when it is tall, so that ``A`` is always the
  small Gram matrix. Singular vectors are preserved; each singular value goes
  through the scalar polynomial ``p_i(σ) = a_i σ + b_i σ³ + c_i σ⁵``.

  With ``norm="schatten8"`` the start is divided further by
  ``s ‖X_0‖_{S_8} = s (Σ σ_i⁸)^{1/8} = s ‖A_0²‖_F^{1/4}``, a much tighter
  upper bound on σ_1 than ‖G‖_F that costs no extra matrix product (the
  first step computes ``A_0²`` anyway): the small singular values start
  larger, so fewer steps reach the same accuracy.

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
    norm: ``"frobenius"`` (the published recipe above, default) or
      ``"schatten8"`` (tighter, see above).
    gram_form: ``True`` iterates on the m×m polynomial ``Q_k`` with
      ``X_k = Q_k X_0`` (fewer FLOPs when n ≫ m), ``False`` on ``X_k``
      itself; ``None`` uses the Gram form when n ≥ 1.5 m (after the
      transpose), 2 ≤ steps ≤ 6 and the compute dtype has ≥ 32 bits. Same
      iteration, reordered: equal results up to rounding, but the Gram form's
      attainable accuracy is limited to about eps·κ², which matters only
      for many steps on ill-conditioned inputs (see the module comment).

  Returns:
    Array of ``x``'s shape and dtype.

  Raises:
    ValueError: ``x.ndim < 2``, non-float ``x``, bad ``steps``, ``coeffs`` or
      ``norm``.

  References:
    Jordan et al., *Muon*, https://kellerjordan.github.io/posts/muon/.
    Amsel, Persson, Musco & Gower, *The Polar Express*, arXiv:2505.16932.
  """
  x = _check_matrix(x, "newton_schulz")
  if norm not in NS_NORMS:
    raise ValueError(f"norm={norm!r} is not allowed; allowed: {NS_NORMS}.")
  sched = resolve_schedule(coeffs)
  rows = schedule_coeffs(sched, steps)
  out_dtype = x.dtype
  dtype = jnp.dtype(compute_dtype) if compute_dtype is not None else x.dtype
  if jnp.iscomplexobj(x) and not jnp.issubdtype(dtype, jnp.complexfloating):
    dtype = jnp.promote_types(dtype, jnp.complex64)
  if x.size == 0:
    return x
  tall = x.shape[-2] > x.shape[-1]
  if tall:
    x = _mT(x)
  m, n = x.shape[-2:]
  # Normalise in at least float32 (a bf16 ‖G‖_F loses digits), keeping the
  # complex part: the norm is real, x need not be.
  x = x.astype(jnp.promote_types(dtype, jnp.float32))
  fro = _frobenius(x)
  safety = sched.safety
  if norm == "frobenius":
    denom = fro * safety + (0.0 if eps is None else eps)
  else:  # The safety factor is applied to the tighter bound instead.
    denom = fro + (0.0 if eps is None else eps)
  y = _safe_div(x, denom).astype(dtype)
  if _use_gram_form(m, n, dtype, len(rows), gram_form):
    y = _ns_gram(y, rows, norm, safety)
  else:
    y = _ns_direct(y, rows, norm, safety)
  if tall:
    y = _mT(y)
  return y.astype(out_dtype)


def _schatten8_scale(a2, safety):
  """1 / (safety · ‖A²‖_F^{1/4}), and 1 where A = 0 (nothing to scale)."""
  r = jnp.sqrt(jnp.sqrt(_frobenius(a2.astype(
      jnp.promote_types(a2.dtype, jnp.float32))))) * safety
  return jnp.where(r > 0, 1.0 / jnp.where(r > 0, r, 1.0), 1.0)


def _ns_direct(y, rows, norm, safety):
  eye = jnp.eye(y.shape[-2], dtype=y.dtype)
  for i, (a, b, c) in enumerate(rows):  # Unrolled: steps is small, static.
    g = y @ _mH(y)
    g2 = g @ g if (c != 0.0 or (i == 0 and norm == "schatten8")) else None
    if i == 0 and norm == "schatten8":
      inv = _schatten8_scale(g2, safety)
      y, g, g2 = (y * inv.astype(y.dtype), g * (inv**2).astype(g.dtype),
                  g2 * (inv**4).astype(g.dtype))
    # a·X folded into the m×m factor: (aI + bA + cA²) X touches the large X
    # once per step instead of twice (CPU, fastest of 15 calls: 4–7% less).
    poly = a * eye + b * g + (c * g2 if c != 0.0 else 0.0)
    y = poly @ y
  return y


def _ns_gram(y, rows, norm, safety):
  # X_k = Q_k X_0, A_k = Q_k A_0 Q_kᴴ, Q_{k+1} = p_k(A_k) Q_k, where p_k(A) =
  # a I + b A + c A². Every matrix here is m×m; X_0 is touched twice.
  a0 = y @ _mH(y)
  eye = jnp.eye(a0.shape[-1], dtype=a0.dtype)
  ak, q = a0, None
  inv = None
  last = len(rows) - 1
  for i, (a, b, c) in enumerate(rows):
    ak2 = ak @ ak if (c != 0.0 or (i == 0 and norm == "schatten8")) else None
    if i == 0 and norm == "schatten8":
      inv = _schatten8_scale(ak2, safety)
      a0 = a0 * (inv**2).astype(a0.dtype)
      ak, ak2 = a0, ak2 * (inv**4).astype(a0.dtype)
    p = a * eye + b * ak + (c * ak2 if c != 0.0 else 0.0)
    q = p if q is None else p @ q
    if i < last:
      ak = (q @ a0) @ _mH(q)
  y = q @ y
  return y if inv is None else y * inv.astype(y.dtype)


def newton_schulz_flops(shape: Sequence[int], steps: int, *,
                        gram_form: bool | None = None, coeffs="jordan",
                        dtype=jnp.float32, norm: str = "frobenius") -> int:
  """Real FLOPs (2 per multiply-add) of the matrix products that
  ``newton_schulz`` runs on an array of ``shape`` (the same choices of form
  as ``newton_schulz`` with these arguments; complex inputs count 4× more).
  """
  *batch, m, n = shape
  m, n = min(m, n), max(m, n)
  rows = schedule_coeffs(coeffs, steps)
  s = len(rows)
  nb = int(np.prod(batch, dtype=np.int64))
  sq = [c != 0.0 or (i == 0 and norm == "schatten8")
        for i, (_, _, c) in enumerate(rows)]
  if _use_gram_form(m, n, dtype, s, gram_form):
    cubes = sum(sq) + (s - 1) + 2 * (s - 1)  # A_k², P·Q, Q A_0 Qᴴ.
    total = 2 * 2 * m * m * n + cubes * 2 * m**3
  else:
    total = s * 2 * 2 * m * m * n + sum(sq) * 2 * m**3
  mult = 4 if jnp.issubdtype(dtype, jnp.complexfloating) else 1
  return int(nb * int(total) * mult)


# --------------------------------------------------------------------------
# Exact polar factors
# --------------------------------------------------------------------------
def _default_rtol(x) -> float:
  return max(x.shape[-2:]) * float(jnp.finfo(_exact_dtype(x.dtype)).eps)


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
  # eigh resolves eigenvalues only to ~k·eps·λ_max, so smaller ones are noise
  # and must not be inverted, whatever rtol asks for: in float32 this drops
  # σ < √(k·eps)·σ_1 (≈ 5e-3·σ_1 at k = 256); in float64, σ < 2e-7·σ_1.
  k = g.shape[-1]
  floor = max(rtol**2, k * float(jnp.finfo(work).eps))
  keep = w > floor * w[..., -1:]
  inv_sqrt = jnp.where(keep, jax.lax.rsqrt(jnp.where(keep, w, 1.0)), 0.0)
  # (G Gᴴ)^{-1/2} as a k×k matrix first: k³ + k²n instead of 2 k²n.
  root = (q * inv_sqrt[..., None, :].astype(q.dtype)) @ _mH(q)
  out = root @ y
  out = out if wide else _mH(out)
  return out


def _polar_qdwh(x):
  wide = x.shape[-2] < x.shape[-1]
  y = _mT(x) if wide else x
  fn = lambda a: jax.scipy.linalg.polar(a, method="qdwh")[0]
  for _ in range(y.ndim - 2):
    fn = jax.vmap(fn)
  u = fn(y)
  u = jnp.where(jnp.all(y == 0, axis=(-2, -1), keepdims=True), 0, u)
  return _mT(u) if wide else u


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
  x = _check_matrix(x, "polar")
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
  rtol = _default_rtol(x) if rtol is None else rtol
  y = _unit_scale(x.astype(_exact_dtype(x.dtype)))
  if method == "svd":
    out = _polar_svd(y, rtol)
  elif method == "eigh":
    out = _polar_eigh(y, rtol)
  else:
    out = _polar_qdwh(y)
  return out.astype(x.dtype)


# --------------------------------------------------------------------------
# Spectral summaries
# --------------------------------------------------------------------------
def singular_values(x: jax.Array) -> jax.Array:
  """Singular values over the last two axes, descending.

  Computed in at least float32 (16-bit inputs are upcast: there is no 16-bit
  SVD); the result has that working dtype (real).
  """
  x = _check_matrix(x, "singular_values")
  return jnp.linalg.svd(x.astype(_exact_dtype(x.dtype)), compute_uv=False)


def _unit_singular_values(x, fn):
  # Ratios of singular values only: σ/σ_1, so that σ² neither overflows
  # (1e30 in float32) nor underflows (1e-30); zero stays zero.
  s = singular_values(_check_matrix(x, fn))
  return _safe_div(s, s[..., :1])


def nuclear_norm(x: jax.Array) -> jax.Array:
  """‖X‖_* = Σ σ_i over the last two axes."""
  return jnp.sum(singular_values(x), axis=-1)


def nuclear_rank(x: jax.Array) -> jax.Array:
  r"""nr(G) = ‖G‖_*² / ‖G‖_F², between 1 and rank(G); 0 for G = 0."""
  s = _unit_singular_values(x, "nuclear_rank")
  return _safe_div(jnp.sum(s, -1) ** 2, jnp.sum(s**2, -1))


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
  x = _check_matrix(x, "spectral_entropy")
  s = _unit_singular_values(x, "spectral_entropy") ** power
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
  a = _check_matrix(a, "gram", "a")
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
    return b @ _mH(b)
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


def operator_norm_sq(x: jax.Array, iters: int = 100) -> jax.Array:
  r"""‖X‖_op² = λ_max(XᴴX) by power iteration on the smaller Gram matrix.

  One Gram product, then ``iters`` matrix–vector products: far cheaper than an
  SVD when it is needed at every step (the paper's per-layer step sizes). The
  Rayleigh quotient's relative error is ~(σ₂/σ₁)^{4·iters}, so this is exact
  to working precision for matrices with a spectral gap, such as the
  mean-spiked activations of non-centred nonlinearities; use
  :func:`singular_values` where there may be none. Batched; 0 for X = 0.
  """
  x = _check_matrix(x, "operator_norm_sq", "x")
  _check_steps(iters, "iters")
  y = x if x.shape[-2] >= x.shape[-1] else _mH(x)
  g = _mH(y) @ y
  k = g.shape[-1]
  # A fixed, non-symmetric start: never orthogonal to the top eigenvector of
  # the non-negative Gram matrices met in practice, and deterministic.
  v0 = (1.0 + 0.01 * jnp.sin(jnp.arange(k))) / np.sqrt(k)
  v = jnp.broadcast_to(v0.astype(g.dtype), g.shape[:-1])

  def body(_, v):
    w = jnp.einsum("...ij,...j->...i", g, v)
    return _safe_div(w, jnp.linalg.norm(w, axis=-1, keepdims=True))

  v = jax.lax.fori_loop(0, iters, body, v)
  return jnp.real(jnp.einsum("...i,...ij,...j->...", jnp.conj(v), g, v))


def stable_rank_from_gram(g: jax.Array) -> jax.Array:
  """st(A) from its Gram matrix A Aᴴ: tr(G) / λ_max(G); 0 for G = 0."""
  g = _check_matrix(g, "stable_rank_from_gram", "g")
  g = 0.5 * (g + _mH(g))
  lam_max = jnp.linalg.eigvalsh(g)[..., -1]
  return _safe_div(jnp.real(jnp.trace(g, axis1=-2, axis2=-1)), lam_max)
