r"""The condition-gated optimizer: spectral where nr(G) ≥ st(A), Euclidean elsewhere.

Davis & Drusvyatskiy's layerwise condition (arXiv:2512.04299, (4.18)) says,
for each weight matrix separately, which of the two steps has the larger
one-step guarantee:

.. math::
  \text{spectral step on } W_ℓ \iff nr(G_ℓ) \ge m \cdot st(A_{ℓ-1}),

with margin ``m = 1`` (the guarantee) or ``m = 2`` (the realized loss is
guaranteed lower). :func:`scale_by_gated_spectral` (a transform: the
direction) applies that rule per matrix (per layer of a stacked matrix) at
every step; :func:`gated_specgd` is the optimizer built on it. ``nr(G)`` is
read off the incoming updates (put it first in a chain so they are the raw
gradients); ``st(A)`` comes from the activations, which an optimizer never
sees, so the user supplies it: per step through optax's extra arguments,
``tx.update(grads, state, params, stable_rank=tree)``, with a tree made by
:func:`stable_rank_tree` from a :class:`spectral_jax.diagnostics.LayerwiseReport`
(or any tree of floats / per-layer arrays); or once, by replacing the state's
``stable_rank`` field. Until told, ``st = +inf``: every matrix is Euclidean.

Both branches run on every step (their states — e.g. Muon's momentum — stay
current whichever branch is chosen), and the update of each matrix slice is
selected with ``jnp.where``: no host round-trip, jit-compatible.

References:
  Davis & Drusvyatskiy, *When do spectral gradient updates help in deep
  learning?*, arXiv:2512.04299, §1.2 and §4.4.
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
from spectral_jax import placement
from spectral_jax import transforms

__all__ = [
    "GatedSpectralState",
    "scale_by_gated_spectral",
    "gated_specgd",
    "stable_rank_tree",
]


class GatedSpectralState(NamedTuple):
  """State of :func:`scale_by_gated_spectral`. Matrix leaves hold arrays of
  the leaf's leading (layer) shape; other leaves hold ``None``."""
  count: jax.Array         # shape=(), dtype=jnp.int32.
  stable_rank: Any         # st(A) used at the last step (user-supplied), float32.
  nuclear_rank: Any        # nr(G) of the last step's incoming updates, float32.
  spectral: Any            # bool: the last step took the spectral branch.
  spectral_state: optax.OptState
  euclidean_state: optax.OptState


def _is_matrix(x) -> bool:
  return x is not None and jnp.ndim(x) >= 2


def _lead(x) -> tuple[int, ...]:
  return tuple(jnp.shape(x)[:-2])


def _check_gate_args(spectral, euclidean, margin) -> None:
  value = checks.concrete(margin)  # None when traced (inject_hyperparams)
  if value is not None and not (np.isfinite(value) and value > 0):
    raise ValueError(f"margin must be a finite number > 0, got {margin!r}.")
  for name, tx in (("spectral", spectral), ("euclidean", euclidean)):
    if tx is not None and not isinstance(tx, optax.GradientTransformation):
      raise ValueError(f"{name}={tx!r} is not allowed; {name} must be an "
                       "optax.GradientTransformation or None (the default).")


def _stable_rank_leaves(leaves, treedef, stable_rank) -> list:
  """st(A) per update leaf: float32 of the leaf's leading shape at matrix
  leaves (``+inf`` where not given), ``None`` elsewhere."""
  try:
    st_leaves = treedef.flatten_up_to(stable_rank)
  except (ValueError, TypeError) as err:
    raise ValueError(
        "stable_rank must have the structure of the updates (None at "
        f"non-matrix leaves): {err}") from None
  return [
      None if not _is_matrix(g) else
      jnp.broadcast_to(jnp.asarray(jnp.inf if s is None else s, jnp.float32),
                       _lead(g))
      for g, s in zip(leaves, st_leaves)]


def _nuclear_ranks(leaves, treedef, mesh, partition_specs) -> list:
  """nr(G) per update leaf (float32 of its leading shape), ``None`` at
  non-matrix leaves; on a mesh, each matrix whole on one device."""
  if mesh is None:
    return [linalg.nuclear_rank(g).astype(jnp.float32) if _is_matrix(g)
            else None for g in leaves]
  mats = treedef.unflatten([g if _is_matrix(g) else None for g in leaves])
  nr = iter(jax.tree.leaves(placement.map_matrix_scalars(
      linalg.nuclear_rank, mats, labels.stacked_dimension_numbers(mats),
      mesh=mesh, partition_specs=partition_specs)))
  return [next(nr).astype(jnp.float32) if _is_matrix(g) else None
          for g in leaves]


def scale_by_gated_spectral(
    spectral: optax.GradientTransformation | None = None,
    euclidean: optax.GradientTransformation | None = None,
    *,
    margin: float = 1.0,
    mesh=None,
    partition_specs=None,
) -> optax.GradientTransformationExtraArgs:
  r"""Per matrix: ``spectral`` where nr(G) ≥ margin·st(A), else ``euclidean``.

  Args:
    spectral: the spectral direction, applied to the matrix leaves (``ndim ≥
      2``; leading axes are stacked layers). Default
      ``scale_by_specgd('svd')``: ``(‖G‖_*/L) polar(G)``. ``scale_by_muon``
      works too (with ``weight_dimension_numbers`` for stacked leaves).
    euclidean: the Euclidean direction for all leaves. Default
      ``optax.identity()`` (the gradient). Non-matrix leaves always take it.
    margin: ``m`` in ``nr ≥ m·st``; 1 = the paper's condition, 2 = the
      guaranteed-lower-loss condition.
    mesh, partition_specs: where nr(G) is computed: with the params' specs
      known (``partition_specs``, or an ``Explicit`` mesh) each gradient's
      singular values are taken whole on one device, spread over the mesh,
      and only the ranks travel back (:func:`placement.map_matrix_scalars`);
      otherwise on the gradients' own sharding. (Pass the same to the
      ``spectral`` transform for its direction.)

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` accepts
    ``stable_rank=`` (a tree like the params: float or array of the leaf's
    leading shape at matrix leaves, ``None`` elsewhere); state
    :class:`GatedSpectralState`. Follow with ``optax.scale_by_learning_rate``.
  """
  _check_gate_args(spectral, euclidean, margin)
  placement.check_placement(mesh, None, partition_specs)
  if spectral is None:
    spectral = transforms.scale_by_specgd(
        "svd", weight_dimension_numbers=labels.stacked_dimension_numbers)
  if euclidean is None:
    euclidean = optax.identity()
  matrices_only = optax.masked(
      spectral, lambda p: jax.tree.map(_is_matrix, p))

  def per_matrix(fn, tree):
    return jax.tree.map(lambda x: fn(x) if _is_matrix(x) else None, tree)

  def init_fn(params):
    zeros = lambda x, v, dt: jnp.full(_lead(x), v, dt)
    return GatedSpectralState(
        count=jnp.zeros([], jnp.int32),
        stable_rank=per_matrix(lambda x: zeros(x, jnp.inf, jnp.float32),
                               params),
        nuclear_rank=per_matrix(lambda x: zeros(x, 0.0, jnp.float32), params),
        spectral=per_matrix(lambda x: zeros(x, False, bool), params),
        spectral_state=matrices_only.init(params),
        euclidean_state=euclidean.init(params))

  def update_fn(updates, state, params=None, *, stable_rank=None,
                **extra_args):
    del extra_args
    leaves, treedef = jax.tree.flatten(updates)
    st_leaves = _stable_rank_leaves(
        leaves, treedef,
        state.stable_rank if stable_rank is None else stable_rank)
    nr_leaves = _nuclear_ranks(leaves, treedef, mesh, partition_specs)
    # nr > 0: a zero gradient (and zero activation) gives no reason to switch.
    use = [None if nr is None else (nr > 0) & (nr >= margin * st)
           for nr, st in zip(nr_leaves, st_leaves)]

    spec_updates, spec_state = matrices_only.update(
        updates, state.spectral_state, params)
    eucl_updates, eucl_state = euclidean.update(
        updates, state.euclidean_state, params)
    chosen = [
        e if u is None else jnp.where(u[..., None, None], s, e)
        for u, s, e in zip(use, treedef.flatten_up_to(spec_updates),
                           treedef.flatten_up_to(eucl_updates))]
    new_state = GatedSpectralState(
        count=optax.safe_increment(state.count),
        stable_rank=treedef.unflatten(st_leaves),
        nuclear_rank=treedef.unflatten(nr_leaves),
        spectral=treedef.unflatten(use),
        spectral_state=spec_state,
        euclidean_state=eucl_state)
    return treedef.unflatten(chosen), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def gated_specgd(learning_rate: optax.ScalarOrSchedule, *,
                 margin: float = 1.0, polar_method: str = "svd",
                 lipschitz: float | None = None, mesh=None,
                 batch_bytes: int | None = None, partition_specs=None
                 ) -> optax.GradientTransformation:
  r"""``W ← W − η·(‖G‖_*/L) polar(G)`` where nr(G) ≥ m·st(A), else ``W − η G``.

  :func:`scale_by_gated_spectral` with SpecGD and plain gradient steps, then the
  learning rate. Pass ``stable_rank=`` to ``update`` at every step (see the
  module docstring). ``mesh`` / ``batch_bytes`` / ``partition_specs``: where
  the SpecGD direction's polar factors and nr(G)'s singular values run (see
  :func:`spectral_jax.muon`).
  """
  # A schedule (callable) is not checked: checks.check_range skips it.
  checks.check_range("learning_rate", learning_rate, 0.0,
                          what="a finite number >= 0 or a schedule")
  return optax.chain(
      scale_by_gated_spectral(
          transforms.scale_by_specgd(
              polar_method, lipschitz,
              weight_dimension_numbers=labels.stacked_dimension_numbers,
              mesh=mesh, batch_bytes=batch_bytes,
              partition_specs=partition_specs),
          optax.identity(), margin=margin, mesh=mesh,
          partition_specs=partition_specs),
      optax.scale_by_learning_rate(learning_rate))


def stable_rank_tree(report, params) -> Any:
  """st(A) of a :class:`~spectral_jax.diagnostics.LayerwiseReport`, as a tree.

  Args:
    report: a ``LayerwiseReport`` (entries keyed by parameter path).
    params: the params tree the optimizer sees (``nnx.State`` of
      ``nnx.Param`` or its pure dict), to give the result its structure.

  Returns:
    A tree like ``params``: at matrix leaves a float32 array of the leaf's
    leading (layer) shape, ``+inf`` where the report has no st; ``None`` at
    other leaves. Pass it as ``update(..., stable_rank=tree)``.
  """
  by_path: dict[tuple[str, ...], dict] = {}
  for e in report.entries:
    by_path.setdefault(tuple(str(k) for k in e.path), {})[e.layer] = e.st

  def leaf(path, x):
    if not _is_matrix(x):
      return None
    lead = _lead(x)
    out = np.full(lead, np.inf, np.float32)
    found = by_path.get(labels.path_keys(path), {})
    # nnx.State flattens Variables to a trailing 'value' key: drop it.
    if not found and path and labels.path_keys(path[-1:]) == ("value",):
      found = by_path.get(labels.path_keys(path[:-1]), {})
    for layer, st in found.items():
      idx = () if layer is None else (
          layer if isinstance(layer, tuple) else (layer,))
      if st is not None:
        out[idx] = st
    return jnp.asarray(out)

  return jax.tree_util.tree_map_with_path(leaf, params)
