"""Reading a leaf as a stack of matrices: dimension numbers and reshaping.

A ``MuonDimensionNumbers`` (optax's own class) names a leaf's reduction axes
(``fan_in``) and output axes (``fan_out``); every other axis is a batch axis.
:func:`compute_muon_reshape` maps the leaf to ``(batch, fan_in, fan_out)`` and
back, with optax's private ``_compute_muon_reshape``'s contract.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from optax.contrib import MuonDimensionNumbers

__all__ = [
    "MuonDimensionNumbers",
    "compute_muon_reshape",
    "leaf_dimension_numbers",
    "matrix_shape",
    "normalize_dimension_numbers",
    "resolve_dimension_numbers",
]

# --------------------------------------------------------------------------
ReshapeFn = Callable[[jax.Array], jax.Array]
_is_dim_nums = lambda x: isinstance(x, MuonDimensionNumbers)


def normalize_dimension_numbers(
    shape: Sequence[int], dim_nums: MuonDimensionNumbers | None, path=""
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
  """``(batch_axes, reduction_axes, output_axes)``, non-negative and checked.

  ``dim_nums=None`` means a 2-D matrix ``(fan_in, fan_out)``.

  Raises:
    ValueError: naming ``path`` when the spec does not fit ``shape``.
  """
  ndim = len(shape)
  where = f" at {path}" if path else ""
  if dim_nums is None:
    if ndim != 2:
      raise ValueError(
          f"leaf{where} has shape {tuple(shape)}: without MuonDimensionNumbers "
          "a matrix leaf must be 2-D.")
    dim_nums = MuonDimensionNumbers()
  if not _is_dim_nums(dim_nums):
    raise ValueError(f"expected MuonDimensionNumbers or None{where}, got "
                     f"{dim_nums!r}.")
  if ndim < 2:
    raise ValueError(f"leaf{where} has shape {tuple(shape)}: a matrix leaf "
                     "needs rank >= 2.")

  def norm(axes, name):
    axes = (axes,) if isinstance(axes, (int, np.integer)) else axes
    try:
      axes = tuple(axes)
    except TypeError:
      axes = (axes,)
    for ax in axes:
      if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
        raise ValueError(f"{name}={axes}{where}: axes must be ints, got "
                         f"{ax!r} ({type(ax).__name__}).")
      if not -ndim <= ax < ndim:
        raise ValueError(
            f"{name}={axes}{where} is out of range for shape {tuple(shape)}.")
    out = tuple(int(ax) % ndim for ax in axes)
    if not out or len(set(out)) != len(out):
      raise ValueError(f"{name}={axes}{where} must be non-empty and distinct "
                       f"(shape {tuple(shape)}).")
    return out

  red = norm(dim_nums.reduction_axis, "reduction_axis")
  out = norm(dim_nums.output_axis, "output_axis")
  if set(red) & set(out):
    raise ValueError(f"reduction axes {red} and output axes {out}{where} must "
                     f"be disjoint (shape {tuple(shape)}).")
  batch = tuple(ax for ax in range(ndim) if ax not in red and ax not in out)
  return batch, red, out


def matrix_shape(shape: Sequence[int], dim_nums: MuonDimensionNumbers | None,
                 path="") -> tuple[int, int, int]:
  """``(batch, fan_in, fan_out)`` of a leaf read through ``dim_nums``."""
  batch, red, out = normalize_dimension_numbers(shape, dim_nums, path)
  size = lambda axes: math.prod(shape[ax] for ax in axes)
  return size(batch), size(red), size(out)


def compute_muon_reshape(
    x: jax.Array, dim_nums: MuonDimensionNumbers | None, path=""
) -> tuple[ReshapeFn, ReshapeFn]:
  """``(reshape_fn, inverse_fn)`` between ``x`` and ``(batch, fan_in,
  fan_out)``.

  Same contract as optax's private ``_compute_muon_reshape``: batch axes come
  first (in their original order), then the reduction axes, then the output
  axes, each group flattened in the order the spec lists it.
  """
  shape = tuple(x.shape)
  batch, red, out = normalize_dimension_numbers(shape, dim_nums, path)
  perm = batch + red + out
  inv_perm = tuple(int(i) for i in np.argsort(perm))
  flat = matrix_shape(shape, dim_nums, path)
  permuted = tuple(shape[ax] for ax in perm)
  reshape_fn = lambda y: jnp.transpose(y, perm).reshape(flat)
  inverse_fn = lambda y: jnp.transpose(y.reshape(permuted), inv_perm)
  return reshape_fn, inverse_fn


def resolve_dimension_numbers(weight_dimension_numbers, updates):
  if callable(weight_dimension_numbers) and not _is_dim_nums(
      weight_dimension_numbers):
    # Only shapes matter, and params may not be passed to update.
    return weight_dimension_numbers(updates)
  return weight_dimension_numbers


def leaf_dimension_numbers(updates, dim_nums):
  """Per-leaf specs: ``dim_nums`` read at every leaf position of ``updates``.

  ``None`` (whole tree) means "every leaf is 2-D"; a single
  ``MuonDimensionNumbers`` applies to every leaf.
  """
  paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(updates)
  paths = [p for p, _ in paths_leaves]
  leaves = [x for _, x in paths_leaves]
  if dim_nums is None or _is_dim_nums(dim_nums):
    return paths, leaves, treedef, [dim_nums] * len(leaves)
  try:
    dims = treedef.flatten_up_to(dim_nums)
  except (ValueError, TypeError) as err:
    raise ValueError(
        "weight_dimension_numbers does not match the structure of the "
        f"updates: {err}") from None
  return paths, leaves, treedef, dims
