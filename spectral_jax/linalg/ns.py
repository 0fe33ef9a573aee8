"""THE Newton–Schulz engine: first steps, direct and Gram bodies (with
restarts), static or traced step counts. Schedules live in ``schedules``.

Every approximate polar factor in the package comes from
:func:`newton_schulz`; ``transforms`` only translates optax's argument
conventions into a call to it.

On the Gram ("polynomial") form: every iterate is X_k = Q_k X_0 with Q_k a
polynomial in A_0 = X_0 X_0ᴴ, so for a wide m×n input the loop can run on m×m
matrices only and touch X_0 twice (A_0 and the final Q X_0). It cannot
resolve σ² below eps·σ_1² (A_0 is rounded once and its rounding is carried
through Q A_0 Qᴴ, amplified by ‖Q‖² ~ (growth of the smallest σ)²), so run in
one block it limits the attainable accuracy: in float32 (256×1024, Gaussian
and logspace(0,-3) spectra, polar_express) its error to the exact polar
factor equals the direct form's at <= 6 steps (to 3e-5 relative), is 0.1%
worse at 7, and stalls at 4e-3 at 10–20 steps where the direct form reaches
2.1e-5; in bfloat16 it diverges (NaN) on the logspace spectrum from 7 steps.

A restart every k steps forms X = Q X_0 and starts a new block from it, so A
is re-formed from an iterate with O(1) singular values. The error is set by
the first blocks (where small σ grow most): measured, float32 k = 2 / 3 / 4 /
5 / 8 gives 1.4e-5 / 1.3e-5 / 5.0e-5 / 2.0e-4 / 1.2e-3 on the logspace
spectrum (direct 2.1e-5) at any 10–20 steps, and 0.9e-6 / 1.6e-6 / 1.2e-6 on
the Gaussian one (direct 1.15e-6); bfloat16 k = 2 gives 0.117 / 7.6e-3
(direct 0.148 / 8.7e-3), k = 3 already 1.6e-2 on the Gaussian and k >= 4
diverges. Hence "auto": k = 2, the largest k no worse than the direct form
on every measured input, except in 32/64-bit at <= 6 steps, where one block
already is (k = steps). FLOPs for s steps in R = ceil(s/k) blocks:
  direct: s (4 m² n + 2 m³)       gram: R · 4 m² n + (4 s − 3 R) · 2 m³
so a restart costs 2 m² (2n − 3m) and the Gram form wins whenever n > 1.5 m:
at 256×1024, 0.56× the direct FLOPs at 5 steps (one block) and 0.72× at
8–20 steps (k = 2). See BENCHMARKS.md and experiments/bench/gram_restarts.py.

References:
  Jordan et al., *Muon*, https://kellerjordan.github.io/posts/muon/.
  Amsel, Persson, Musco & Gower, *The Polar Express*, arXiv:2505.16932.
  Boissin et al., *Turbo-Muon* (AOL preconditioning), arXiv:2512.04632.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax.linalg.base import check_matrix
from spectral_jax.linalg.base import check_steps
from spectral_jax.linalg.base import frobenius
from spectral_jax.linalg.base import mH
from spectral_jax.linalg.base import mT
from spectral_jax.linalg.base import safe_div
from spectral_jax.linalg.base import times_pow2
from spectral_jax.linalg.base import unit_exponent
from spectral_jax.linalg.ranks import singular_values
from spectral_jax.linalg.schedules import resolve_schedule
from spectral_jax.linalg.schedules import schedule_coeffs


def _is_traced(x) -> bool:
  return isinstance(x, jax.core.Tracer)


class _Plan(NamedTuple):
  # Static: a tuple of Python-float rows, one per step (Python floats are
  # weakly typed, so every product stays in the compute dtype). Traced
  # coefficients: a (k, 3) array; step i uses row min(i, k - 1).
  rows: tuple | jax.Array
  steps: int | jax.Array  # a traced count runs the steps after the first in
  safety: float           # a fori_loop.


def _plan(coeffs, steps) -> _Plan:
  """The one schedule parser: ``(coeffs, steps)`` to rows and a step count."""
  if _is_traced(coeffs):  # e.g. optax.inject_hyperparams or a jitted table.
    table = jnp.reshape(coeffs, (-1, 3)) if coeffs.ndim == 1 else coeffs
    if coeffs.ndim not in (1, 2) or table.shape[-1] != 3:
      raise ValueError(f"coeffs must have shape (3,) or (steps, 3), got shape "
                       f"{coeffs.shape}.")
    if steps is None:
      steps = table.shape[0]
    elif not _is_traced(steps):
      check_steps(steps)
    return _Plan(table, steps, 1.0)
  sched = resolve_schedule(coeffs)
  if _is_traced(steps):
    return _Plan(sched.coeffs, steps, sched.safety)
  rows = schedule_coeffs(sched, steps)
  return _Plan(tuple(tuple(float(v) for v in r) for r in rows), len(rows),
               sched.safety)


# --------------------------------------------------------------------------
# First steps: scale X so that every σ ≤ 1 (some reuse the Gram matrix).
# --------------------------------------------------------------------------
NS_NORMS = ("frobenius", "spectral", "aol", "schatten4", "schatten8")
# AOL's and Schatten-4's denominators are floored here (optax's default eps),
# not at the user's eps: optax passes no eps to them either.
FIRST_STEP_EPS = 1e-8


def _divide(x, bound, safety, eps, dtype):
  den = bound * safety + (0.0 if eps is None else eps)
  return safe_div(x, den).astype(dtype)


def _first_step(x, norm, safety, eps, dtype):
  """``(X_0, A_0 or None, A_0² or None)`` for the ``norm`` start.

  ``x`` is wide and in at least float32; ``X_0`` is in ``dtype``. A Gram
  matrix the start had to form anyway is returned so the first step reuses
  it.
  """
  # Bring x to unit scale by an exact power of two first (eps scaled with
  # it, so X_0 is unchanged): dividing by a norm near the float maximum
  # would flush its reciprocal to zero, and Gram matrices of large entries
  # overflow.
  e = unit_exponent(x)
  x = times_pow2(x, -e)
  if eps is not None:
    eps = times_pow2(jnp.full(e.shape, eps, x.real.dtype), -e)
  if norm == "frobenius":  # X / (s‖X‖_F + eps): Muon's published recipe.
    return _divide(x, frobenius(x), safety, eps, dtype), None, None
  if norm == "spectral":  # X / (s σ_1 + eps): exact, costs an SVD.
    sigma1 = singular_values(x)[..., :1, None]
    return _divide(x, sigma1, safety, eps, dtype), None, None
  if norm == "schatten8":
    # Then divide by s‖X_0‖_{S_8} = s‖A_0²‖_F^{1/4} ≥ σ_1: a much tighter
    # bound that costs no extra product (the first step needs A_0² anyway).
    y = _divide(x, frobenius(x), 1.0, eps, dtype)
    g = y @ mH(y)
    g2 = g @ g
    r = jnp.sqrt(jnp.sqrt(frobenius(g2.astype(x.dtype)))) * safety
    inv = jnp.where(r > 0, 1.0 / jnp.where(r > 0, r, 1.0), 1.0)
    return (y * inv.astype(dtype), g * (inv**2).astype(dtype),
            g2 * (inv**4).astype(dtype))
  # AOL (Boissin et al.): row i scaled by (Σ_j |A_ij|)^{-1/2}; Schatten-4:
  # ‖X‖_S4² = ‖A‖_F ≥ σ_1². Both read off A (of the unit-scale x).
  y = x.astype(dtype)
  g = y @ mH(y)
  if norm == "aol":
    s = jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.abs(g), axis=-1),
                                  FIRST_STEP_EPS))[..., None]
    return y * s, g * s * mT(s), None
  fro = jnp.sqrt(jnp.sum(jnp.abs(g) ** 2, axis=(-2, -1), keepdims=True))
  s = jax.lax.rsqrt(jnp.maximum(fro, FIRST_STEP_EPS)).astype(y.real.dtype)
  return y * s, g * (s * s), None


# --------------------------------------------------------------------------
# Bodies.
# --------------------------------------------------------------------------
def _zero(c) -> bool:
  return isinstance(c, float) and c == 0.0


def _poly(a, b, c, g, g2):
  """``a I + b A + c A²`` (``g2`` is ``A²`` or ``None`` when ``c`` is 0)."""
  rest = 0.0 if _zero(c) else c * g2
  m = g.shape[-1]
  if _is_16bit(g.dtype):
    # In 16 bits a·I, the same expression at every step of a constant
    # schedule (jordan), was computed once by XLA on CPU and kept live
    # through the whole call (1.2 MB of a 768×3072 bfloat16 call's 20 MB of
    # temp memory), so ``a`` joins the diagonal through a mask. In 32/64 bits
    # XLA fuses a·I into every step, and the mask would cost a buffer (the
    # polynomial no longer reuses A²'s for a batch of one: 768×768 float32,
    # 4.7 -> 7.1 MB). Same sums in the same order either way.
    diag = (jax.lax.broadcasted_iota(jnp.int32, (m, m), 0)
            == jax.lax.broadcasted_iota(jnp.int32, (m, m), 1))
    bg = b * g
    return jnp.where(diag, a + bg, bg) + rest
  return a * jnp.eye(m, dtype=g.dtype) + b * g + rest


def _direct_step(y, abc, g=None, g2=None):
  # X ← (a I + b A + c A²) X with A = X Xᴴ: the odd quintic on every σ, with
  # a·X folded into the m×m factor so the large X is touched once per step.
  a, b, c = abc
  g = y @ mH(y) if g is None else g
  if g2 is None and not _zero(c):
    g2 = g @ g
  return _poly(a, b, c, g, g2) @ y


def _direct(y, rows, g0, g0sq):
  for i, abc in enumerate(rows):  # Unrolled: steps is small and static.
    y = _direct_step(y, abc, *((g0, g0sq) if i == 0 else (None, None)))
  return y


def _gram(y, rows, g0, g0sq):
  # X_k = Q_k X_0, A_k = Q_k A_0 Q_kᴴ, Q_{k+1} = p_k(A_k) Q_k, where p_k(A) =
  # a I + b A + c A². Every matrix here is m×m; X_0 is touched twice.
  a0 = y @ mH(y) if g0 is None else g0
  ak, ak2, q = a0, g0sq, None
  for i, (a, b, c) in enumerate(rows):
    if i > 0:
      ak = (q @ a0) @ mH(q)
      ak2 = None
    if ak2 is None and not _zero(c):
      ak2 = ak @ ak
    p = _poly(a, b, c, ak, ak2)
    q = p if q is None else p @ q
  return q @ y


def _gram_restarted(y, rows, g0, g0sq, every: int):
  # Restart: X_k = Q X_0 is formed and the Gram body starts again from it,
  # so A is re-formed from an iterate whose σ are O(1) instead of being
  # carried as Q A_0 Qᴴ, which multiplies A_0's rounding by ‖Q‖².
  for start in range(0, len(rows), every):
    first = (g0, g0sq) if start == 0 else (None, None)
    y = _gram(y, rows[start:start + every], *first)
  return y


def _traced(y, table, steps, g0, g0sq):
  # First step unrolled (it may reuse the start's Gram matrix), the rest in a
  # loop of traced length with row min(i, last).
  last = table.shape[0] - 1
  y = _direct_step(y, tuple(table[0]), g0, g0sq)
  body = lambda i, y: _direct_step(y, tuple(table[jnp.minimum(i, last)]))
  return jax.lax.fori_loop(1, steps, body, y)


_GRAM_FORM_MIN_ASPECT = 1.5
_ONE_BLOCK_MAX_STEPS = 6  # 32/64-bit: one Gram block is as accurate.
_RESTART_EVERY = 2        # Otherwise: measured, see the module docstring.


def _is_16bit(dtype) -> bool:
  return jnp.dtype(dtype).itemsize < 4 and not jnp.issubdtype(
      dtype, jnp.complexfloating)


def _use_gram_form(m: int, n: int, dtype, steps: int, gram_form,
                   gram_restart="auto") -> bool:
  if gram_form is not None:
    return bool(gram_form)
  if gram_restart is None and (_is_16bit(dtype)
                               or steps > _ONE_BLOCK_MAX_STEPS):
    return False  # Without restarts only the measured-safe range.
  return steps >= 2 and n >= _GRAM_FORM_MIN_ASPECT * m


def check_gram_restart(gram_restart) -> None:
  """Raise unless ``gram_restart`` is ``"auto"``, ``None`` or an int >= 1."""
  if gram_restart is None or (isinstance(gram_restart, str)
                              and gram_restart == "auto"):
    return
  if (isinstance(gram_restart, bool)
      or not isinstance(gram_restart, (int, np.integer)) or gram_restart < 1):
    raise ValueError(
        f"gram_restart must be 'auto', None (never restart) or an int >= 1 "
        f"(steps between re-formings of the Gram matrix), got "
        f"{gram_restart!r}.")


def restart_every(steps: int, dtype, gram_restart="auto") -> int:
  """Steps per Gram block for ``gram_restart`` (see ``newton_schulz``): the
  Gram matrix is re-formed from the iterate every this many steps."""
  if gram_restart is None:
    return steps
  if gram_restart != "auto":
    return min(int(gram_restart), steps)
  if not _is_16bit(dtype) and steps <= _ONE_BLOCK_MAX_STEPS:
    return steps
  return min(_RESTART_EVERY, steps)


def newton_schulz(
    x: jax.Array,
    steps: int | None = None,
    coeffs="jordan",
    *,
    eps: float | None = None,
    compute_dtype=None,
    norm: str = "frobenius",
    gram_form: bool | None = None,
    gram_restart: int | str | None = "auto",
) -> jax.Array:
  r"""Approximate polar factor by a Newton–Schulz iteration.

  .. math::
    X_0 = G / (s\,\beta(G) + \epsilon), \qquad
    X_{i+1} = a_i X_i + (b_i A_i + c_i A_i^2) X_i, \quad A_i = X_i X_i^H

  with the input transposed first when it is tall, so that ``A`` is always the
  small Gram matrix, ``s`` the schedule's safety factor and ``β(G) ≥ σ_1`` the
  bound chosen by ``norm``. Singular vectors are preserved; each singular
  value goes through the scalar polynomial ``p_i(σ) = a_i σ + b_i σ³ + c_i σ⁵``.

  Args:
    x: array of shape ``(..., m, n)``, real or complex.
    steps: number of iterations: an int, ``None`` (the schedule's own
      ``steps`` if set, e.g. by ``polar_express_schedule``; else 5 for a
      named schedule, the listed rows for a custom ``(steps, 3)`` array) or
      a traced integer
      (``jit`` with a dynamic count: the steps after the first run in a
      ``fori_loop``, always in the direct form).
    coeffs: a schedule name (``"jordan"``, ``"polar_express"``, ``"cubic"``,
      ``"dion"`` or an alias in ``ALIASES``), a ``Schedule`` or an array of
      shape ``(3,)`` / ``(steps, 3)``, concrete or traced. Step ``i`` uses
      row ``min(i, rows - 1)``.
    eps: added to the normaliser (optax and Muon use 1e-8 / 1e-7). ``None``
      divides by the bound itself, so tiny inputs are orthogonalised too; a
      zero input gives a zero output either way.
    compute_dtype: dtype of the iteration (e.g. ``jnp.bfloat16``): every
      matrix product of the iteration runs in it (with XLA's default
      accumulation for that dtype: float32 accumulators on CPU, GPU and TPU
      for bf16); the normaliser is computed in at least float32 and the
      result is cast back to ``x.dtype``. Defaults to ``x.dtype``.
    norm: the bound ``β`` of the first step (see ``NS_NORMS``):
      ``"frobenius"`` (‖G‖_F, the published recipe, default),
      ``"spectral"`` (σ_1 by an SVD: exact, not cheap),
      ``"schatten8"`` (then ``s‖X_0‖_{S_8} = s‖A_0²‖_F^{1/4}``, much tighter
      than ‖G‖_F at no extra product), ``"schatten4"`` (``‖A_0‖_F^{1/2}``,
      optax's ``'schatten'``) or ``"aol"`` (per-row AOL rescaling, Boissin
      et al.). The last two ignore ``eps`` and ``s`` (as optax does) and
      floor their denominators at ``FIRST_STEP_EPS``.
    gram_form: ``True`` iterates on the m×m polynomial ``Q_k`` with
      ``X_k = Q_k X_0`` (fewer FLOPs when n ≫ m), ``False`` on ``X_k``
      itself; ``None`` uses the Gram form when n ≥ 1.5 m (after the
      transpose) and steps ≥ 2 (with ``gram_restart=None``: only up to 6
      steps in 32/64 bits). Same iteration, reordered: equal results up to
      rounding. Ignored with a traced step count.
    gram_restart: steps between re-formings of the Gram matrix from the
      current iterate (``X = Q X_0``, then ``A = X Xᴴ``) in the Gram form:
      an int >= 1, ``None`` (never: one block, whose attainable accuracy
      stalls past 6 steps) or ``"auto"`` (every 2 steps, or never for
      <= 6 steps in 32/64 bits: the choice measured to keep the direct
      form's accuracy, see the module docstring).

  Returns:
    Array of ``x``'s shape and dtype.

  Raises:
    ValueError: ``x.ndim < 2``, non-float ``x``, bad ``steps``, ``coeffs``,
      ``norm`` or ``gram_restart``.
  """
  x = check_matrix(x, "newton_schulz")
  if norm not in NS_NORMS:
    raise ValueError(f"norm={norm!r} is not allowed; allowed: {NS_NORMS}.")
  check_gram_restart(gram_restart)
  plan = _plan(coeffs, steps)
  out_dtype = x.dtype
  dtype = jnp.dtype(compute_dtype) if compute_dtype is not None else x.dtype
  if jnp.iscomplexobj(x) and not jnp.issubdtype(dtype, jnp.complexfloating):
    dtype = jnp.promote_types(dtype, jnp.complex64)
  if x.size == 0:
    return x
  tall = x.shape[-2] > x.shape[-1]
  if tall:
    x = mT(x)
  m, n = x.shape[-2:]
  # Normalise in at least float32 (a bf16 ‖G‖_F loses digits), keeping the
  # complex part: the norm is real, x need not be.
  wide = x.astype(jnp.promote_types(dtype, jnp.float32))
  y, g0, g0sq = _first_step(wide, norm, plan.safety, eps, dtype)
  rows = plan.rows
  if isinstance(rows, jax.Array) or _is_traced(plan.steps):
    table = jnp.asarray(rows).astype(dtype)
    if _is_traced(plan.steps):
      y = _traced(y, table, plan.steps, g0, g0sq)
    else:
      last = table.shape[0] - 1
      rows = [tuple(table[min(i, last)]) for i in range(plan.steps)]
      y = _direct(y, rows, g0, g0sq)
  elif _use_gram_form(m, n, dtype, len(rows), gram_form, gram_restart):
    every = restart_every(len(rows), dtype, gram_restart)
    y = _gram_restarted(y, rows, g0, g0sq, every)
  else:
    y = _direct(y, rows, g0, g0sq)
  if tall:
    y = mT(y)
  return y.astype(out_dtype)


def newton_schulz_flops(shape: Sequence[int], steps: int, *,
                        gram_form: bool | None = None, coeffs="jordan",
                        dtype=jnp.float32, norm: str = "frobenius",
                        gram_restart: int | str | None = "auto") -> int:
  """Real FLOPs (2 per multiply-add) of the matrix products that
  ``newton_schulz`` runs on an array of ``shape`` (the same choices of form
  and restarts as ``newton_schulz`` with these arguments; complex inputs
  count 4× more; the SVD of ``norm="spectral"`` is not counted).

  Direct form: ``s·4m²n + q·2m³`` (``q`` steps with ``c ≠ 0`` square A).
  Gram form in ``R`` blocks (``R − 1`` restarts): each block forms ``A`` and
  ``Q X`` (``4m²n``) and each step after a block's first forms ``Q A Qᴴ`` and
  ``P Q`` (``3·2m³`` with the square): ``R·4m²n + (q + 3(s − R))·2m³``.
  ``R = s`` is the direct form's count; a restart costs ``2m²(2n − 3m)``.
  """
  check_gram_restart(gram_restart)
  *batch, m, n = shape
  m, n = min(m, n), max(m, n)
  rows = schedule_coeffs(coeffs, steps)
  s = len(rows)
  nb = int(np.prod(batch, dtype=np.int64))
  squares = sum(c != 0.0 or (i == 0 and norm == "schatten8")
                for i, (_, _, c) in enumerate(rows))
  blocks = s
  if _use_gram_form(m, n, dtype, s, gram_form, gram_restart):
    blocks = -(-s // restart_every(s, dtype, gram_restart))
  total = blocks * 4 * m * m * n + (squares + 3 * (s - blocks)) * 2 * m**3
  mult = 4 if jnp.issubdtype(dtype, jnp.complexfloating) else 1
  return int(nb * int(total) * mult)
