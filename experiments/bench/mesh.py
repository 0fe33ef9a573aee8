"""``spectral-jax bench --mesh fsdp=8``: Muon on a device mesh, from compiled
programs.

For ``spectral_jax.muon(mesh=..., partition_specs=...)`` (explicit
collectives), ``spectral_jax.muon(mesh=...)`` (XLA's partitioner moves the
matrices) and ``optax.contrib.muon`` side by side,
on the GPT-2-small-shaped tree (12 layers of 768×2304, 768×768, 768×3072,
3072×768), per-layer and stacked leaves, every matrix FSDP-sharded (and, with
a ``model`` axis, split along its other axis too), one jitted ``update``:

* per-device FLOPs (compiled ``cost_analysis``; the SPMD module is one
  device's program) and their ratio to the ideal, single-device FLOPs / N;
* the collectives of the compiled HLO: count and bytes of their results per
  device, and whether any sits inside a ``while`` body (the Newton–Schulz
  loop, when the step count is traced);
* compiled ``memory_analysis().temp_size_in_bytes`` per device;
* the max relative Frobenius difference of the updates to the single-device
  update of the same implementation (run, not estimated).

Also, on one device, temp memory of one update for both libraries (float32
and bfloat16 leaves) and the FLOP ratio on the 6-layer width-256 tree (the
speed proxy; wall times on a shared CPU are noise).

Devices: the host CPU split into N simulated devices
(``--xla_force_host_platform_device_count``), set before JAX starts.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import numpy as np

MESHES = ("fsdp=8", "data=2,fsdp=4", "fsdp=4,model=2")
_AXES = ("data", "fsdp", "model")
_COLLECTIVES = ("all-to-all", "all-gather", "all-reduce", "reduce-scatter",
                "collective-permute")
_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "f64": 8, "s32": 4, "u32": 4,
          "pred": 1, "s8": 1, "u8": 1, "s64": 8, "u64": 8}


def force_host_devices(n: int) -> None:
  """Ask XLA for ``n`` CPU devices; call before JAX's first computation."""
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in flags:
    os.environ["XLA_FLAGS"] = (
        f"{flags} --xla_force_host_platform_device_count={n}").strip()


def parse_mesh(spec: str) -> dict[str, int]:
  """``"data=2,fsdp=4"`` → ``{"data": 2, "fsdp": 4}`` (axes data/fsdp/model,
  only those named), by the training command's parser."""
  from spectral_jax.training import sharding  # pylint: disable=g-import-not-at-top
  return sharding.parse_mesh(spec, _AXES, fill=False)


def make_mesh(spec: str):
  import jax  # pylint: disable=g-import-not-at-top
  sizes = parse_mesh(spec)
  devices = jax.devices("cpu")
  need = math.prod(sizes.values())
  if need > len(devices):
    raise ValueError(f"--mesh {spec!r} needs {need} devices, {len(devices)} "
                     "CPU devices exist (set XLA_FLAGS before JAX starts).")
  grid = np.array(devices[:need]).reshape(tuple(sizes.values()))
  return jax.sharding.Mesh(grid, tuple(sizes))


def matrix_spec(shape, mesh, stacked: bool):
  """FSDP over ``fsdp`` (and ``data`` replicated); ``model`` splits the other
  matrix axis (tensor parallelism)."""
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from spectral_jax.training import sharding  # pylint: disable=g-import-not-at-top
  spec = list(sharding.param_partition_spec(
      shape, mesh.shape.get("fsdp", 1), stacked))
  spec += [None] * (len(shape) - len(spec))
  model = mesh.shape.get("model", 1)
  if model > 1 and len(shape) >= 2:
    free = [i for i in (len(shape) - 1, len(shape) - 2)
            if spec[i] is None and shape[i] % model == 0]
    if free:
      spec[free[0]] = "model"
  return P(*spec)


def _shape_bytes(text: str) -> int:
  total = 0
  for dtype, dims in re.findall(r"\b([a-z]+\d*)\[([\d,]*)\]", text):
    if dtype in _BYTES:
      total += _BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
  return total


def hlo_collectives(hlo: str) -> dict[str, Any]:
  """Count, result bytes and loop membership of the collectives in ``hlo``."""
  comps, name, bodies = {}, None, set()
  for line in hlo.splitlines():
    head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
    if head and not line.startswith(" "):
      name = head.group(1)
      comps[name] = []
    elif name is not None:
      comps[name].append(line)
    bodies.update(re.findall(r"body=%?([\w.\-]+)", line))
  count, nbytes, in_loop = 0, 0, []
  for comp, lines in comps.items():
    for line in lines:
      m = re.match(r"\s*(?:ROOT )?%?[\w.\-]+ = (.*?) ([a-z\-]+)\(", line)
      if not m or not any(m.group(2).startswith(c) for c in _COLLECTIVES):
        continue
      if m.group(2).endswith("-done"):
        continue
      count += 1
      nbytes += _shape_bytes(m.group(1))
      if comp in bodies:
        in_loop.append(m.group(2))
  return {"count": count, "bytes": nbytes, "in_loop": in_loop}


def _tree(stacked: bool, dtype, layers: int = 12, width: int = 768):
  """The GPT-2-small-shaped tree scaled to ``width`` (768: GPT-2 small; 256:
  bench's 6-layer tree), matrices in ``dtype``; params and gradients."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from experiments import bench  # pylint: disable=g-import-not-at-top
  shapes = tuple((a * width // 768, b * width // 768)
                 for a, b in bench.GPT2_SMALL_SHAPES)
  rng = np.random.default_rng(0)
  params = bench.transformer_tree(shapes, layers, stacked, rng, jnp.float32)
  grads = bench.transformer_tree(shapes, layers, stacked, rng, jnp.float32)
  cast = lambda t: jax.tree.map(
      lambda v: v.astype(dtype) if v.ndim >= 2 else v, t)
  return cast(params), cast(grads)


# On a mesh: "ours" is given the params' PartitionSpecs (explicit
# collectives, spectral_jax.shard_plan); "ours_xla" only the mesh (XLA's
# partitioner moves the matrices). On one device they are the same program.
IMPLS = ("ours", "ours_xla", "optax")


def _optimizers(mesh, stacked, specs=None):
  import optax  # pylint: disable=g-import-not-at-top
  import spectral_jax  # pylint: disable=g-import-not-at-top
  # The per-layer norm gains, stacked to (layers, width), go to Adam as their
  # 1-D per-layer leaves do (stacked_dimension_numbers alone would read them
  # as layers×width matrices).
  dims = (lambda p: spectral_jax.stacked_dimension_numbers(
      p, exclude=("norm",))) if stacked else None
  ours = lambda **kw: spectral_jax.muon(
      0.02, muon_weight_dimension_numbers=dims, mesh=mesh, **kw)
  out = {"ours": ours(partition_specs=specs), "ours_xla": ours(),
         "optax": optax.contrib.muon(0.02, muon_weight_dimension_numbers=dims)}
  if mesh is None:
    del out["ours_xla"]
  return out


def _compile(tx, params, grads, shardings=None):
  """The jitted ``update -> updates`` (the new state is dropped, alike for
  both libraries), compiled, and its inputs placed."""
  import jax  # pylint: disable=g-import-not-at-top
  if shardings is not None:
    params = jax.device_put(params, shardings)
    grads = jax.device_put(grads, shardings)
  state = jax.jit(tx.init)(params)

  def update(g, s, p):
    u = tx.update(g, s, p)[0]
    if shardings is not None:
      u = jax.lax.with_sharding_constraint(u, shardings)
    return u

  fn = jax.jit(update)
  return fn, fn.lower(grads, state, params).compile(), (grads, state, params)


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0))


def _max_rel_diff(a, b) -> float:
  import jax  # pylint: disable=g-import-not-at-top
  diffs = jax.tree.leaves(jax.tree.map(
      lambda x, y: float(np.linalg.norm(np.asarray(x, np.float64) - np.asarray(
          y, np.float64)) / max(np.linalg.norm(np.asarray(y, np.float64)),
                                1e-30)), a, b))
  return max(diffs)


_SINGLE: dict = {}  # (stacked, impl, layers, width, run) -> (flops, update)


def mesh_rows(spec: str, layers: int = 12, width: int = 768,
              run: bool = True, log=print) -> list[dict[str, Any]]:
  """Ours vs optax on ``spec``'s mesh, per-layer and stacked, float32."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding  # pylint: disable=g-import-not-at-top
  mesh = make_mesh(spec)
  rows = []
  for stacked in (False, True):
    params, grads = _tree(stacked, jnp.float32, layers, width)
    specs = jax.tree.map(lambda x: matrix_spec(
        x.shape, mesh, stacked and x.ndim >= 3), params)
    shard = jax.tree.map(lambda p: NamedSharding(mesh, p), specs)
    # The parameter shard one device holds (replicated over data).
    shard_bytes = sum(
        math.prod(sh.shard_shape(x.shape)) * x.dtype.itemsize
        for x, sh in zip(jax.tree.leaves(params), jax.tree.leaves(shard)))
    for name in IMPLS:
      log(f"mesh {spec} {'stacked' if stacked else 'per_layer'} {name} ...")
      single = "ours" if name == "ours_xla" else name
      key = (stacked, single, layers, width, run)
      if key not in _SINGLE:  # One device: shared by every mesh.
        _, c1, args1 = _compile(_optimizers(None, stacked)[single], params,
                                grads)
        ref = c1(*args1) if run else None
        _SINGLE[key] = (_flops(c1), ref)
      flops1, ref = _SINGLE[key]
      txn = _optimizers(mesh, stacked, specs)[name]
      fn, cn, argsn = _compile(txn, params, grads, shard)
      coll = hlo_collectives(cn.as_text())
      row = {"mesh": spec, "layout": "stacked" if stacked else "per_layer",
             "impl": name, "flops_single": flops1,
             "flops_device": _flops(cn), "collectives": coll["count"],
             "collective_bytes": coll["bytes"], "shard_bytes": shard_bytes,
             "in_loop": coll["in_loop"],
             "temp_bytes": cn.memory_analysis().temp_size_in_bytes}
      row["flops_ratio"] = row["flops_device"] * mesh.size / row[
          "flops_single"]
      row["bytes_ratio"] = row["collective_bytes"] / shard_bytes
      row["max_rel_diff"] = _max_rel_diff(fn(*argsn), ref) if run else (
          float("nan"))
      rows.append(row)
  return rows


def memory_rows(layers: int = 12, width: int = 768, log=print
                ) -> list[dict[str, Any]]:
  """One device: temp memory and FLOPs of one update, ours vs optax."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  rows = []
  for dtype in (jnp.float32, jnp.bfloat16):
    for stacked in (False, True):
      params, grads = _tree(stacked, dtype, layers, width)
      row = {"tree": f"{layers}x{width}", "dtype": jnp.dtype(dtype).name,
             "layout": "stacked" if stacked else "per_layer"}
      for name, tx in _optimizers(None, stacked).items():
        log(f"memory {row['tree']} {row['dtype']} {row['layout']} {name} ...")
        _, c, _ = _compile(tx, params, grads)
        row[f"{name}_temp"] = c.memory_analysis().temp_size_in_bytes
        row[f"{name}_flops"] = _flops(c)
      row["temp_ratio"] = row["ours_temp"] / max(row["optax_temp"], 1)
      row["flops_ratio"] = row["ours_flops"] / max(row["optax_flops"], 1)
      rows.append(row)
  return rows


def render_markdown(mesh: list[dict], memory: list[dict], machine: str
                    ) -> str:
  out = ["## Muon on a mesh (compiled programs)", "", machine, "",
         "| mesh | layout | impl | GFLOP/device | × ideal | collectives | "
         "MB collective / device | × shard | in NS loop | temp MB | "
         "max rel. diff |", "|---" * 11 + "|"]
  for r in mesh:
    out.append(
        f"| {r['mesh']} | {r['layout']} | {r['impl']} | "
        f"{r['flops_device'] / 1e9:.1f} | {r['flops_ratio']:.3f} | "
        f"{r['collectives']} | {r['collective_bytes'] / 1e6:.1f} | "
        f"{r['bytes_ratio']:.2f} | {'yes' if r['in_loop'] else 'no'} | "
        f"{r['temp_bytes'] / 1e6:.1f} | {r['max_rel_diff']:.1e} |")
  out += ["", "One device, one update: temp memory and FLOPs.", "",
          "| tree | dtype | layout | ours temp MB | optax temp MB | ratio | "
          "FLOP ratio |", "|---" * 7 + "|"]
  for r in memory:
    out.append(f"| {r['tree']} | {r['dtype']} | {r['layout']} | "
               f"{r['ours_temp'] / 1e6:.1f} | {r['optax_temp'] / 1e6:.1f} | "
               f"{r['temp_ratio']:.2f} | {r['flops_ratio']:.2f} |")
  return "\n".join(out) + "\n"


def _machine() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  import platform  # pylint: disable=g-import-not-at-top
  return (f"Machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU cores, {len(jax.devices('cpu'))} simulated "
          f"CPU devices (XLA_FLAGS), jax {jax.__version__}.")


def main_mesh(specs: list[str], out_dir: str, layers: int = 12,
              width: int = 768, run: bool = True) -> int:
  """What ``spectral-jax bench --mesh SPEC`` runs: print and write
  ``bench_mesh.md`` / ``bench_mesh.json`` in ``out_dir``."""
  import json  # pylint: disable=g-import-not-at-top
  for spec in specs:
    parse_mesh(spec)  # Bad input fails before any work.
  force_host_devices(max(math.prod(parse_mesh(s).values()) for s in specs))
  from spectral_jax import files  # pylint: disable=g-import-not-at-top
  mesh = [r for s in specs for r in mesh_rows(s, layers, width, run)]
  memory = memory_rows(layers, width) + memory_rows(6, 256)
  text = render_markdown(mesh, memory, _machine())
  print(text)
  files.atomic_write_text(os.path.join(out_dir, "bench_mesh.md"), text)
  files.atomic_write_text(os.path.join(out_dir, "bench_mesh.json"),
                          json.dumps({"mesh": mesh, "memory": memory},
                                     indent=1, default=str))
  return 0
