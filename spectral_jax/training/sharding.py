"""Device meshes and shardings for the GPT training loop.

``--mesh data=N,fsdp=M`` builds a ``jax.sharding.Mesh`` of N·M devices with
axes ``("data", "fsdp")``:

  * the batch is split over both axes (FSDP is data parallelism whose
    parameters are also split: every device sees different tokens);
  * each parameter is split over ``fsdp`` along one axis. A stacked block
    parameter of shape (n_layer, fan_in, fan_out) is split along the layer
    axis when ``n_layer`` is divisible by M: each device then holds whole
    matrices, and the batched Newton–Schulz / polar of Muon and SpecGD runs
    on its own layers with no all-gather. Other matrices are split along
    their largest divisible axis; small or indivisible leaves are replicated.

XLA inserts the collectives the forward and backward passes need (all-gather
of a parameter before its matmul, reduce-scatter of its gradient).

Multi-host: call ``jax.distributed.initialize()`` (with coordinator address,
process count and id, or from the cluster environment) in every process
before anything else touches JAX; ``jax.devices()`` then lists all hosts'
devices, and the same ``--mesh`` spec spans them. Each process must feed the
same global batch (batches here are a pure function of (seed, step), so they
do) and only process 0 should write metrics and figures.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "MESH_AXES",
    "batch_sharding",
    "make_mesh",
    "on_mesh",
    "param_partition_spec",
    "param_shardings",
    "parse_mesh",
]

MESH_AXES = ("data", "fsdp")


def parse_mesh(spec: str | None, axes=MESH_AXES, *,
               fill: bool = True) -> dict[str, int]:
  """``"data=2,fsdp=4"`` → ``{"data": 2, "fsdp": 4}``.

  Args:
    spec: comma-separated ``AXIS=SIZE``.
    axes: the allowed axis names.
    fill: also list the axes ``spec`` leaves out (size 1), in ``axes``
      order; ``False``: only the named ones, in ``spec`` order.
  """
  sizes = {a: 1 for a in axes} if fill else {}
  if not spec:
    return sizes
  for part in spec.split(","):
    name, sep, value = part.partition("=")
    name = name.strip()
    if not sep or name not in axes:
      raise ValueError(f"--mesh {spec!r}: expected comma-separated "
                       f"AXIS=SIZE with AXIS in {tuple(axes)}, got {part!r}.")
    try:
      size = int(value)
    except ValueError:
      size = 0
    if size < 1:
      raise ValueError(f"--mesh {spec!r}: size of {name} must be a positive "
                       f"int, got {value!r}.")
    sizes[name] = size
  return sizes


def make_mesh(spec: str | None, devices=None) -> Mesh:
  """A ``("data", "fsdp")`` mesh using exactly the requested devices.

  Args:
    spec: ``"data=N,fsdp=M"``; ``None`` or ``""`` = one device.
    devices: devices to use (default ``jax.devices()``); the first N·M.
  """
  sizes = parse_mesh(spec)
  devices = list(jax.devices() if devices is None else devices)
  need = math.prod(sizes.values())
  if need > len(devices):
    raise ValueError(f"--mesh {spec!r} needs {need} devices, only "
                     f"{len(devices)} available.")
  grid = np.array(devices[:need]).reshape([sizes[a] for a in MESH_AXES])
  return Mesh(grid, MESH_AXES)


def param_partition_spec(shape, fsdp: int, stacked: bool = False) -> P:
  """Where one parameter is split over the ``fsdp`` axis.

  Args:
    shape: the parameter's shape.
    fsdp: size of the fsdp axis.
    stacked: the leading axis is the layer axis of a stacked block.
  """
  ndim = len(shape)
  if fsdp == 1 or ndim == 0:
    return P()
  if stacked and ndim >= 3 and shape[0] % fsdp == 0:
    return P("fsdp", *([None] * (ndim - 1)))
  # Otherwise the largest divisible axis, so every shard stays big.
  order = sorted(range(ndim), key=lambda i: -shape[i])
  for i in order:
    if shape[i] % fsdp == 0 and shape[i] >= fsdp:
      spec = [None] * ndim
      spec[i] = "fsdp"
      return P(*spec)
  return P()


def param_shardings(params, mesh: Mesh, stacked=lambda path, x: x.ndim >= 3):
  """A ``NamedSharding`` for every leaf of ``params``.

  Args:
    params: pytree of arrays (or shape-dtype structs).
    mesh: from :func:`make_mesh`.
    stacked: ``(path, leaf) -> bool``, whether the leaf's first axis is a
      layer axis (default: every leaf with three or more axes).
  """
  fsdp = mesh.shape["fsdp"]
  return jax.tree_util.tree_map_with_path(
      lambda path, x: NamedSharding(
          mesh, param_partition_spec(x.shape, fsdp, stacked(path, x))),
      params)


def batch_sharding(mesh: Mesh, batch_size: int) -> NamedSharding:
  """Batch axis split over ``data`` and ``fsdp`` together."""
  n = mesh.shape["data"] * mesh.shape["fsdp"]
  if batch_size % n:
    raise ValueError(f"batch_size={batch_size} must be divisible by the "
                     f"{n} devices of the mesh (data × fsdp).")
  return NamedSharding(mesh, P(MESH_AXES, None))


def on_mesh(tree, mesh: Mesh):
  """Each leaf's sharding if it lies on ``mesh``, else replicated on it."""
  replicated = NamedSharding(mesh, P())
  return jax.tree.map(
      lambda a: a.sharding if (isinstance(a.sharding, NamedSharding)
                               and a.sharding.mesh == mesh) else replicated,
      tree)
