"""Which leaves are matrices, and how to read them.

A spec tree mirrors the params tree (or a prefix of it) with a
``MuonDimensionNumbers`` for every matrix leaf and ``None`` for the rest (these
go to AdamW in :func:`spectral_jax.muon`). This module builds such trees for
stacked layers and Flax NNX models, checks them against params, prints them
as a table, names leaves (one separator, ``"/"``) and partitions an optimizer
by them. Reading one leaf as ``(batch, fan_in, fan_out)`` lives in
:mod:`spectral_jax.matrices` (re-exported here); grouping equal shapes under a
memory budget and placing the groups on a device mesh in
:mod:`spectral_jax.placement`.
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
import optax

from spectral_jax import checks
from spectral_jax.matrices import MuonDimensionNumbers
from spectral_jax.matrices import compute_muon_reshape
from spectral_jax.matrices import leaf_dimension_numbers
from spectral_jax.matrices import matrix_shape
from spectral_jax.matrices import normalize_dimension_numbers
from spectral_jax.matrices import resolve_dimension_numbers

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
    "matrix_shape",
    "normalize_dimension_numbers",
    "resolve_dimension_numbers",
    "nnx_dimension_numbers",
    "stacked_dimension_numbers",
    "layout_dimension_numbers",
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


WEIGHT_LAYOUTS = ("flax", "torch")


def layout_dimension_numbers(weight_layout: str, dimension_numbers=None):
  """The dimension numbers a ``weight_layout`` implies for 2-D leaves.

  ``'flax'``: ``dimension_numbers`` as given (``None``: fan_in × fan_out).
  ``'torch'``: ``torch.nn.Linear``'s out × in (the reduction axis last) for
  every 2-D leaf, other leaves not matrices; it cannot be combined with
  explicit ``dimension_numbers``.
  """
  checks.check_choice("weight_layout", weight_layout, WEIGHT_LAYOUTS)
  if weight_layout == "flax":
    return dimension_numbers
  if dimension_numbers is not None:
    raise ValueError(
        "weight_layout='torch' sets the dimension numbers of 2-D leaves; "
        "pass it or muon_weight_dimension_numbers, not both.")
  return lambda params: jax.tree.map(
      lambda x: MuonDimensionNumbers(1, 0) if x.ndim == 2 else None, params)


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
