"""NorMuon: Muon's orthogonalised update, normalised neuron by neuron.

``scale_by_normuon`` follows any orthogonalisation (``scale_by_muon``,
``scale_by_polar``) in an ``optax.chain``; ``normuon`` is the optimizer, built
like :func:`spectral_jax.muon` (same arguments, same handling of non-matrix
leaves, dimension numbers and weight decay) with the normalisation between
the orthogonalisation and the shape scaling.

References:
  Li et al., *NorMuon: Making Muon more efficient and scalable*,
  arXiv:2510.05491.
  Jordan et al., *Muon*, https://kellerjordan.github.io/posts/muon/.
  Liu et al., *Muon is scalable for LLM training*, arXiv:2502.16982.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp
import optax

from spectral_jax import checks
from spectral_jax import labels
from spectral_jax import linalg
from spectral_jax import transforms
from spectral_jax.linalg import base

__all__ = ["NorMuonState", "normuon", "scale_by_normuon"]


class NorMuonState(NamedTuple):
  """State of :func:`scale_by_normuon`."""
  # Per matrix leaf: the running mean square of each output neuron, shape
  # (batch, fan_out) in at least float32; MaskedNode / unchanged elsewhere.
  nu: Any


def _real_dtype(dtype):
  return jnp.promote_types(jnp.finfo(dtype).dtype, jnp.float32)


def _normalize(o, nu, dims, beta2, eps, rms):
  """One leaf: ``(o, nu) -> (normalised o, new nu)`` (module docstring)."""
  reshape_fn, inverse_fn = labels.compute_muon_reshape(o, dims)
  x = reshape_fn(o)
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  fan_in, fan_out = x.shape[-2:]
  mean_sq = jnp.mean(jnp.abs(x) ** 2, axis=-2)  # (batch, fan_out)
  nu = beta2 * nu + (1 - beta2) * mean_sq
  y = x / (jnp.sqrt(nu)[..., None, :] + eps)
  if rms is None:
    target = base.frobenius(x)
  else:
    target = rms * jnp.sqrt(float(fan_in * fan_out))
  y = y * base.safe_div(target, base.frobenius(y))
  return inverse_fn(y.astype(o.dtype)), nu.astype(_real_dtype(o.dtype))


def scale_by_normuon(
    beta2: float = 0.95,
    eps: float = 1e-8,
    *,
    rms: float | None = None,
    weight_dimension_numbers: Any = None,
) -> optax.GradientTransformation:
  r"""NorMuon's neuron-wise normalisation of an orthogonalised update.

  Read each matrix leaf as ``O ∈ R^{fan_in × fan_out}`` (per batch slice) and
  keep, for every output neuron ``j``, a running mean of its squared entries
  (arXiv:2510.05491, §3 and its Algorithm 1):

  .. math::
    v_t = \beta_2 v_{t-1} + (1-\beta_2)\,\tfrac{1}{\text{fan\_in}}
          \textstyle\sum_i O_{ij}^2,\qquad
    \hat O_{ij} = \frac{O_{ij}}{\sqrt{v_{t,j}} + \epsilon},\qquad
    u = \frac{r}{\|\hat O\|_F}\,\hat O

  with ``r = ‖O‖_F`` (``rms=None``: the update keeps the orthogonalised
  update's norm, as the authors' released code and microsoft/dion do; follow
  with :func:`spectral_jax.scale_by_shape` for Muon's width scaling) or
  ``r = ρ √(fan_in·fan_out)`` (``rms=ρ``: Algorithm 1's
  ``η̂ = 0.2 η √(mn) / ‖Ô‖_F`` with ``ρ = 0.2``, an update of RMS ``ρ``, as
  Moonlight's AdamW-matched scaling). ``v_0 = 0`` without bias correction,
  as in the paper: the rescaling cancels any common factor of ``v`` (up to
  ``ε``). A neuron is an output feature: a column of a ``(fan_in,
  fan_out)`` Flax kernel, a row of a PyTorch ``(out, in)`` weight.

  Args:
    beta2: decay of the neuron-wise second moment, in [0, 1) (paper: 0.95).
    eps: added to ``√v`` (>= 0).
    rms: ``None`` (keep ``‖O‖_F``) or ``ρ > 0`` (update RMS ``ρ``).
    weight_dimension_numbers: as in :func:`spectral_jax.scale_by_muon`.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`NorMuonState`.

  Raises:
    ValueError: for ``beta2`` outside [0, 1), a negative ``eps`` or
      ``rms <= 0``.
  """
  checks.check_range("beta2", beta2, 0.0, 1.0, hi_open=True, what="in [0, 1)")
  checks.check_range("eps", eps, 0.0, what="a finite number >= 0")
  checks.check_range("rms", rms, 0.0, lo_open=True,
                     what="a finite number > 0, or None")

  def init_fn(params):
    dims = labels.resolve_dimension_numbers(weight_dimension_numbers, params)
    paths, leaves, treedef, leaf_dims = labels.leaf_dimension_numbers(params,
                                                                      dims)
    nu = []
    for path, x, d in zip(paths, leaves, leaf_dims):
      b, _, fan_out = labels.matrix_shape(x.shape, d, labels.path_name(path))
      nu.append(jnp.zeros((b, fan_out), _real_dtype(x.dtype)))
    return NorMuonState(nu=treedef.unflatten(nu))

  def update_fn(updates, state, params=None):
    del params
    dims = labels.resolve_dimension_numbers(weight_dimension_numbers, updates)
    _, leaves, treedef, leaf_dims = labels.leaf_dimension_numbers(updates, dims)
    nus = treedef.flatten_up_to(state.nu)
    out = [_normalize(o, nu, d, beta2, eps, rms)
           for o, nu, d in zip(leaves, nus, leaf_dims)]
    return (treedef.unflatten([u for u, _ in out]),
            NorMuonState(nu=treedef.unflatten([v for _, v in out])))

  return optax.GradientTransformation(init_fn, update_fn)


def _check_args(**kw) -> None:
  """:func:`normuon`'s own checks (the transforms check the rest)."""
  checks.check_muon_family(
      learning_rate=kw["learning_rate"],
      adam_learning_rate=kw["adam_learning_rate"], adam_b1=kw["adam_b1"],
      adam_b2=kw["adam_b2"], mu_dtype=kw["mu_dtype"],
      weight_decay=kw["weight_decay"],
      adam_weight_decay=kw["adam_weight_decay"],
      normuon_eps=kw["normuon_eps"])
  if kw["adjust_lr"] is not None:
    checks.check_choice("adjust_lr", kw["adjust_lr"], transforms.ADJUST_LR)
    if kw["consistent_rms"] is not None:
      raise ValueError(
          f"adjust_lr={kw['adjust_lr']!r} and consistent_rms="
          f"{kw['consistent_rms']!r} both set the update's scale; pass one of "
          "them.")


def normuon(
    learning_rate: optax.ScalarOrSchedule,
    ns_coeffs: Any = linalg.SCHEDULES["jordan"].coeffs[0],
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_decay_mask: Any | Callable[[optax.Params], Any] | None = None,
    mu_dtype: Any = None,
    *,
    beta2: float = 0.95,
    normuon_eps: float = 1e-8,
    nesterov: bool = True,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_weight_decay: float = 0.0,
    adam_learning_rate: optax.ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: Any = None,
    consistent_rms: float | None = None,
    polar_method: str = "newton_schulz",
    compute_dtype: Any = None,
    momentum_style: str = "optax",
    adjust_lr: str | None = None,
    weight_layout: str = "flax",
    mesh: Any = None,
    batch_bytes: int | None = None,
    partition_specs: Any = None,
) -> optax.GradientTransformation:
  r"""NorMuon (arXiv:2510.05491, Algorithm 1): Muon, then neuron-wise
  normalisation, on the matrix leaves; AdamW on the others.

  .. math::
    W \leftarrow W - \eta\,(s \cdot N(\operatorname{polar}(\hat m_t))
    + \lambda W)

  ``N`` is :func:`scale_by_normuon` (second moment per output neuron,
  ``beta2``, ``normuon_eps``), ``m̂`` and ``polar`` are
  :func:`spectral_jax.muon`'s, and every argument shared with ``muon`` means
  the same. The scaling ``s`` and ``N``'s target norm:

  * default (and ``adjust_lr='original'`` / ``'spectral_unclamped'``):
    ``N`` keeps the orthogonalised update's Frobenius norm and ``s`` is
    ``muon``'s width scaling (the NorMuon authors' released code);
  * ``consistent_rms=ρ`` (or ``adjust_lr='match_rms_adamw'``, ``ρ = 0.2``):
    ``N`` rescales to RMS ``ρ`` exactly (Algorithm 1's step size
    ``η̂ = 0.2η√(mn)/‖Ô‖_F``) and ``s = 1``. On an exactly orthogonal
    full-rank factor this is ``muon``'s ``ρ√max(m, n)`` scaling.

  The paper's Algorithm 1 itself: ``momentum_style='torch',
  nesterov=False, consistent_rms=0.2``.

  Args:
    learning_rate, ns_coeffs, ns_steps, beta, eps, weight_decay,
      weight_decay_mask, mu_dtype, nesterov, adam_*,
      muon_weight_dimension_numbers, polar_method, compute_dtype,
      momentum_style, adjust_lr, weight_layout, mesh, batch_bytes,
      partition_specs: as in :func:`spectral_jax.muon`.
    beta2: NorMuon's second-moment decay, in [0, 1) (paper: 0.95).
    normuon_eps: added to the neuron-wise ``√v``.
    consistent_rms: ``None`` or ``ρ > 0`` (above).

  Returns:
    An ``optax.partition`` with labels ``'muon'`` and ``'adam'``; the
    ``'muon'`` chain's states are ``(MuonState, NorMuonState, ...)``.

  Raises:
    ValueError: for any argument :func:`spectral_jax.muon` refuses, ``beta2``
      outside [0, 1), a negative ``normuon_eps``, ``consistent_rms <= 0``,
      or ``consistent_rms`` together with ``adjust_lr``.
  """
  adam_lr = learning_rate if adam_learning_rate is None else adam_learning_rate
  _check_args(learning_rate=learning_rate, adam_learning_rate=adam_lr,
              adam_b1=adam_b1, adam_b2=adam_b2, weight_decay=weight_decay,
              adam_weight_decay=adam_weight_decay, normuon_eps=normuon_eps,
              weight_layout=weight_layout, adjust_lr=adjust_lr,
              consistent_rms=consistent_rms, mu_dtype=mu_dtype)
  rms = 0.2 if adjust_lr == "match_rms_adamw" else consistent_rms
  muon_weight_dimension_numbers = labels.layout_dimension_numbers(
      weight_layout, muon_weight_dimension_numbers)

  def matrix_tx(dims_fn):
    return optax.chain(
        transforms.scale_by_muon(
            ns_coeffs=ns_coeffs, ns_steps=ns_steps, beta=beta, eps=eps,
            mu_dtype=mu_dtype, nesterov=nesterov,
            weight_dimension_numbers=dims_fn, polar_method=polar_method,
            compute_dtype=compute_dtype, momentum_style=momentum_style,
            mesh=mesh, batch_bytes=batch_bytes,
            partition_specs=partition_specs),
        scale_by_normuon(beta2, normuon_eps, rms=rms,
                         weight_dimension_numbers=dims_fn),
        # Same chain layout either way: the shape scaling is the identity when
        # the normalisation already set the update's RMS.
        optax.identity() if rms is not None else transforms.scale_by_shape(
            weight_dimension_numbers=dims_fn, adjust_lr=adjust_lr),
        optax.add_decayed_weights(weight_decay, weight_decay_mask),
        optax.scale_by_learning_rate(learning_rate),
    )

  adam = optax.adamw(learning_rate=adam_lr, b1=adam_b1, b2=adam_b2, eps=eps,
                     weight_decay=adam_weight_decay, mu_dtype=mu_dtype,
                     nesterov=nesterov)
  return labels.matrix_partition(muon_weight_dimension_numbers, matrix_tx,
                                 adam, matrix_label="muon", other_label="adam")
