"""Shared test setup: float64 available, fresh randomness per run.

Tests draw fresh random inputs every run (seeded from the OS, printed on
failure through the ``rng`` fixture's seed) so they compare against references
on new data each time, not on one memorised instance.
"""

import os

# Small LAPACK calls (eigh/SVD of ≤ 512×512) run far slower with threaded
# OpenBLAS on a 2-core machine; the suite is many small problems. Set before
# numpy/jax load; a caller's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The XLA CPU hang workaround must be in XLA_FLAGS before JAX's CPU backend
# starts; importing spectral_jax applies it (spectral_jax/xla_cpu.py).
import spectral_jax  # pylint: disable=g-import-not-at-top,wrong-import-position,unused-import
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def rng(request):
  seed = int.from_bytes(os.urandom(4), "little")
  request.node.user_properties.append(("seed", seed))
  return np.random.default_rng(seed)


def pytest_runtest_makereport(item, call):
  if call.excinfo is not None:
    for name, value in item.user_properties:
      if name == "seed":
        item.add_report_section(call.when, "seed", f"rng seed = {value}")
