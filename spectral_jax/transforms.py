"""Optax building blocks for spectral updates.

Each function returns an ``optax.GradientTransformation`` that acts on the
*matrix* leaves of an update tree. A leaf is read as a matrix through a
``MuonDimensionNumbers`` spec (optax's own class, re-exported): the reduction
axes become ``fan_in``, the output axes ``fan_out`` and every other axis a batch
axis, so a leaf is reshaped to ``(batch, fan_in, fan_out)`` and every slice is
orthogonalised on its own.

Leaves whose reshaped shapes (and dtypes) are equal are concatenated along the
batch axis and orthogonalised in ONE batched call, then split back: the maths
is per matrix, so the result is the per-leaf result (to float rounding: the
kernels' batch size changes), but a model with 24 equal attention projections
costs one kernel launch instead of 24.

Non-finite input: a matrix slice holding a NaN or inf gets an all-NaN update
(as in optax); every other slice, leaf and batched group is unaffected. Wrap
the optimizer in ``optax.apply_if_finite`` to skip such steps instead.

Contents:
  * ``scale_by_polar``: ``G ↦ polar(G)`` (exact or Newton–Schulz).
  * ``scale_by_specgd``: ``G ↦ (‖G‖_* / L) polar(G)`` (Carlson et al. 2015).
  * ``scale_by_muon``: momentum, then Newton–Schulz (``optax.contrib``'s
    semantics), plus exact polar methods, our named schedules, a compute
    dtype and the grouping above.
  * ``scale_by_shape``: optax's width / consistent-RMS scaling.
  * ``orthogonalize_via_newton_schulz``: optax's function, same semantics.

References:
  Jordan et al., *Muon*, https://kellerjordan.github.io/posts/muon/.
  Carlson, Cevher & Carin, *Stochastic spectral descent for RBMs*, AISTATS 2015.
  Davis & Drusvyatskiy, arXiv:2512.04299.
  Bernstein & Newhouse, *Old optimizer, new norm*, arXiv:2409.20325.
  Liu et al., *Muon is scalable for LLM training*, arXiv:2502.16982.
  Boissin et al., *Turbo-Muon* (AOL preconditioning), arXiv:2512.04632.
  Grishina et al., *Chebyshev-type Newton–Schulz*, arXiv:2506.10935.
  Amsel et al., *The Polar Express*, arXiv:2505.16932.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spectral_jax import checks
from spectral_jax import labels
from spectral_jax import linalg
from spectral_jax.labels import MuonDimensionNumbers

__all__ = [
    "MUON_POLAR_METHODS",
    "MuonDimensionNumbers",
    "MuonState",
    "PRECONDITIONINGS",
    "orthogonalize_via_newton_schulz",
    "scale_by_muon",
    "scale_by_polar",
    "scale_by_shape",
    "scale_by_specgd",
]

WeightDimNumOrFn = Any  # MuonDimensionNumbers | tree of them | Callable | None

# optax's names for the first step of Newton–Schulz, and linalg's. optax's
# 'schatten' is the Schatten-4 start; 'schatten8' is ours.
_PRECONDITIONING_NORMS = {"frobenius": "frobenius", "spectral": "spectral",
                          "aol": "aol", "schatten": "schatten4",
                          "schatten4": "schatten4", "schatten8": "schatten8"}
PRECONDITIONINGS = tuple(_PRECONDITIONING_NORMS)
MUON_POLAR_METHODS = ("newton_schulz", "svd", "eigh", "qdwh")
MOMENTUM_STYLES = ("optax", "torch")
# torch.optim.Muon's adjust_lr_fn presets (scale_by_shape maps them onto its
# rules; torch's A×B weight is out×in: A = fan_out, B = fan_in).
ADJUST_LR = ("original", "match_rms_adamw", "spectral_unclamped")
EXACT_POLAR_METHODS = ("svd", "eigh", "qdwh")
# optax.contrib.muon's presets keep optax's ns_steps semantics: a single row
# repeats ns_steps times; a (k, 3) table runs its k rows, needing k <= ns_steps.
_DEFAULT_NS_COEFFS = linalg.SCHEDULES["jordan"].coeffs[0]
_OPTAX_PRESETS = {
    "standard": _DEFAULT_NS_COEFFS,
    "dion": linalg.SCHEDULES["dion"].coeffs,
}

class _NSPlan(NamedTuple):
  """A resolved Newton–Schulz schedule: static rows and the normaliser."""
  # With static steps: the coefficients of every step, in order. With traced
  # steps: the rows to index with min(i, len - 1).
  schedule: linalg.Schedule
  state_coeffs: Any  # what MuonState.ns_coeffs holds (optax's layout).
  steps: Any = None  # None (static, len(schedule.coeffs)) or a traced count.


def _ns_plan(ns_coeffs, ns_steps) -> _NSPlan:
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
      return _NSPlan(sched, jnp.asarray(sched.coeffs), ns_steps)
    rows = linalg.schedule_coeffs(sched, steps)
    return _NSPlan(linalg.Schedule(sched.name, tuple(map(tuple, rows)),
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
    return _NSPlan(linalg.Schedule("custom", (tuple(arr),)),
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
  return _NSPlan(linalg.Schedule("custom", tuple(map(tuple, rows))), state)


def _inner(a, b, axis=None):
  """Re⟨a, b⟩ accumulated in at least float32 (a float16 sum of 1e3-sized
  products overflows where the result itself fits)."""
  w = jnp.promote_types(b.dtype, jnp.float32)
  return jnp.real(jnp.sum(jnp.conj(a).astype(w) * b.astype(w), axis=axis,
                          keepdims=axis is not None))


def _scale_by_dual_norm(m, u):
  """``⟨m, u⟩ u`` over the whole leaf (optax's adaptive Muon)."""
  return (_inner(m, u) * u.astype(jnp.promote_types(u.dtype, jnp.float32))
          ).astype(u.dtype)


def _nan_if_nonfinite(fn):
  """Wrap ``fn`` so a slice with a non-finite entry maps to an all-NaN slice.

  optax propagates a non-finite gradient into the update; so do we, slice by
  slice and for every polar method alike (an SVD of an inf is not defined):
  the other slices of the leaf and the other leaves of a batched group are
  untouched.
  """
  def wrapped(x):
    out = fn(x)
    finite = jnp.all(jnp.isfinite(x), axis=(-2, -1), keepdims=True)
    return jnp.where(finite, out, jnp.asarray(jnp.nan, out.dtype))
  return wrapped


def _orthogonalizer(plan, **kwargs):
  """A function ``(B, m, n) -> (B, m, n)`` computing polar factors per slice."""
  return _nan_if_nonfinite(_orthogonalizer_raw(plan, **kwargs))


def _orthogonalizer_raw(plan: _NSPlan | None, *, polar_method="newton_schulz",
                        preconditioning="frobenius", eps=1e-8,
                        compute_dtype=None):
  if polar_method in EXACT_POLAR_METHODS:
    def exact(x):
      if compute_dtype is None:
        return linalg.polar(x, polar_method)
      return linalg.polar(x.astype(compute_dtype), polar_method).astype(x.dtype)
    return exact
  steps = len(plan.schedule.coeffs) if plan.steps is None else plan.steps
  norm = _PRECONDITIONING_NORMS[preconditioning]
  return lambda x: linalg.newton_schulz(
      x, steps, plan.schedule, eps=eps, compute_dtype=compute_dtype, norm=norm)


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
      norm=_PRECONDITIONING_NORMS[preconditioning])
  reshape_fn, inverse_fn = labels.compute_muon_reshape(x, dimension_numbers)
  return inverse_fn(_nan_if_nonfinite(fn)(reshape_fn(x)))


def _polar_fn(method, ns_coeffs, ns_steps, eps, compute_dtype):
  """Checked arguments -> a function ``(B, m, n) -> polar per slice``."""
  checks.check_choice("polar_method", method, linalg.POLAR_METHODS)
  # optax.inject_hyperparams injects every numeric default, ns_steps too: a
  # traced count runs in a loop (linalg.newton_schulz supports it).
  checks.check_ns_steps(ns_steps, allow_traced=True)
  checks.check_range("eps", eps, 0.0, what="a finite number >= 0, or None")
  cdtype = checks.check_compute_dtype(
      compute_dtype, method if method in EXACT_POLAR_METHODS else None)
  if method != "newton_schulz":
    return _orthogonalizer(None, polar_method=method, compute_dtype=cdtype)
  try:
    linalg.resolve_schedule(ns_coeffs)
  except ValueError as err:
    raise ValueError(f"ns_coeffs: {err}") from None
  return _nan_if_nonfinite(lambda x: linalg.newton_schulz(
      x, ns_steps, ns_coeffs, eps=eps, compute_dtype=cdtype))


# --------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------
def scale_by_polar(
    polar_method: str = "svd",
    *,
    ns_coeffs="jordan",
    ns_steps: int = 5,
    eps: float | None = None,
    weight_dimension_numbers: WeightDimNumOrFn | None = None,
    compute_dtype=None,
) -> optax.GradientTransformation:
  r"""Replace every matrix update by its polar factor.

  .. math::
    G = U \Sigma V^H \;\mapsto\; \operatorname{polar}(G) = U V^H

  per ``(fan_in, fan_out)`` slice (zero singular values dropped; ``0 ↦ 0``).

  Args:
    polar_method: ``'svd'``, ``'eigh'``, ``'qdwh'`` (exact) or
      ``'newton_schulz'``.
    ns_coeffs: schedule for ``'newton_schulz'``: a name in
      ``linalg.SCHEDULES`` (``'jordan'``, ``'polar_express'``, ``'cubic'``,
      ``'dion'``) or a ``(3,)`` / ``(k, 3)`` array (``linalg`` semantics:
      ``ns_steps`` steps, the last row repeating).
    ns_steps: Newton–Schulz iterations.
    eps: added to the Newton–Schulz normaliser; ``None`` adds nothing.
    weight_dimension_numbers: ``MuonDimensionNumbers`` tree (or callable on
      the updates) saying how to read each leaf; ``None``: all leaves 2-D.
    compute_dtype: dtype of the computation (result cast back).

  Returns:
    A stateless ``optax.GradientTransformation``.
  """
  fn = _polar_fn(polar_method, ns_coeffs, ns_steps, eps, compute_dtype)

  def update_fn(updates, state, params=None):
    del params
    dims = labels.resolve_dimension_numbers(weight_dimension_numbers, updates)
    return labels.map_matrices(fn, updates, dims), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


def scale_by_specgd(
    polar_method: str = "svd",
    lipschitz: float | None = None,
    *,
    ns_coeffs="jordan",
    ns_steps: int = 5,
    eps: float | None = None,
    weight_dimension_numbers: WeightDimNumOrFn | None = None,
    compute_dtype=None,
) -> optax.GradientTransformation:
  r"""Spectral gradient descent direction (Carlson et al. 2015).

  .. math::
    G \mapsto \frac{\|G\|_*}{L}\,\operatorname{polar}(G), \qquad
    \|G\|_* = \operatorname{Re}\langle G, \operatorname{polar}(G)\rangle

  per ``(fan_in, fan_out)`` slice: the minimiser of the operator-norm upper
  model ``⟨G, U⟩ + (L/2)‖U‖_op²`` (Davis & Drusvyatskiy, arXiv:2512.04299,
  §1.2). The nuclear norm is read off the polar factor, so no second SVD is
  taken; with ``'newton_schulz'`` both are approximate. Follow with
  ``optax.scale_by_learning_rate`` for the step ``W ← W − lr·(...)``.

  Args:
    polar_method: polar method (see :func:`scale_by_polar`).
    lipschitz: ``L > 0`` (e.g. ``L_op = ‖A‖_F²/n``); ``None`` means 1.
    ns_coeffs, ns_steps, eps, weight_dimension_numbers, compute_dtype: as in
      :func:`scale_by_polar`.

  Returns:
    A stateless ``optax.GradientTransformation``.
  """
  checks.check_range("lipschitz", lipschitz, 0.0, lo_open=True,
               what="a finite number > 0, or None (= 1)")
  polar_fn = _polar_fn(polar_method, ns_coeffs, ns_steps, eps, compute_dtype)
  inv_l = 1.0 if lipschitz is None else 1.0 / lipschitz

  def fn(g):
    p = polar_fn(g)
    nuclear = _inner(g, p, axis=(-2, -1))
    w = jnp.promote_types(p.dtype, jnp.float32)
    return (nuclear * inv_l * p.astype(w)).astype(p.dtype)

  def update_fn(updates, state, params=None):
    del params
    dims = labels.resolve_dimension_numbers(weight_dimension_numbers, updates)
    return labels.map_matrices(fn, updates, dims), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


# optax's own class (count, mu, ns_coeffs): states of the two libraries have
# identical tree structures, so checkpoints and code indexing
# ``state[0]['muon'][0][0][1]`` carry over.
MuonState = optax.contrib.MuonState


def scale_by_muon(
    ns_coeffs=_DEFAULT_NS_COEFFS,
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    mu_dtype=None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: WeightDimNumOrFn | None = None,
    polar_method: str = "newton_schulz",
    compute_dtype=None,
    group_equal_shapes: bool = True,
    momentum_style: str = "optax",
) -> optax.GradientTransformation:
  r"""Muon's direction: momentum, then an (approximate) polar factor.

  .. math::
    m_t = \beta m_{t-1} + (1-\beta) g_t,\qquad
    \hat m_t = \beta\,\frac{m_t}{1-\beta^{t+1}}
             + (1-\beta)\,\frac{g_t}{1-\beta^{t}}\ \text{(Nesterov)},\qquad
    u_t = \operatorname{polar}(\hat m_t)

  with optax's bias correction; without Nesterov ``m̂ = m_t/(1-β^t)``.
  ``momentum_style="torch"`` drops the bias correction, as torch.optim.Muon
  and KellerJordan's Muon do: ``m̂ = (1-β) g_t + β m_t`` (Nesterov) or
  ``m̂ = m_t``.
  ``adaptive`` multiplies by ``⟨m̂, u⟩`` (the dual norm, summed over the whole
  leaf as optax does). Given optax's arguments it returns
  ``optax.contrib.scale_by_muon``'s updates to float rounding, with one
  deliberate difference: complex inputs with ``preconditioning='schatten'``
  use ``X Xᴴ`` where optax 0.2.8 uses ``X Xᵀ``.

  Args:
    ns_coeffs: a row ``(a, b, c)`` (repeated ``ns_steps`` times), a ``(k, 3)``
      table (its rows, ``k <= ns_steps``), optax's presets ``'standard'`` /
      ``'dion'`` (same rules), or our schedules ``'jordan'``,
      ``'polar_express'`` (with its 1.01 safety normalisation), ``'cubic'``
      (``ns_steps`` steps, the last row repeating).
    ns_steps: Newton–Schulz iterations (static int >= 1).
    beta: momentum decay in [0, 1).
    eps: added to the normaliser of the first iterate.
    mu_dtype: dtype of the momentum (e.g. ``jnp.bfloat16``).
    nesterov: Nesterov momentum.
    adaptive: scale by the dual norm ``⟨m̂, u⟩`` (arXiv:2409.20325).
    preconditioning: ``'frobenius'``, ``'spectral'``, ``'aol'``,
      ``'schatten'`` (Newton–Schulz only).
    weight_dimension_numbers: tree of ``MuonDimensionNumbers`` (or callable on
      the updates); ``None``: every leaf is 2-D.
    polar_method: ``'newton_schulz'`` or an exact ``'svd'`` / ``'eigh'`` /
      ``'qdwh'`` (``ns_*`` and ``preconditioning`` then unused).
    compute_dtype: dtype of the orthogonalisation (e.g. ``jnp.bfloat16``);
      momentum stays in ``mu_dtype``.
    group_equal_shapes: orthogonalise leaves of equal matrix shape in one
      batched call (same result; fewer, larger kernels).
    momentum_style: ``'optax'`` (bias-corrected, optax.contrib's) or
      ``'torch'`` (no bias correction: torch.optim.Muon, KellerJordan's).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`MuonState`.
  """
  checks.check_choice("polar_method", polar_method, MUON_POLAR_METHODS)
  checks.check_choice("preconditioning", preconditioning, PRECONDITIONINGS)
  if polar_method != "newton_schulz" and preconditioning != "frobenius":
    raise ValueError(
        f"preconditioning={preconditioning!r} applies to polar_method="
        f"'newton_schulz' only, got polar_method={polar_method!r}.")
  checks.check_range("beta", beta, 0.0, 1.0, hi_open=True, what="in [0, 1)")
  checks.check_range("eps", eps, 0.0, what="a finite number >= 0")
  cdtype = checks.check_compute_dtype(
      compute_dtype,
      polar_method if polar_method in EXACT_POLAR_METHODS else None)
  plan = _ns_plan(ns_coeffs, ns_steps)
  mu_dtype = checks.check_mu_dtype(mu_dtype)
  checks.check_choice("momentum_style", momentum_style, MOMENTUM_STYLES)
  orthogonalize = _orthogonalizer(
      plan, polar_method=polar_method, preconditioning=preconditioning,
      eps=eps, compute_dtype=cdtype)

  def init_fn(params):
    return MuonState(
        count=jnp.zeros([], jnp.int32),
        mu=optax.tree.zeros_like(params, dtype=mu_dtype),
        ns_coeffs=plan.state_coeffs,
    )

  def update_fn(updates, state, params=None):
    del params
    dims = labels.resolve_dimension_numbers(weight_dimension_numbers, updates)
    mu = optax.tree.update_moment(updates, state.mu, beta, 1)
    count_inc = optax.safe_increment(state.count)
    if momentum_style == "torch":  # no bias correction
      m, g = mu, updates
    else:  # optax: Nesterov's look-ahead momentum is corrected one step on
      m = optax.tree.bias_correction(
          mu, beta, optax.safe_increment(count_inc) if nesterov else count_inc)
      g = optax.tree.bias_correction(updates, beta, count_inc)
    mu_hat = jax.tree.map(lambda m, g: beta * m + (1 - beta) * g, m, g) if (
        nesterov) else m
    new = labels.map_matrices(orthogonalize, mu_hat, dims, group=group_equal_shapes)
    if adaptive:
      new = jax.tree.map(_scale_by_dual_norm, mu_hat, new)
    return new, MuonState(count=count_inc, mu=optax.tree.cast(mu, mu_dtype),
                          ns_coeffs=state.ns_coeffs)

  return optax.GradientTransformation(init_fn, update_fn)


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
    weight_dimension_numbers: as in :func:`scale_by_muon`.
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
    _, fan_in, fan_out = labels.matrix_shape(x.shape, d, labels.path_name(path))
    if adjust_lr == "spectral_unclamped":
      return jnp.sqrt(fan_out / max(fan_in, 1)) * x
    if consistent_rms is None:
      # fan_in = 0: a zero-size leaf; any finite factor gives the empty update.
      return jnp.sqrt(max(1.0, fan_out / max(fan_in, 1))) * x
    return jnp.sqrt(jnp.maximum(fan_in, fan_out)) * consistent_rms * x

  def update_fn(updates, state, params=None):
    del params
    dims = labels.resolve_dimension_numbers(weight_dimension_numbers, updates)
    paths, leaves, treedef, leaf_dims = labels.leaf_dimension_numbers(updates, dims)
    return treedef.unflatten(
        [scale(x, d, p) for p, x, d in zip(paths, leaves, leaf_dims)]), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)
