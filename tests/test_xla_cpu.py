"""The XLA CPU hang workaround (spectral_jax/xla_cpu.py)."""

import os
import subprocess
import sys

import pytest

from spectral_jax import xla_cpu


def test_apply_appends_flag_once_and_respects_the_user():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  assert xla_cpu.apply(env)
  assert env["XLA_FLAGS"].split() == [
      "--xla_force_host_platform_device_count=2", xla_cpu.FLAG]
  assert xla_cpu.apply(env)  # already there: unchanged
  assert env["XLA_FLAGS"].count(xla_cpu.FLAG) == 1
  mine = {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}
  assert not xla_cpu.apply(mine)  # the user's own value wins
  assert mine["XLA_FLAGS"].endswith("=true")
  opted_out = {"SPECTRAL_JAX_KEEP_XLA_FLAGS": "1"}
  assert not xla_cpu.apply(opted_out) and "XLA_FLAGS" not in opted_out
  empty = {}
  assert xla_cpu.apply(empty) and empty["XLA_FLAGS"] == xla_cpu.FLAG


def test_import_sets_the_flag_for_this_process():
  assert xla_cpu.FLAG in os.environ.get("XLA_FLAGS", "").split()


_TWO_SVDS = """
import jax, jax.numpy as jnp, numpy as np
import spectral_jax as sj
rng = np.random.default_rng(0)
g = {"a": jnp.asarray(rng.standard_normal((8, 128, 128)), jnp.float32),
     "b": jnp.asarray(rng.standard_normal((8, 128, 512)), jnp.float32)}
tx = sj.scale_by_polar("svd", weight_dimension_numbers=sj.stacked_dimension_numbers(g))
update = jax.jit(tx.update)
for _ in range(60):
  jax.block_until_ready(update(g, tx.init(g)))
print("done")
"""


@pytest.mark.skipif(not xla_cpu.apply({}), reason="jaxlib older than the "
                    "versions the workaround was checked on")
def test_exact_polar_of_two_shape_groups_does_not_hang():
  """Two SVD groups in one jitted update, 60 calls: hung within a few calls
  without the workaround (jaxlib 0.10.2, 2-core CPU: 2 of 2 runs hit a 60 s
  timeout); seconds with it."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run([sys.executable, "-c", _TWO_SVDS], env=env,
                        capture_output=True, text=True, timeout=240,
                        check=False)
  assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-2000:]
