"""Whole matrices to devices with explicit collectives, when the gradients'
shardings are known.

The plan :func:`spectral_jax.placement.map_matrices` follows when every
leaf's ``PartitionSpec`` is known — given as ``partition_specs``, or read off
the leaves' types on a mesh with ``Explicit`` axes (``jax.make_mesh``'s
default). One ``jax.shard_map`` over the whole tree; inside, per group of
equal wide matrix shapes, and per class of its leaves split over the same
*holder* axes (those that split a matrix) and copied over the same
*replica* axes (the rest, minus a stack axis' own):

1. every device reads its local blocks as matrix pieces, pads each leaf
   kind's stack to a multiple of the replicas and keeps its share of the
   copies: a local slice, no communication;
2. one ``all_to_all`` over the holder axes hands each device whole matrices
   (every piece has ``m·n/A`` elements whatever the split, so a
   column-split 768×3072 and a row-split 3072×768 read wide travel
   together; each slot is assembled by its own split, a static table
   indexed by the device's position);
3. ``fn`` runs on the device's whole matrices, in calls under the memory
   budget — no collective inside the iteration;
4. back: one ``all_to_all`` (pieces again), then an ``all_gather`` over the
   replica axes.

Bytes of collective results per device, as a multiple of the device's shard
of the group, times the padding: 2 where every parameter is split over
every device (in and out: FSDP, or FSDP with a tensor-parallel axis — one
all-to-all over both axes, not one per axis); 1 + 2/r when the parameters
are copied r ways (``data``); 1 for a stack already split over its layer
axis and copied over ``data`` (only the all-gather). XLA's partitioner, left
to move the same arrays, goes one mesh axis at a time: 3–15× on those
meshes (BENCHMARKS.md, "Muon on a mesh").

A leaf's spec is used as is when ``shard_map`` can take it: each of the
leaf's matrix groups (batch, fan_in, fan_out) sharded at most on its
leading (major) axis, each sharded dimension divisible by its devices.
Otherwise the offending axes are read replicated (XLA gathers them before
the map: correct, and costlier).

References:
  Liu et al., *Muon is scalable for LLM training*, arXiv:2502.16982, §3;
  microsoft/dion's all-to-all distributed Muon; Levanter's
  ``stack_batch_sharded``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from spectral_jax import budget
from spectral_jax.matrices import normalize_dimension_numbers

__all__ = ["check_partition_specs", "explicit", "leaf_batch_shape",
           "leaf_specs", "map_matrices_sharded"]

MatrixFn = Callable[[jax.Array], jax.Array]
_Axes = tuple[str, ...]


def _is_spec_leaf(x) -> bool:
  return x is None or isinstance(x, (P, NamedSharding))


def check_partition_specs(partition_specs, mesh) -> None:
  """Raise ``ValueError`` unless ``partition_specs`` is ``None`` or a tree of
  ``PartitionSpec`` / ``NamedSharding`` / ``None`` naming ``mesh``'s axes."""
  if partition_specs is None:
    return
  if mesh is None:
    raise ValueError("partition_specs= needs mesh=: the specs name the axes "
                     "of the mesh the gradients live on.")
  names = set(mesh.axis_names)
  for x in jax.tree.leaves(partition_specs, is_leaf=_is_spec_leaf):
    if x is None:
      continue
    if not isinstance(x, (P, NamedSharding)):
      raise ValueError(
          f"partition_specs has a leaf {x!r} ({type(x).__name__}); allowed: "
          "PartitionSpec, NamedSharding or None, in a tree like the params.")
    spec = x.spec if isinstance(x, NamedSharding) else x
    unknown = {a for e in spec for a in _axes(e)} - names
    if unknown:
      raise ValueError(f"partition_specs names mesh axes {sorted(unknown)} "
                       f"that the mesh {tuple(mesh.axis_names)} does not "
                       "have.")


def _axes(entry) -> _Axes:
  if entry is None or entry is P.UNCONSTRAINED:
    return ()
  return (entry,) if isinstance(entry, str) else tuple(entry)


def explicit(mesh) -> bool:
  types = getattr(mesh, "axis_types", ())
  return bool(types) and all(
      t == jax.sharding.AxisType.Explicit for t in types)


def leaf_specs(paths, leaves, mesh, partition_specs
               ) -> list[P | None] | None:
  """Each leaf's ``PartitionSpec``, or ``None`` when they are not known.

  From ``partition_specs`` (a tree like the params, looked up by path, so a
  masked sub-tree finds its leaves), else from the leaves' types when every
  axis of ``mesh`` is ``Explicit``.

  Raises:
    ValueError: naming the path, when ``partition_specs`` has no
      ``PartitionSpec`` / ``NamedSharding`` for a leaf.
  """
  if partition_specs is not None:
    given = {tuple(path): x for path, x in jax.tree_util.tree_flatten_with_path(
        partition_specs, is_leaf=_is_spec_leaf)[0]}
    out = []
    for path in paths:
      x = given.get(tuple(path))
      if x is None:
        raise ValueError(
            f"partition_specs has no PartitionSpec for the matrix leaf at "
            f"{jax.tree_util.keystr(tuple(path))}; give a tree like the "
            "params with a PartitionSpec or NamedSharding at every leaf "
            "(e.g. jax.tree.map(lambda p: p.sharding, params)).")
      out.append(x.spec if isinstance(x, NamedSharding) else x)
    return out
  if not explicit(mesh):
    return None
  return [jax.typeof(x).sharding.spec for x in leaves]


def leaf_batch_shape(x, dims, path="") -> tuple[int, ...]:
  """The shape of a leaf's batch axes (``()`` for a 2-D matrix)."""
  batch, _, _ = normalize_dimension_numbers(tuple(x.shape), dims, path)
  return tuple(x.shape[ax] for ax in batch)


class _Leaf:
  """How one leaf's local block reads as (batch, fan_in, fan_out) pieces."""

  def __init__(self, x, dims, spec: P, mesh, path):
    shape = tuple(x.shape)
    batch, red, out = normalize_dimension_numbers(shape, dims, path)
    entries = [_axes(e) for e in tuple(spec)[:len(shape)]]
    entries += [()] * (len(shape) - len(entries))
    size = lambda axes: _size(mesh, axes)
    # shard_map needs each sharded dimension divisible by its devices, and a
    # merged group (reshaped to one axis) is a contiguous block of it only
    # when its major axis alone is sharded.
    for group in (batch, red, out):
      for k, ax in enumerate(group):
        if k > 0 or shape[ax] % size(entries[ax]):
          entries[ax] = ()
    entry = lambda e: e[0] if len(e) == 1 else (e or None)
    self.spec = P(*[entry(e) for e in entries])
    self.lead_shape = tuple(shape[ax] for ax in batch)
    self.batch_spec = P(entry(entries[batch[0]]) if batch else None)
    self.perm = batch + red + out
    lead = lambda group: entries[group[0]] if group else ()
    self.sb, sm, sn = lead(batch), lead(red), lead(out)
    local = [shape[ax] // size(entries[ax]) for ax in range(len(shape))]
    self.local_permuted = tuple(local[ax] for ax in self.perm)
    prod = lambda group: math.prod(local[ax] for ax in group)
    m_l, n_l = prod(red), prod(out)
    self.flat = (prod(batch), m_l, n_l)
    fan_in = math.prod(shape[ax] for ax in red)
    fan_out = math.prod(shape[ax] for ax in out)
    self.tall = fan_in > fan_out
    self.wide = (min(fan_in, fan_out), max(fan_in, fan_out))
    self.sm, self.sn = (sn, sm) if self.tall else (sm, sn)
    used = set(self.sb) | set(sm) | set(sn)
    self.holders = tuple(a for a in mesh.axis_names if a in set(sm) | set(sn))
    self.replicas = tuple(a for a in mesh.axis_names if a not in used)
    self.dtype = x.dtype

  def to_pieces(self, block):
    y = jnp.transpose(block, self.perm).reshape(self.flat)
    return jnp.swapaxes(y, -1, -2) if self.tall else y

  def from_pieces(self, y):
    if self.tall:
      y = jnp.swapaxes(y, -1, -2)
    inv = sorted(range(len(self.perm)), key=self.perm.__getitem__)
    return jnp.transpose(y.reshape(self.local_permuted), inv)


class _Layout:
  """How the pieces of one sharding (``sm`` splits a matrix's rows, ``sn``
  its columns) tile a whole ``(m, n)`` matrix; the devices holding pieces
  are numbered row-major in ``holders``' order."""

  def __init__(self, sm: _Axes, sn: _Axes, holders: _Axes, mesh):
    self.sizes = tuple(mesh.shape[a] for a in holders)
    self.grid = tuple(mesh.shape[a] for a in sm + sn)
    self.am, self.an = _size(mesh, sm), _size(mesh, sn)
    # Where each of sm's, then sn's, axes sits among the holders.
    self.order = tuple(holders.index(a) for a in sm + sn)

  def assemble(self, x, m: int, n: int):
    """``(A, k, L)`` pieces, ``x[j]`` from holder ``j`` -> ``(k, m, n)``."""
    h, k = len(self.sizes), x.shape[1]
    m_l, n_l = m // self.am, n // self.an
    x = x.reshape(*self.sizes, k, m_l, n_l)
    x = x.transpose(h, *self.order, h + 1, h + 2)
    x = x.reshape(k, self.am, self.an, m_l, n_l).transpose(0, 1, 3, 2, 4)
    return x.reshape(k, m, n)

  def split(self, y):
    """The inverse of :meth:`assemble`: ``(k, m, n)`` -> ``(A, k, L)``."""
    k, m, n = y.shape
    h = len(self.sizes)
    m_l, n_l = m // self.am, n // self.an
    y = y.reshape(k, self.am, m_l, self.an, n_l).transpose(0, 1, 3, 2, 4)
    y = y.reshape(k, *self.grid, m_l, n_l)
    y = y.transpose(*(1 + self.order.index(j) for j in range(h)), 0,
                    h + 1, h + 2)
    return y.reshape(math.prod(self.sizes), k, m_l * n_l)


def _all_to_all(x, axes: _Axes):
  """Block ``j`` of ``x``'s leading axis to device ``j`` of ``axes``."""
  # The barrier keeps XLA from fusing the transposes feeding it into the
  # all-to-all's operands, which XLA's CPU backend (jax 0.10.2) then
  # rejects ("all-to-all has operands with different shapes").
  return jax.lax.all_to_all(jax.lax.optimization_barrier(x), axes, 0, 0,
                            tiled=True)


def _apply_in_calls(fn: MatrixFn, x, batch_bytes: int):
  """``fn`` over the local stack ``x`` in evenly sized calls under the
  memory budget (:func:`spectral_jax.budget.group_calls`)."""
  count = x.shape[0]
  sizes = budget.group_calls(count, budget.counted_bytes(x.shape, x.dtype),
                             1, batch_bytes)
  if len(sizes) <= 1:
    return fn(x)
  size = sizes[0]
  return jnp.concatenate([fn(x[i:i + size]) for i in range(0, count, size)])


def _size(mesh, axes: _Axes) -> int:
  return math.prod(mesh.shape[a] for a in axes)


def _run_class(fn, members, blocks, mesh, batch_bytes, wide, scalar):
  """``fn`` over the group's leaves whose pieces are spread over the same
  holder axes and copied over the same replica axes.

  Leaves with different splits (a column-split 768×3072 and a row-split
  3072×768 read wide) share one all-to-all: every piece has ``m·n/A``
  elements, so the pieces travel flat, each device assembling each slot by
  its sharding (a static table indexed by the device's position)."""
  m, n = wide
  reps, holders = members[0].replicas, members[0].holders
  q, a = _size(mesh, reps), _size(mesh, holders)
  kinds: dict = {}
  for j, leaf in enumerate(members):
    kinds.setdefault((leaf.sm, leaf.sn), []).append(j)
  layouts = [_Layout(sm, sn, holders, mesh) for sm, sn in kinds]
  flat, shapes, types = [], [], []
  for t, idx in enumerate(kinds.values()):
    x = jnp.concatenate([members[j].to_pieces(blocks[j]) for j in idx])
    count = x.shape[0]
    padded = math.ceil(count / q) * q
    x = jnp.pad(x, [(0, padded - count), (0, 0), (0, 0)])
    if q > 1:  # Keep this device's share of the copies: a local slice.
      x = jax.lax.dynamic_slice_in_dim(
          x, jax.lax.axis_index(reps) * (padded // q), padded // q, 0)
    flat.append(x.reshape(x.shape[0], -1))
    shapes.append(x.shape)
    types += [t] * x.shape[0]
  x = jnp.concatenate(flat) if len(flat) > 1 else flat[0]
  per = math.ceil(x.shape[0] / a)  # matrices per holder
  x = jnp.pad(x, [(0, per * a - x.shape[0]), (0, 0)])
  types = np.pad(np.array(types), (0, per * a - len(types))).reshape(a, per)
  x = x.reshape(a, per, -1)
  if a > 1:
    x = _all_to_all(x, holders)
    mine = jnp.asarray(types)[jax.lax.axis_index(holders)]
  whole = [lay.assemble(x, m, n) for lay in layouts]
  z = whole[0]
  for t in range(1, len(whole)):  # Each slot assembled by its own sharding.
    z = jnp.where((mine == t)[:, None, None], whole[t], z)
  y = _apply_in_calls(fn, z, batch_bytes)
  if scalar:  # One number per matrix, back to every holder of a piece.
    y = jnp.broadcast_to(y[None, :, None], (a, per, 1))
  else:
    parts = [lay.split(y) for lay in layouts]
    y = parts[0]
    for t in range(1, len(parts)):
      y = jnp.where((mine == t)[None, :, None], parts[t], y)
  if a > 1:
    y = _all_to_all(y, holders)
  y = y.reshape(per * a, -1)
  out, off = {}, 0
  for shape, idx in zip(shapes, kinds.values()):
    piece = y[off:off + shape[0]].reshape(shape[:1] if scalar else shape)
    off += shape[0]
    if q > 1:
      piece = jax.lax.all_gather(piece, reps, axis=0, tiled=True)
    start = 0
    for j in idx:
      b = members[j].flat[0]
      part = piece[start:start + b]
      out[j] = part if scalar else members[j].from_pieces(part)
      start += b
  return [out[j] for j in range(len(members))]


def _run_group(fn, members, blocks, mesh, batch_bytes, scalar):
  """``fn`` over one group of equal wide shape (its ``_Leaf`` members)."""
  classes: dict = {}
  for j, leaf in enumerate(members):
    classes.setdefault((leaf.holders, leaf.replicas), []).append(j)
  out = [None] * len(members)
  for idx in classes.values():
    res = _run_class(fn, [members[j] for j in idx], [blocks[j] for j in idx],
                     mesh, batch_bytes, members[0].wide, scalar)
    for j, r in zip(idx, res):
      out[j] = r
  return out


def map_matrices_sharded(fn: MatrixFn, leaves: Sequence[jax.Array], dims,
                         paths, specs: Sequence[P], mesh, *, group: bool,
                         batch_bytes: int, scalar: bool = False
                         ) -> list[jax.Array]:
  """``fn`` on every leaf's matrices, moved by the plan of the module
  docstring; results in the leaves' shapes and (read) shardings.

  ``scalar=True``: ``fn: (B, m, n) -> (B,)``, one number per matrix (e.g. a
  nuclear rank), returned per leaf in the shape of its batch axes and split
  like them."""
  todo = [i for i, x in enumerate(leaves) if x.size]
  plans = {i: _Leaf(leaves[i], dims[i], specs[i], mesh, paths[i])
           for i in todo}
  groups: dict = {}
  for i in todo:
    key = (plans[i].wide, plans[i].dtype) if group else i
    groups.setdefault(key, []).append(i)
  in_specs = tuple(plans[i].spec for i in todo)

  def body(*blocks):
    local = dict(zip(todo, blocks))
    out = {}
    for idx in groups.values():
      res = _run_group(fn, [plans[i] for i in idx], [local[i] for i in idx],
                       mesh, batch_bytes, scalar)
      out.update(zip(idx, res))
    return tuple(out[i] for i in todo)

  args = [leaves[i] for i in todo]
  if explicit(mesh):  # Explicit types must match the map's specs.
    args = [x if jax.typeof(x).sharding.spec == s else
            jax.sharding.reshard(x, s) for x, s in zip(args, in_specs)]
  out_specs = tuple(plans[i].batch_spec for i in todo) if scalar else in_specs
  results = [jnp.zeros(leaf_batch_shape(x, d, p), jnp.float32) for x, d, p in zip(
      leaves, dims, paths)] if scalar else list(leaves)
  if todo:
    mapped = jax.shard_map(body, mesh=mesh, in_specs=in_specs,
                           out_specs=out_specs, check_vma=False)(*args)
    for i, y in zip(todo, mapped):
      results[i] = y.reshape(plans[i].lead_shape) if scalar else y
  return results
