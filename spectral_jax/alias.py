"""User-facing optimizers, composed from :mod:`spectral_jax.transforms`.

* ``muon``: a drop-in for ``optax.contrib.muon`` (same arguments, same state
  layout, same updates to float rounding) with exact polar factors, our named
  Newton–Schulz schedules, a compute dtype and batched equal-shape leaves.
* ``specgd``: spectral gradient descent on the matrix leaves, any optax
  transform on the rest.

Both are ``optax.partition``s: matrix leaves get the spectral chain, the others
AdamW (or ``other``), exactly like optax's own ``muon``.

References:
  Jordan et al., *Muon*, https://kellerjordan.github.io/posts/muon/.
  Davis & Drusvyatskiy, arXiv:2512.04299.
"""

# No `from __future__ import annotations` here: optax's common tests read
# `learning_rate`'s annotation object to decide whether a schedule is allowed.
from typing import Any, Callable

import optax

from spectral_jax import checks
from spectral_jax import labels
from spectral_jax import linalg
from spectral_jax import transforms

__all__ = ["muon", "specgd"]

_MASKED = optax.MaskedNode


def muon(
    learning_rate: optax.ScalarOrSchedule,
    ns_coeffs: Any = linalg.SCHEDULES["jordan"].coeffs[0],
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_decay_mask: Any | Callable[[optax.Params], Any] | None = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps_root: float = 0.0,
    adam_weight_decay: float = 0.0,
    adam_learning_rate: optax.ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: Any = None,
    consistent_rms: float | None = None,
    polar_method: str = "newton_schulz",
    compute_dtype: Any = None,
    group_equal_shapes: bool = True,
    momentum_style: str = "optax",
    adjust_lr: str | None = None,
    weight_layout: str = "flax",
    mesh: Any = None,
    batch_bytes: int | None = None,
    partition_specs: Any = None,
) -> optax.GradientTransformation:
  r"""Muon: momentum orthogonalised by Newton–Schulz (or an exact polar).

  A drop-in for ``optax.contrib.muon`` (optax 0.2.8): every argument has the
  same meaning, the state has the same layout, and the updates agree to float
  rounding. Matrix leaves take

  .. math::
    W \leftarrow W - \eta\,(s \cdot \operatorname{polar}(\hat m_t) + \lambda W)

  with ``m̂`` optax's bias-corrected (Nesterov) momentum and ``s`` the shape
  scaling (``√max(1, fan_out/fan_in)``, or ``ρ√max(fan_in, fan_out)`` with
  ``consistent_rms=ρ``); the other leaves take AdamW.

  Args:
    learning_rate: step size or schedule.
    ns_coeffs: ``(a, b, c)``, a ``(k, 3)`` table, optax's ``'standard'`` /
      ``'dion'``, or ``'jordan'`` / ``'polar_express'`` / ``'cubic'`` (see
      :func:`spectral_jax.scale_by_muon`).
    ns_steps: Newton–Schulz iterations.
    beta: momentum decay in [0, 1).
    eps: normaliser epsilon (Newton–Schulz and Adam).
    weight_decay: decoupled weight decay of the matrix leaves (times lr).
    weight_decay_mask: tree / callable of booleans for ``weight_decay``.
    mu_dtype: momentum dtype (both branches).
    nesterov: Nesterov momentum (both branches).
    adaptive: scale by the dual norm ``⟨m̂, polar(m̂)⟩`` (arXiv:2409.20325).
    preconditioning: ``'frobenius'``, ``'spectral'``, ``'aol'``
      (arXiv:2512.04632), ``'schatten'`` (arXiv:2506.10935).
    adam_b1, adam_b2, adam_eps_root, adam_weight_decay: AdamW branch.
    adam_learning_rate: AdamW step size; ``None``: ``learning_rate``.
    muon_weight_dimension_numbers: ``None`` (2-D leaves are matrices), a tree
      of ``MuonDimensionNumbers`` / ``None`` (``None``, also for a whole
      subtree, means AdamW), or a callable ``params -> such a tree``.
    consistent_rms: ``None`` or ``ρ`` (arXiv:2502.16982).
    polar_method: ``'newton_schulz'`` (default) or exact ``'svd'``,
      ``'eigh'``, ``'qdwh'``.
    compute_dtype: dtype of the orthogonalisation (e.g. ``jnp.bfloat16``).
    group_equal_shapes: one batched orthogonalisation per matrix shape.
    momentum_style: ``'optax'`` (bias-corrected momentum, optax.contrib's)
      or ``'torch'`` (torch.optim.Muon / KellerJordan: none).
    adjust_lr: torch.optim.Muon's ``adjust_lr_fn``: ``'original'``,
      ``'match_rms_adamw'`` or ``'spectral_unclamped'`` (see
      :func:`spectral_jax.scale_by_shape`); ``None`` keeps optax's rule.
    weight_layout: how a 2-D matrix leaf is laid out when
      ``muon_weight_dimension_numbers`` is ``None``: ``'flax'``
      (fan_in × fan_out, optax's default) or ``'torch'`` (out × in, a
      ``torch.nn.Linear`` weight). Only the shape scaling depends on it.
    mesh: ``None``, or the ``jax.sharding.Mesh`` the params and gradients
      are sharded over (passed explicitly: inside ``jit`` the inputs do not
      carry it). Each matrix is then orthogonalised whole on one device and
      the matrices spread evenly over all devices: one all-to-all in, one
      out, none inside the iteration; the updates keep the gradients'
      shardings and equal the single-device ones to float rounding.
    batch_bytes: memory budget of the batched orthogonalisation: bytes per
      call and device, each matrix counted as its input plus an m×m Gram
      matrix at float32 or wider (``placement.counted_bytes``), a Python int
      (``None``: 4 MiB, ``placement.DEFAULT_BATCH_BYTES``).
    partition_specs: with ``mesh``, the params' ``PartitionSpec``s (a tree
      like the params, of ``PartitionSpec`` / ``NamedSharding``; e.g.
      ``nnx.get_partition_spec(state)``). The matrices then move by explicit
      collectives, one all-to-all each way over the axes that split them
      (:mod:`spectral_jax.shard_plan`); on a mesh whose axes are all
      ``Explicit`` (``jax.make_mesh``'s default) the specs are read off the
      gradients' types and this is not needed. Without either, XLA's
      partitioner moves the matrices: as good on an FSDP-only mesh, several
      times the bytes with ``data`` or ``model`` axes too (BENCHMARKS.md).

  With ``momentum_style='torch', adjust_lr='original', eps=1e-7,
  weight_layout='torch'`` the matrix leaves follow torch.optim.Muon's update
  (README: the argument table).

  Returns:
    An ``optax.GradientTransformation`` (an ``optax.partition`` with labels
    ``'muon'`` and ``'adam'``).

  Raises:
    ValueError: at build time, for an unknown ``preconditioning``,
      ``polar_method`` or ``ns_coeffs`` name, ``ns_steps < 1``, ``beta``
      outside [0, 1), ``adam_b1`` / ``adam_b2`` outside [0, 1), an unknown
      ``mu_dtype`` or a negative learning rate.
  """
  if adam_learning_rate is None:
    adam_learning_rate = learning_rate
  checks.check_muon_family(
      learning_rate=learning_rate, adam_learning_rate=adam_learning_rate,
      adam_b1=adam_b1, adam_b2=adam_b2, mu_dtype=mu_dtype,
      weight_decay=weight_decay, adam_weight_decay=adam_weight_decay,
      adam_eps_root=adam_eps_root)
  muon_weight_dimension_numbers = labels.layout_dimension_numbers(
      weight_layout, muon_weight_dimension_numbers)

  def matrix_tx(dims_fn):
    return optax.chain(
        transforms.scale_by_muon(
            ns_coeffs=ns_coeffs, ns_steps=ns_steps, beta=beta, eps=eps,
            mu_dtype=mu_dtype, nesterov=nesterov, adaptive=adaptive,
            preconditioning=preconditioning, weight_dimension_numbers=dims_fn,
            polar_method=polar_method, compute_dtype=compute_dtype,
            group_equal_shapes=group_equal_shapes,
            momentum_style=momentum_style, mesh=mesh,
            batch_bytes=batch_bytes,
            partition_specs=partition_specs),
        transforms.scale_by_shape(weight_dimension_numbers=dims_fn,
                                  consistent_rms=consistent_rms,
                                  adjust_lr=adjust_lr),
        optax.add_decayed_weights(weight_decay, weight_decay_mask),
        optax.scale_by_learning_rate(learning_rate),
    )

  adam = optax.adamw(
      learning_rate=adam_learning_rate, b1=adam_b1, b2=adam_b2, eps=eps,
      eps_root=adam_eps_root, weight_decay=adam_weight_decay,
      mu_dtype=mu_dtype, nesterov=nesterov)
  return labels.matrix_partition(muon_weight_dimension_numbers, matrix_tx,
                                 adam, matrix_label="muon", other_label="adam")


def specgd(
    learning_rate: optax.ScalarOrSchedule,
    *,
    polar_method: str = "svd",
    lipschitz: float | None = None,
    other: optax.GradientTransformation | None = None,
    weight_dimension_numbers: Any = None,
    weight_decay: float = 0.0,
    weight_decay_mask: Any | Callable[[optax.Params], Any] | None = None,
    ns_coeffs: Any = "jordan",
    ns_steps: int = 5,
    eps: float | None = None,
    compute_dtype: Any = None,
    mesh: Any = None,
    batch_bytes: int | None = None,
    partition_specs: Any = None,
) -> optax.GradientTransformation:
  r"""Spectral gradient descent on matrix leaves, ``other`` on the rest.

  .. math::
    W \leftarrow W - \eta\left(\frac{\|G\|_*}{L}\operatorname{polar}(G)
    + \lambda W\right)

  the exact steepest-descent step for the operator-norm upper model (Carlson
  et al. 2015; Davis & Drusvyatskiy, arXiv:2512.04299, §1.2). No momentum.

  Args:
    learning_rate: ``η`` (float or schedule).
    polar_method: polar method, ``'svd'`` (default), ``'eigh'``, ``'qdwh'`` or
      ``'newton_schulz'``.
    lipschitz: ``L > 0`` or ``None`` (= 1).
    other: optax transform for the non-matrix leaves; default
      ``optax.adamw(learning_rate)``.
    weight_dimension_numbers: as ``muon``'s ``muon_weight_dimension_numbers``.
    weight_decay, weight_decay_mask: decoupled decay of the matrix leaves.
    ns_coeffs, ns_steps, eps, compute_dtype: see
      :func:`spectral_jax.scale_by_polar`.
    mesh, batch_bytes, partition_specs: as in :func:`muon`.

  Returns:
    An ``optax.partition`` with labels ``'specgd'`` and ``'other'``.
  """
  checks.check_learning_rate("learning_rate", learning_rate)
  if other is None:
    other = optax.adamw(learning_rate)
  elif not isinstance(other, optax.GradientTransformation):
    raise ValueError(f"other={other!r} is not allowed; other must be an "
                     "optax.GradientTransformation or None (AdamW).")
  return labels.matrix_partition(
      weight_dimension_numbers,
      lambda dims_fn: optax.chain(
          transforms.scale_by_specgd(
              polar_method, lipschitz, ns_coeffs=ns_coeffs, ns_steps=ns_steps,
              eps=eps, weight_dimension_numbers=dims_fn,
              compute_dtype=compute_dtype, mesh=mesh,
              batch_bytes=batch_bytes,
            partition_specs=partition_specs),
          optax.add_decayed_weights(weight_decay, weight_decay_mask),
          optax.scale_by_learning_rate(learning_rate),
      ),
      other, matrix_label="specgd", other_label="other")
