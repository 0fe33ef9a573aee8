"""Optax building blocks for spectral updates.

Each function returns an ``optax.GradientTransformation`` that acts on the
*matrix* leaves of an update tree. A leaf is read as a matrix through a
``MuonDimensionNumbers`` spec (optax's own class, re-exported): the reduction
axes become ``fan_in``, the output axes ``fan_out`` and every other axis a batch
axis, so a leaf is reshaped to ``(batch, fan_in, fan_out)`` and every slice is
orthogonalised on its own.

Leaves whose matrices have equal shapes (a tall one counts as its transpose)
and dtypes are orthogonalised together in batched calls of at most
``batch_bytes`` per device, then split back: the maths is per matrix, so the
result is the per-leaf result (to float rounding), but 24 equal attention
projections cost a few kernel launches instead of 24. Given ``mesh=``, each
batched call is spread over the devices of the mesh, every matrix whole on
one device (:mod:`spectral_jax.placement`).

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
  * ``orthogonalize_via_newton_schulz``: optax's function, same semantics
    (from :mod:`spectral_jax.optax_compat`, optax's conventions).

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

from typing import Any

import jax
import jax.numpy as jnp
import optax

from spectral_jax import checks
from spectral_jax import labels
from spectral_jax import linalg
from spectral_jax import optax_compat
from spectral_jax import placement
from spectral_jax.labels import MuonDimensionNumbers
from spectral_jax.optax_compat import ADJUST_LR  # re-exported (normuon)
from spectral_jax.optax_compat import PRECONDITIONINGS
from spectral_jax.optax_compat import orthogonalize_via_newton_schulz
from spectral_jax.optax_compat import scale_by_shape

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

MUON_POLAR_METHODS = ("newton_schulz", "svd", "eigh", "qdwh")
MOMENTUM_STYLES = ("optax", "torch")
EXACT_POLAR_METHODS = ("svd", "eigh", "qdwh")


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


def _orthogonalizer(plan, **kwargs):
  """A function ``(B, m, n) -> (B, m, n)`` computing polar factors per slice."""
  return optax_compat.nan_if_nonfinite(_orthogonalizer_raw(plan, **kwargs))


def _orthogonalizer_raw(plan: optax_compat.NSPlan | None, *,
                        polar_method="newton_schulz",
                        preconditioning="frobenius", eps=1e-8,
                        compute_dtype=None):
  if polar_method in EXACT_POLAR_METHODS:
    def exact(x):
      if compute_dtype is None:
        return linalg.polar(x, polar_method)
      return linalg.polar(x.astype(compute_dtype), polar_method).astype(x.dtype)
    return exact
  steps = len(plan.schedule.coeffs) if plan.steps is None else plan.steps
  norm = optax_compat.PRECONDITIONING_NORMS[preconditioning]
  return lambda x: linalg.newton_schulz(
      x, steps, plan.schedule, eps=eps, compute_dtype=compute_dtype, norm=norm)


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
  return optax_compat.nan_if_nonfinite(lambda x: linalg.newton_schulz(
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
    mesh=None,
    batch_bytes: int | None = None,
    partition_specs: Any = None,
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
    mesh: ``None``, or the ``jax.sharding.Mesh`` the updates are sharded
      over: every matrix is then orthogonalised whole on one device, the
      matrices spread evenly over all devices (one all-to-all in, one out;
      :mod:`spectral_jax.placement`). Results equal the single-device ones.
    batch_bytes: memory budget: bytes per batched call and device, each
      slice counted as its input plus an m×m Gram matrix at float32 or wider
      (``placement.counted_bytes``; ``None``:
      ``placement.DEFAULT_BATCH_BYTES``, 4 MiB); a Python int.
    partition_specs: with ``mesh``, the updates' ``PartitionSpec``s (a tree
      like the params); see :func:`spectral_jax.muon`.

  Returns:
    A stateless ``optax.GradientTransformation``.
  """
  fn = _polar_fn(polar_method, ns_coeffs, ns_steps, eps, compute_dtype)
  placement.check_placement(mesh, batch_bytes, partition_specs)

  def update_fn(updates, state, params=None):
    del params
    dims = labels.resolve_dimension_numbers(weight_dimension_numbers, updates)
    return placement.map_matrices(fn, updates, dims, mesh=mesh,
                                  batch_bytes=batch_bytes,
                                  partition_specs=partition_specs), state

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
    mesh=None,
    batch_bytes: int | None = None,
    partition_specs: Any = None,
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
    ns_coeffs, ns_steps, eps, weight_dimension_numbers, compute_dtype, mesh,
      batch_bytes, partition_specs: as in :func:`scale_by_polar` (on a mesh the nuclear norm
      is read on the device that holds the matrix).

  Returns:
    A stateless ``optax.GradientTransformation``.
  """
  checks.check_range("lipschitz", lipschitz, 0.0, lo_open=True,
               what="a finite number > 0, or None (= 1)")
  polar_fn = _polar_fn(polar_method, ns_coeffs, ns_steps, eps, compute_dtype)
  placement.check_placement(mesh, batch_bytes, partition_specs)
  inv_l = 1.0 if lipschitz is None else 1.0 / lipschitz

  def fn(g):
    p = polar_fn(g)
    nuclear = _inner(g, p, axis=(-2, -1))
    w = jnp.promote_types(p.dtype, jnp.float32)
    return (nuclear * inv_l * p.astype(w)).astype(p.dtype)

  def update_fn(updates, state, params=None):
    del params
    dims = labels.resolve_dimension_numbers(weight_dimension_numbers, updates)
    return placement.map_matrices(fn, updates, dims, mesh=mesh,
                                  batch_bytes=batch_bytes,
                                  partition_specs=partition_specs), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


# optax's own class (count, mu, ns_coeffs): states of the two libraries have
# identical tree structures, so checkpoints and code indexing
# ``state[0]['muon'][0][0][1]`` carry over.
MuonState = optax.contrib.MuonState


def scale_by_muon(
    ns_coeffs=optax_compat.DEFAULT_NS_COEFFS,
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
    mesh=None,
    batch_bytes: int | None = None,
    partition_specs: Any = None,
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
    mesh, batch_bytes, partition_specs: where and in what pieces the
      batched calls run (see
      :func:`scale_by_polar`); momentum stays in the parameters' sharding.

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
  plan = optax_compat.ns_plan(ns_coeffs, ns_steps)
  mu_dtype = checks.check_mu_dtype(mu_dtype)
  checks.check_choice("momentum_style", momentum_style, MOMENTUM_STYLES)
  placement.check_placement(mesh, batch_bytes, partition_specs)
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
    new = placement.map_matrices(orthogonalize, mu_hat, dims,
                                 group=group_equal_shapes, mesh=mesh,
                                 batch_bytes=batch_bytes, like=updates,
                                 partition_specs=partition_specs)
    if adaptive:
      new = jax.tree.map(_scale_by_dual_norm, mu_hat, new)
    return new, MuonState(count=count_inc, mu=optax.tree.cast(mu, mu_dtype),
                          ns_coeffs=state.ns_coeffs)

  return optax.GradientTransformation(init_fn, update_fn)
