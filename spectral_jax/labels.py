"""Which leaves are matrices, and how to read them.

A spec tree mirrors the params tree (or a prefix of it) with a
``MuonDimensionNumbers`` for every matrix leaf and ``None`` for the rest (these
go to AdamW in :func:`spectral_jax.muon`). This module builds such trees for
stacked layers and Flax NNX models, checks them against params, and prints
them as a table.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax.contrib import MuonDimensionNumbers

__all__ = [
    "path_keys",
    "path_name",
    "matrix_labels",
    "matrix_partition",
    "MuonDimensionNumbers",
    "check_dimension_numbers",
    "compute_muon_reshape",
    "describe",
    "leaf_dimension_numbers",
    "map_matrices",
    "matrix_shape",
    "normalize_dimension_numbers",
    "resolve_dimension_numbers",
    "nnx_dimension_numbers",
    "stacked_dimension_numbers",
]

_is_spec = lambda x: x is None or isinstance(x, MuonDimensionNumbers)
_is_masked = lambda x: isinstance(x, optax.MaskedNode)


def path_keys(path) -> tuple[str, ...]:
  """The keys of a pytree path as strings: ``("blocks", "attn", "kernel")``.

  Dict keys, attribute names (dataclasses, NNX) and sequence indices alike.
  """
  names = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        names.append(str(getattr(key, attr)))
        break
    else:
      names.append(str(key))
  return tuple(names)


def path_name(path) -> str:
  """The one printable name of a pytree path: keys joined by ``"/"``
  (``"blocks/attn/kernel"``), ``"<root>"`` for the empty path. Every table,
  metric key and error message of the library names leaves this way."""
  return "/".join(path_keys(path)) if len(path) else "<root>"


# --------------------------------------------------------------------------
# Reading a leaf as a stack of matrices.
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


def map_matrices(fn, updates, dim_nums, *, group: bool = True):
  """Apply ``fn: (B, m, n) -> (B, m, n)`` to every leaf read as matrices.

  Leaves with equal ``(fan_in, fan_out)`` and dtype go through ``fn`` in one
  call, concatenated along the batch axis; ``fn`` must act per slice.
  """
  paths, leaves, treedef, dims = leaf_dimension_numbers(updates, dim_nums)
  flat, inverses = [], []
  for path, x, d in zip(paths, leaves, dims):
    reshape_fn, inverse_fn = compute_muon_reshape(x, d, path_name(path))
    flat.append(reshape_fn(x))
    inverses.append(inverse_fn)
  out = [None] * len(flat)
  groups: dict[Any, list[int]] = {}
  for i, y in enumerate(flat):
    key = (y.shape[1:], y.dtype) if group else i
    groups.setdefault(key, []).append(i)
  for idx in groups.values():
    if len(idx) == 1:
      out[idx[0]] = fn(flat[idx[0]])
      continue
    sizes = [flat[i].shape[0] for i in idx]
    res = fn(jnp.concatenate([flat[i] for i in idx], axis=0))
    for i, piece in zip(idx, jnp.split(res, np.cumsum(sizes)[:-1], axis=0)):
      out[i] = piece
  return treedef.unflatten([inv(y) for inv, y in zip(inverses, out)])


def _path_names(path) -> list[str]:
  return list(path_keys(path))


def _excluded(path, exclude: Sequence[str]) -> bool:
  names = [n.lower() for n in _path_names(path)]
  return any(e.lower() in n for e in exclude for n in names)


def _resolve(params, dimension_numbers):
  if dimension_numbers is None:
    return jax.tree.map(
        lambda x: MuonDimensionNumbers() if np.ndim(x) == 2 else None, params)
  if callable(dimension_numbers) and not isinstance(dimension_numbers,
                                                    MuonDimensionNumbers):
    return dimension_numbers(params)
  return dimension_numbers


def check_dimension_numbers(params, dimension_numbers) -> None:
  """Check a spec tree (or prefix) against ``params``.

  Raises:
    ValueError: naming the path of the first spec that does not fit (rank,
      axes out of range or overlapping), or when the structures differ.
  """
  dims = _resolve(params, dimension_numbers)
  try:
    pairs = _broadcast(params, dims)
  except ValueError as err:
    raise ValueError(
        f"dimension numbers do not match the params' structure: {err}"
    ) from None
  for path, x, spec in pairs:
    if spec is not None:
      normalize_dimension_numbers(np.shape(x), spec,
                                  path_name(path))


def matrix_labels(dimension_numbers, matrix_label: str = "matrix",
                  other_label: str = "other"):
  """``(param_labels, dims_fn)`` for optax.partition, optax.contrib's rules.

  ``dimension_numbers=None``: 2-D leaves are matrices. Otherwise a tree of
  ``MuonDimensionNumbers`` or ``None`` (``None`` may stand for a whole
  subtree: every leaf below it goes to ``other_label``), or a callable
  returning one. ``dims_fn`` puts ``MaskedNode`` where the matrix branch sees
  masked leaves, so its tree matches the masked updates inside the partition.
  """
  if dimension_numbers is None:
    param_labels = lambda params: jax.tree.map(
        lambda x: matrix_label if x.ndim == 2 else other_label, params)
    dimension_numbers = MuonDimensionNumbers()
    resolve = lambda params: dimension_numbers
  else:
    resolve = lambda params: (
        dimension_numbers(params) if callable(dimension_numbers)
        and not isinstance(dimension_numbers, MuonDimensionNumbers)
        else dimension_numbers)

    def param_labels(params):
      dims = resolve(params)
      check_dimension_numbers(params, dims)
      # Specs come first: a None / spec may be a prefix of a params subtree.
      return jax.tree.map(
          lambda d, sub: jax.tree.map(
              lambda _: other_label if d is None else matrix_label, sub),
          dims, params,
          is_leaf=lambda x: x is None or isinstance(x, MuonDimensionNumbers))

  def dims_fn(params):
    dims = resolve(params)
    mask = jax.tree.map(lambda lab: lab == matrix_label, param_labels(params))
    is_leaf = lambda x: (x is None or isinstance(x, (MuonDimensionNumbers,
                                                     optax.MaskedNode)))
    return jax.tree.map(
        lambda d, sub: jax.tree.map(lambda m: d if m else optax.MaskedNode(), sub),
        dims, mask, is_leaf=is_leaf)

  return param_labels, dims_fn


def matrix_partition(dimension_numbers, matrix_tx, other_tx, *,
                     matrix_label: str = "matrix", other_label: str = "other"
                     ) -> optax.GradientTransformation:
  """``optax.partition``: matrix leaves get ``matrix_tx``, the others ``other_tx``.

  Which leaves are matrices follows optax.contrib.muon's rules (see
  ``matrix_labels``): ``dimension_numbers=None`` means every 2-D leaf; a tree
  of ``MuonDimensionNumbers`` / ``None`` (or a callable returning one) marks
  them explicitly.

  Args:
    dimension_numbers: ``None``, a tree of specs, or a callable of the params.
    matrix_tx: a ``GradientTransformation``, or a callable ``dims_fn ->
      GradientTransformation`` for a matrix transform that needs the specs of
      the leaves it sees (``dims_fn(params)`` is the spec tree with
      ``MaskedNode`` where the partition masks a leaf).
    other_tx: the transformation of every other leaf.
    matrix_label, other_label: the partition's labels, which name the two
      branches of its state (e.g. optax.contrib.muon's ``'muon'`` /
      ``'adam'``; checkpoints record them in their paths).

  Returns:
    The partitioned ``GradientTransformation``.
  """
  param_labels, dims_fn = matrix_labels(dimension_numbers, matrix_label,
                                        other_label)
  if not isinstance(matrix_tx, optax.GradientTransformation):
    matrix_tx = matrix_tx(dims_fn)
  return optax.partition({matrix_label: matrix_tx, other_label: other_tx},
                         param_labels)


def _broadcast(params, dims):
  """Per-leaf list of (path, leaf, spec), reading specs as a prefix tree."""
  out = []

  def visit(path, spec, sub):
    for sub_path, x in jax.tree_util.tree_leaves_with_path(sub):
      out.append((tuple(path) + tuple(sub_path), x, spec))

  jax.tree_util.tree_map_with_path(
      visit, dims, params, is_leaf=lambda x: _is_spec(x) or _is_masked(x))
  return out


def stacked_dimension_numbers(params, *, exclude: Sequence[str] = ()):
  """Specs for params whose matrices are the last two axes.

  Every leaf with ``ndim >= 2`` gets ``MuonDimensionNumbers(ndim-2, ndim-1)``
  (leading axes are layers / batch, each slice its own matrix); 1-D leaves,
  scalars and leaves whose path contains a string of ``exclude`` get ``None``.

  Args:
    params: a params tree (arrays or ``jax.ShapeDtypeStruct``s).
    exclude: case-insensitive substrings of path components to leave to Adam.

  Returns:
    A tree of ``params``' structure.
  """
  def spec(path, x):
    nd = np.ndim(x) if not hasattr(x, "shape") else len(x.shape)
    if nd < 2 or _excluded(path, exclude):
      return None
    return MuonDimensionNumbers(nd - 2, nd - 1)
  return jax.tree_util.tree_map_with_path(spec, params)


def _nnx_module_kinds(model):
  """Map ``param path -> (module class name, kernel_size or None)``."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  kinds = {}
  for path, module in nnx.iter_graph(model):
    if not isinstance(module, nnx.Module):
      continue
    ks = getattr(module, "kernel_size", None)
    kinds[tuple(str(p) for p in path)] = (type(module).__name__, ks)
  return kinds


def nnx_dimension_numbers(model_or_state, *, exclude: Sequence[str] = (
    "embed", "lm_head", "head"), conv: str = "flatten"):
  """Specs for a Flax NNX model's parameters, matching what ``nnx.Optimizer``
  passes to optax (``nnx.as_pure(nnx.state(model, nnx.Param))``).

  * ``kernel`` of shape ``(in, out)``: ``MuonDimensionNumbers(0, 1)``;
    stacked by ``nnx.vmap`` ``(L, in, out)``: ``MuonDimensionNumbers(1, 2)``.
  * Conv kernels ``(..spatial.., in, out)``: ``conv='flatten'`` reads spatial
    and input axes as fan_in (``(kh, kw, in, out) -> (0, 1, 2), 3``);
    ``'per_tap'`` orthogonalises each spatial tap alone; ``'adam'`` gives
    ``None``.
  * Embeddings, heads (paths containing a string of ``exclude``), biases,
    norm scales and every non-``kernel`` leaf: ``None``.

  Given only a state (no module types), a 3-D kernel is read as stacked
  ``(L, in, out)`` and a kernel of rank >= 4 as a 2-D conv.

  Args:
    model_or_state: an ``nnx.Module`` or a state / params tree.
    exclude: case-insensitive substrings of path components.
    conv: ``'flatten'``, ``'per_tap'`` or ``'adam'``.

  Returns:
    A tree with the structure of ``nnx.as_pure(nnx.state(model, nnx.Param))``.
  """
  if conv not in ("flatten", "per_tap", "adam"):
    raise ValueError(f"conv={conv!r} is not allowed; allowed: "
                     "('flatten', 'per_tap', 'adam').")
  from flax import nnx  # pylint: disable=g-import-not-at-top
  kinds = {}
  if isinstance(model_or_state, nnx.Module):
    kinds = _nnx_module_kinds(model_or_state)
    state = nnx.as_pure(nnx.state(model_or_state, nnx.Param))
  else:
    state = nnx.as_pure(model_or_state)

  def spec(path, x):
    names = _path_names(path)
    nd = len(np.shape(x))
    if names[-1] != "kernel" or nd < 2 or _excluded(path, exclude):
      return None
    kind, kernel_size = kinds.get(tuple(names[:-1]), (None, None))
    if kind is not None and "Conv" in kind:
      spatial = len(kernel_size) if kernel_size is not None else nd - 2
    elif kind is None and nd >= 4:
      spatial = 2
    else:
      spatial = 0
    lead = nd - 2 - spatial  # nnx.vmap stacking axes come first.
    if spatial == 0:
      return MuonDimensionNumbers(nd - 2, nd - 1)
    if conv == "adam":
      return None
    taps = tuple(range(lead, lead + spatial))
    if conv == "per_tap":
      return MuonDimensionNumbers(nd - 2, nd - 1)
    return MuonDimensionNumbers(taps + (nd - 2,), nd - 1)

  return jax.tree_util.tree_map_with_path(spec, state)


def describe(params, dimension_numbers=None) -> str:
  """A table of every leaf: path, shape, optimizer, batch × fan_in × fan_out.

  ``dimension_numbers`` takes the forms ``muon`` accepts (``None``: 2-D
  leaves are matrices). Raises ``ValueError`` naming the path of a spec that
  does not fit.
  """
  dims = _resolve(params, dimension_numbers)
  check_dimension_numbers(params, dims)
  rows = [("path", "shape", "optimizer", "batch", "fan_in", "fan_out")]
  for path, x, spec in _broadcast(params, dims):
    shape = tuple(np.shape(x))
    if spec is None:
      rows.append((path_name(path), str(shape), "adam", "", "", ""))
    else:
      b, fi, fo = matrix_shape(shape, spec)
      rows.append((path_name(path), str(shape), "muon", str(b),
                   str(fi), str(fo)))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
  lines = [fmt(rows[0]), fmt(tuple("-" * w for w in widths))]
  lines += [fmt(r) for r in rows[1:]]
  return "\n".join(lines)
