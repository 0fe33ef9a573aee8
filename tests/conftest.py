"""Shared test setup: float64 available, fresh randomness per run.

Tests draw fresh random inputs every run (seeded from the OS, printed on
failure through the ``rng`` fixture's seed) so they compare against references
on new data each time, not on one memorised instance.
"""

import os
import shutil
import tempfile

# Small LAPACK calls (eigh/SVD of ≤ 512×512) run far slower with threaded
# OpenBLAS on a 2-core machine; the suite is many small problems. Set before
# numpy/jax load; a caller's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# One XLA compilation cache per test run, shared by the xdist workers and the
# subprocesses tests start (they inherit the environment): the suite compiles
# the same small programs many times over (every experiment arm, every run of
# a kill/resume test), and compiling is most of its time on CPU. Measured on
# 2 cores: 6 m 31 s without it, 5 m 20 s with it. Fresh and empty each run,
# removed at the end, so no test ever sees another run's executables.
# SPECTRAL_JAX_TEST_COMPILE_CACHE=0 turns it off.
_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_OWN_CACHE = None
if (os.environ.get("SPECTRAL_JAX_TEST_COMPILE_CACHE", "1") != "0"
    and "PYTEST_XDIST_WORKER" not in os.environ):
  _OWN_CACHE = tempfile.mkdtemp(prefix="spectral_jax_test_xla_cache_")
  os.environ[_CACHE_ENV] = _OWN_CACHE
  # Cache every program, however quick to compile (JAX's default is ≥ 1 s).
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

# The suite's programs are tiny: LLVM's expensive optimisation passes cost
# more compile time than they save run time (4 m 47 s -> see README's test
# timing). The code is still optimised by XLA; only LLVM's costliest passes
# are skipped. A caller's own XLA_FLAGS come first and win.
# For the same reason XLA's CPU backend optimisation level is 0 (it skips
# backend passes, not the HLO optimisations that decide what is computed):
# measured on 2 cores, test_transforms + test_alias 108 s -> 77 s and three
# experiment tests 63 s -> 45 s, same results.
_TEST_XLA_FLAGS = {"xla_llvm_disable_expensive_passes": "true",
                   "xla_backend_optimization_level": "0"}
for _name, _value in _TEST_XLA_FLAGS.items():
  if _name not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --{_name}={_value}").strip()

# The XLA CPU hang workaround must be in XLA_FLAGS before JAX's CPU backend
# starts; importing spectral_jax applies it (spectral_jax/xla_cpu.py).
import spectral_jax  # pylint: disable=g-import-not-at-top,wrong-import-position,unused-import
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
if os.environ.get(_CACHE_ENV):
  # Also set through the config in case a plugin imported jax before us.
  jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def pytest_unconfigure(config):
  del config
  if _OWN_CACHE is not None:
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
  """Tests marked ``heavy`` (≥ ~8 s each) run first, so that the two xdist
  workers share them instead of one worker finishing them alone at the end."""
  del config
  items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


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
