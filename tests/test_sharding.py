"""Tests for spectral_jax.training.sharding.

The multi-device checks run in a subprocess with 8 simulated CPU devices
(``--xla_force_host_platform_device_count=8`` must be set before JAX starts).
"""

import os
import subprocess
import sys
import textwrap

import pytest
from jax.sharding import PartitionSpec as P

from spectral_jax.training import sharding as S


def test_parse_mesh():
  assert S.parse_mesh("data=2,fsdp=4") == {"data": 2, "fsdp": 4}
  assert S.parse_mesh("fsdp=8") == {"data": 1, "fsdp": 8}
  assert S.parse_mesh("") == {"data": 1, "fsdp": 1}
  for bad in ("model=2", "data=0", "data=x", "data"):
    with pytest.raises(ValueError, match="mesh"):
      S.parse_mesh(bad)
  with pytest.raises(ValueError, match="devices"):
    S.make_mesh("data=4096")


def test_param_partition_spec():
  # Stacked: layer axis when divisible, so each device owns whole matrices.
  assert S.param_partition_spec((4, 64, 256), 4, stacked=True) == P("fsdp", None, None)
  # Not divisible → largest divisible axis.
  assert S.param_partition_spec((3, 64, 256), 4, stacked=True) == P(None, None, "fsdp")
  assert S.param_partition_spec((256, 64), 8) == P("fsdp", None)
  assert S.param_partition_spec((7, 5), 4) == P()
  assert S.param_partition_spec((64,), 1) == P()


_SCRIPT = textwrap.dedent(r"""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import importlib, re
    import jax, jax.numpy as jnp, numpy as np
    import spectral_jax
    from spectral_jax.training import sharding as S
    T = importlib.import_module("spectral_jax.training.train")
    assert len(jax.devices()) == 8

    # (1) One training step of a tiny GPT: mesh data=2, fsdp=4 vs one device.
    cfg = T.preset("cpu-small", n_layer=4, n_head=2, d_model=16, context=8,
                   batch_size=8, steps=4, optimizer="muon", warmup_steps=0)
    gd, params, rest = T.init_model(cfg, 256)
    tx = T.make_optimizer(cfg, params)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 8)).astype(np.int32)
    y = rng.integers(0, 256, (8, 8)).astype(np.int32)
    step = jax.jit(T.make_train_step(gd, tx))
    key = jax.random.key_data(jax.random.key(0))
    s1, l1 = step(T.TrainState(params, jax.jit(tx.init)(params), key), rest, x, y)

    mesh = S.make_mesh("data=2,fsdp=4")
    sp = jax.device_put(params, S.param_shardings(params, mesh))
    assert sp["blocks"]["mlp"]["fc"]["kernel"].sharding.spec == jax.sharding.PartitionSpec("fsdp", None, None)
    bs = S.batch_sharding(mesh, 8)
    s2, l2 = step(T.TrainState(sp, jax.jit(tx.init)(sp), key), rest,
                  jax.device_put(x, bs), jax.device_put(y, bs))
    # fp32 reductions in another order: 1e-5 relative on the loss, 1e-4
    # absolute on parameters of size ~1 after one Newton–Schulz step.
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-4)
    print("STEP_OK", float(l1), float(l2))

    # (2) Muon update of a layer-sharded stack: no all-gather of the stack.
    mesh8 = S.make_mesh("fsdp=8")
    w = jnp.asarray(rng.standard_normal((8, 64, 96)), jnp.float32)
    shard = jax.sharding.NamedSharding(mesh8, jax.sharding.PartitionSpec("fsdp", None, None))
    w = jax.device_put(w, shard)
    tx = spectral_jax.muon(0.02, muon_weight_dimension_numbers={
        "w": spectral_jax.MuonDimensionNumbers(1, 2)})
    state = jax.jit(tx.init)({"w": w})
    upd = jax.jit(lambda g, s: tx.update(g, s, {"w": w})[0])
    hlo = upd.lower({"w": w}, state).compile().as_text()
    gathers = [l for l in hlo.splitlines() if "all-gather" in l]
    print("ALL_GATHERS", len(gathers))
    for l in gathers:
      print("  ", l.strip()[:200])
    big = [l for l in gathers if re.search(r"f32\[8,(64,96|96,64)\]", l)]
    assert not big, big
    out = upd({"w": w}, state)["w"]
    assert out.sharding.spec[0] == "fsdp", out.sharding
    print("HLO_OK")
""")


@pytest.mark.heavy
def test_sharded_step_and_layer_local_muon():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=root,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "STEP_OK" in proc.stdout and "HLO_OK" in proc.stdout, proc.stdout
