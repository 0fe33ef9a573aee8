"""Tests for spectral_jax.placement: grouping under a memory budget, and the
orthogonalisation spread over a device mesh.

The mesh checks run in a subprocess with 8 simulated CPU devices
(``--xla_force_host_platform_device_count=8`` must be set before JAX starts).
"""

import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import spectral_jax
from spectral_jax import MuonDimensionNumbers as DN
from spectral_jax import placement

# Same per-matrix arithmetic as the reference, only the batch of the kernels
# (and so float32 rounding) differs; Newton–Schulz amplifies a perturbation
# by at most a = 3.4445 per step (Jordan's p'(0)): a**5 · eps32 ≈ 5.8e-5
# (tests/test_transforms.py::test_grouped_equals_per_leaf derives the same).
_TOL_NS = 3.4445 ** 5 * float(jnp.finfo(jnp.float32).eps)


def _np_polar(g):
  u, _, vh = np.linalg.svd(np.asarray(g, np.float64), full_matrices=False)
  return u @ vh


@settings(max_examples=60, deadline=None)
@given(total=st.integers(0, 100), slice_bytes=st.integers(1, 10**6),
       devices=st.integers(1, 16), budget=st.integers(1, 10**7))
def test_group_calls(total, slice_bytes, devices, budget):
  sizes = placement.group_calls(total, slice_bytes, devices, budget)
  cap = max(1, budget // slice_bytes)  # slices per device and call
  per_device = math.ceil(total / devices)
  assert sum(sizes) >= total
  assert all(s % devices == 0 and s // devices <= cap for s in sizes)
  assert len(sizes) == (math.ceil(per_device / cap) if total else 0)
  assert len(set(sizes)) <= 1  # evenly sized calls
  # Padding never exceeds one slice per device and call.
  assert sum(sizes) - total < devices * max(len(sizes), 1)


@pytest.mark.parametrize("budget", [None, 1, 3 * (8 * 12 + 8 * 8) * 4])
def test_budget_and_transpose_equal_numpy_polar(budget):
  # Tall and wide leaves of one shape share a group; a budget of 1 byte runs
  # one matrix per call, 1920 bytes three (an 8×12 slice counts its input
  # and an 8×8 Gram matrix). Exact polar (SVD) in float32 vs float64 NumPy:
  # well-conditioned Gaussians, 1e-5 relative.
  rng = np.random.default_rng(0)
  g = {"a": rng.standard_normal((8, 12)), "b": rng.standard_normal((12, 8)),
       "s": rng.standard_normal((3, 8, 12))}
  g = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g)
  dims = {"a": DN(), "b": DN(), "s": DN(1, 2)}
  tx = spectral_jax.scale_by_polar("svd", weight_dimension_numbers=dims,
                                   batch_bytes=budget)
  out = jax.jit(tx.update)(g, None)[0]
  for k in ("a", "b"):
    np.testing.assert_allclose(out[k], _np_polar(g[k]), atol=1e-5)
  for i in range(3):
    np.testing.assert_allclose(out["s"][i], _np_polar(g["s"][i]), atol=1e-5)


def test_counted_bytes_adds_the_gram_matrix():
  # A slice counts its input and one m×m Gram matrix (a square slice twice
  # its input) at its working width: the itemsize from 32 bits up; 16-bit
  # slices on CPU at 10 bytes (a 2-byte buffer and two float32 copies).
  assert placement.counted_bytes((768, 768), jnp.float32) == 2 * 768**2 * 4
  wide = 256 * 1024 + 256**2
  assert placement.counted_bytes((5, 256, 1024), jnp.bfloat16) == wide * (
      10 if jax.default_backend() == "cpu" else 4)
  assert placement.counted_bytes((1024, 256), jnp.float64) == wide * 8
  # The default budget (4 MiB): float32 768×768 slices (4.7 MB counted) one
  # to a call, the 6-layer width-256 tree's twelve 256×1024 (1.3 MB) three.
  assert placement.group_calls(
      12, placement.counted_bytes((768, 768), jnp.float32)) == [1] * 12
  assert placement.group_calls(
      12, placement.counted_bytes((256, 1024), jnp.float32)) == [3] * 4


def test_budget_splits_calls_in_the_program():
  # The budget is a memory bound: one matrix per call needs less temp
  # memory than all six in one batched call.
  g = {f"w{i}": jnp.ones((64, 96), jnp.float32) for i in range(6)}

  def temp(budget):
    tx = spectral_jax.scale_by_polar("newton_schulz", batch_bytes=budget)
    c = jax.jit(lambda u: tx.update(u, None)[0]).lower(g).compile()
    return c.memory_analysis().temp_size_in_bytes

  small, whole = temp(64 * 96 * 4), temp(6 * 64 * 96 * 4)
  assert small < whole, (small, whole)


_MESH1 = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("fsdp",))


@pytest.mark.parametrize("kw,match", [
    ({"mesh": "fsdp=8"}, "mesh="), ({"batch_bytes": 0}, "batch_bytes="),
    ({"batch_bytes": 1.5}, "batch_bytes="),
    ({"batch_bytes": True}, "batch_bytes="),
    ({"partition_specs": {"w": None}}, "partition_specs= needs mesh="),
    ({"partition_specs": {"w": "fsdp"}, "mesh": _MESH1}, "PartitionSpec"),
    ({"partition_specs": {"w": jax.sharding.PartitionSpec("model")},
      "mesh": _MESH1}, "mesh axes")])
def test_bad_placement_arguments(kw, match):
  for make in (lambda: spectral_jax.muon(0.1, **kw),
               lambda: spectral_jax.specgd(0.1, **kw),
               lambda: spectral_jax.scale_by_polar(**kw),
               lambda: spectral_jax.gated_specgd(0.1, **kw)):
    with pytest.raises(ValueError, match=match):
      make()


def test_partition_specs_must_cover_every_matrix_leaf():
  P = jax.sharding.PartitionSpec
  rng = np.random.default_rng(0)
  g = {"w": jnp.asarray(rng.standard_normal((6, 4)), jnp.float32),
       "v": jnp.asarray(rng.standard_normal((3, 5)), jnp.float32)}
  tx = spectral_jax.scale_by_polar("svd", mesh=_MESH1,
                                   partition_specs={"w": P(), "v": None})
  with pytest.raises(ValueError, match=r"no PartitionSpec .*\['v'\]"):
    tx.update(g, None)
  # Covered: on a one-device mesh the plan is the identity move, the
  # result the polar factor (float32 SVD vs float64 NumPy).
  tx = spectral_jax.scale_by_polar("svd", mesh=_MESH1, partition_specs={
      "w": P(), "v": jax.sharding.NamedSharding(_MESH1, P(None, "fsdp"))})
  out = jax.jit(lambda u: tx.update(u, None)[0])(g)
  for k in g:
    np.testing.assert_allclose(out[k], _np_polar(g[k]), atol=1e-5)


_SCRIPT = textwrap.dedent(r"""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import math
    import jax, jax.numpy as jnp, numpy as np, optax
    import spectral_jax as sj
    from jax.sharding import NamedSharding
    from experiments.bench import mesh as B
    assert len(jax.devices()) == 8
    TOL = float(os.environ["TOL_NS"])
    rng = np.random.default_rng(0)
    shapes = ((16, 48), (16, 16), (16, 64), (64, 16))

    def tree(stacked, layers=4):
      mats = {f"m{j}": rng.standard_normal((layers,) + s) for j, s in
              enumerate(shapes)}
      mats["bias"] = rng.standard_normal((layers, 16))
      if not stacked:
        mats = {f"l{i}": {k: v[i] for k, v in mats.items()}
                for i in range(layers)}
      return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), mats)

    def rel(a, b):
      return max(float(jnp.linalg.norm(x - y) / jnp.linalg.norm(y))
                 for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    def check(spec, stacked, make, layers=4, max_bytes=None):
      mesh = B.make_mesh(spec)
      g = tree(stacked, layers)
      pspecs = jax.tree.map(lambda x: B.matrix_spec(
          x.shape, mesh, stacked and x.ndim >= 3), g)
      sh = jax.tree.map(lambda p: NamedSharding(mesh, p), pspecs)
      gs = jax.device_put(g, sh)
      upd = lambda tx, g: jax.jit(tx.update)(g, jax.jit(tx.init)(g), g)[0]
      ref = upd(make(None, stacked, None), g)
      tx = make(mesh, stacked, pspecs)
      fn = jax.jit(lambda g, s: tx.update(g, s, g)[0])
      state = jax.jit(tx.init)(gs)
      out = fn(gs, state)
      err = rel(out, ref)
      assert err <= TOL, (spec, stacked, err)
      for (path, o), x in zip(jax.tree_util.tree_leaves_with_path(out),
                              jax.tree.leaves(gs)):
        assert o.sharding.is_equivalent_to(x.sharding, o.ndim), (
            path, o.sharding, x.sharding)
      coll = B.hlo_collectives(fn.lower(gs, state).compile().as_text())
      assert not coll["in_loop"], coll
      held = sum(math.prod(s.shard_shape(x.shape)) * 4 for x, s in
                 zip(jax.tree.leaves(g), jax.tree.leaves(sh)))
      ratio = coll["bytes"] / held
      if max_bytes is not None:
        assert ratio <= max_bytes, (spec, stacked, ratio)
      print("OK", spec, stacked, f"{err:.1e}", coll["count"], f"{ratio:.2f}")
      return coll

    dims = lambda stacked: sj.stacked_dimension_numbers if stacked else None
    muon = lambda mesh, stacked, _: sj.muon(
        0.1, muon_weight_dimension_numbers=dims(stacked), mesh=mesh)
    specs = ("fsdp=8", "data=2,fsdp=4", "fsdp=4,model=2")
    ALL = os.environ["MESHES"] == "all"
    # (The default suite leaves XLA's moves to the injected check below.)
    for spec in specs if ALL else ():
      for stacked in (False, True):
        check(spec, stacked, muon)
    # With the params' specs: explicit collectives, one all-to-all each way
    # over the axes that split a matrix and an all-gather over the copies.
    # Eight layers need no padding, so the bytes of collective results per
    # device are exactly: in + out = 2x the shard a device holds, or, where
    # the stacked leaves are split over layers and replicated over data,
    # only the all-gather (1x). XLA's own moves cost 3.2-14x here.
    # (The stacked biases go to Adam: read as one 8x16 matrix, the only one
    # of its shape, they would be padded to one per device.)
    no_bias = lambda stacked: (lambda p: sj.stacked_dimension_numbers(
        p, exclude=("bias",))) if stacked else None
    with_specs = lambda mesh, stacked, pspecs: sj.muon(
        0.1, muon_weight_dimension_numbers=no_bias(stacked), mesh=mesh,
        partition_specs=pspecs)
    cases = [(m, st) for m in specs for st in (False, True)] if ALL else [
        ("data=2,fsdp=4", True), ("fsdp=4,model=2", False),
        ("fsdp=4,model=2", True)]
    for spec, stacked in cases:
      bound = 1.0 if (stacked and spec == "data=2,fsdp=4") else 2.0
      check(spec, stacked, with_specs, layers=8, max_bytes=bound * 1.001)
    # A traced step count runs the iteration in a while loop: still no
    # collective inside it.
    injected = lambda mesh, stacked, _: optax.inject_hyperparams(
        sj.muon, static_args=("mesh",))(
            0.1, muon_weight_dimension_numbers=dims(stacked), mesh=mesh)
    check("fsdp=8", False, injected)
    specgd = lambda mesh, stacked, _: sj.specgd(
        0.1, polar_method="svd", weight_dimension_numbers=dims(stacked), mesh=mesh)
    if ALL:
      check("fsdp=8", True, specgd)
    # The gated optimizer: nr(G)'s singular values and the SpecGD direction
    # each on the device holding the whole matrix; nr and the updates equal
    # the single-device ones (st = 1: every nonzero matrix goes spectral).
    gated = (("data=2,fsdp=4", False), ("fsdp=4,model=2", True))
    for spec, stacked in gated if ALL else gated[:1]:
      mesh = B.make_mesh(spec)
      g = tree(stacked, 8)
      pspecs = jax.tree.map(lambda x: B.matrix_spec(
          x.shape, mesh, stacked and x.ndim >= 3), g)
      gs = jax.device_put(g, jax.tree.map(
          lambda p: NamedSharding(mesh, p), pspecs))
      st = jax.tree.map(lambda x: jnp.ones(x.shape[:-2]) if x.ndim >= 2
                        else None, g)
      one = sj.gated_specgd(0.1)
      u1, s1 = one.update(g, one.init(g), g, stable_rank=st)
      tx = sj.gated_specgd(0.1, mesh=mesh, partition_specs=pspecs)
      fn = jax.jit(lambda g, s, st: tx.update(g, s, g, stable_rank=st))
      state = jax.jit(tx.init)(gs)
      u, s_new = fn(gs, state, st)
      assert rel(u, u1) <= 1e-5, rel(u, u1)
      for a, b in zip(jax.tree.leaves(s_new[0].nuclear_rank),
                      jax.tree.leaves(s1[0].nuclear_rank)):
        np.testing.assert_allclose(a, b, rtol=1e-5)
      coll = B.hlo_collectives(fn.lower(gs, state, st).compile().as_text())
      held = sum(math.prod(NamedSharding(mesh, p).shard_shape(x.shape)) * 4
                 for x, p in zip(jax.tree.leaves(g), jax.tree.leaves(pspecs)))
      assert coll["bytes"] <= 3 * held, (spec, coll["bytes"] / held)
      print("OK gated", spec, stacked, coll["bytes"] / held)
    # A mesh with Explicit axes: the specs are read off the gradients' types.
    explicit = jax.make_mesh((2, 4), ("data", "fsdp"), axis_types=(
        jax.sharding.AxisType.Explicit,) * 2)
    g = tree(False, 8)
    g = jax.device_put(g, jax.tree.map(lambda x: NamedSharding(
        explicit, B.matrix_spec(x.shape, explicit, False)), g))
    tx = sj.muon(0.1, mesh=explicit)
    with jax.set_mesh(explicit):
      fn = jax.jit(lambda g, s: tx.update(g, s, g)[0])
      state = jax.jit(tx.init)(g)
      out = fn(g, state)
      hlo = fn.lower(g, state).compile().as_text()
    assert "all-to-all" in hlo
    ref = jax.jit(lambda g: sj.muon(0.1).update(
        g, sj.muon(0.1).init(g), g)[0])(jax.device_get(g))
    assert rel(out, ref) <= TOL, rel(out, ref)
    # A merged fan_in group sharded on its minor axis cannot be a block of
    # the reshaped matrix: read replicated (XLA gathers it), still exact.
    mesh = B.make_mesh("fsdp=8")
    dn = {"w": sj.MuonDimensionNumbers((0, 1), 2)}
    w = {"w": jnp.asarray(rng.standard_normal((4, 8, 24)), jnp.float32)}
    ws = jax.device_put(w, NamedSharding(mesh, jax.sharding.PartitionSpec(
        None, "fsdp", None)))
    tx = sj.scale_by_polar("svd", weight_dimension_numbers=dn, mesh=mesh,
                           partition_specs={"w": jax.sharding.PartitionSpec(
                               None, "fsdp", None)})
    out = jax.jit(lambda u: tx.update(u, None)[0])(ws)
    ref = sj.scale_by_polar("svd", weight_dimension_numbers=dn).update(
        w, None)[0]
    assert rel(out, ref) <= 1e-5, rel(out, ref)
    print("ALL_OK")
""")


@pytest.mark.parametrize("meshes", [
    pytest.param("fsdp=8", marks=pytest.mark.heavy),
    pytest.param("all", marks=pytest.mark.slow)])
def test_mesh_updates_equal_single_device(meshes):
  # Default suite: fsdp=8 per-layer left to XLA with a traced step count
  # (the loop); with the params' specs: stacked data=2,fsdp=4 (copies over data),
  # fsdp=4,model=2 per-layer and stacked (two splits sharing an
  # all-to-all); the gated optimizer; an Explicit mesh; a spec read
  # replicated. The slow suite adds every other mesh × layout, both ways,
  # SpecGD and the gated optimizer stacked.
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu", TOL_NS=repr(_TOL_NS), MESHES=meshes)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=root,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "ALL_OK" in proc.stdout, proc.stdout


def test_injected_mesh_without_static_args_names_the_fix():
  import optax  # pylint: disable=g-import-not-at-top
  import spectral_jax as sj  # pylint: disable=g-import-not-at-top
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("fsdp",))
  tx = optax.inject_hyperparams(sj.muon)(learning_rate=0.1, mesh=mesh)
  with pytest.raises(ValueError, match="list 'mesh' in static_args"):
    tx.init({"w": jnp.ones((4, 3))})
  ok = optax.inject_hyperparams(sj.muon, static_args=("mesh",))(
      learning_rate=0.1, mesh=mesh)
  ok.init({"w": jnp.ones((4, 3))})
