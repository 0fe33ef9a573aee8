"""Tests for spectral_jax.training.tracking: tracked st / nr against NumPy."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spectral_jax import labels

T = importlib.import_module("spectral_jax.training.train")

# Float32 Gram over n = 64 token rows, then eigvalsh of a d ≤ 64 Gram (or a
# float32 SVD of a ≤ 64-wide gradient): trace and top eigenvalue (singular
# values) each carry O((n + d)·eps32) = 128 · 1.19e-7 ≈ 1.5e-5 relative
# error; 1e-4 leaves a factor ~6 for the ratio.
RTOL = 1e-4

# What the tiny GPT sows, each array once: W_K, W_V and W_O multiply the very
# array W_Q does (gpt.py's table), so only the first sower's name is kept.
ST_NAMES = {"blocks/attn/q/inputs", "blocks/attn/o/heads",
            "blocks/mlp/fc/inputs", "blocks/mlp/fc/preactivation",
            "blocks/mlp/proj/inputs", "lm_head/inputs", "wte/inputs",
            "wte/output"}


def _np_st(a):
  s = np.linalg.svd(np.asarray(a, np.float64), compute_uv=False)
  return np.sum(s ** 2) / s[0] ** 2


def _np_nr(g):
  s = np.linalg.svd(np.asarray(g, np.float64), compute_uv=False)
  return np.sum(s) ** 2 / np.sum(s ** 2)


def _tiny_gpt(rng):
  cfg = T.preset("cpu-small", n_layer=2, n_head=2, d_model=16, context=16,
                 batch_size=4, seed=int(rng.integers(1 << 30)))
  graphdef, params, rest = T.init_model(cfg, 256)
  tokens = rng.integers(0, 256, (4, 17))
  return (graphdef, params, rest, jnp.asarray(tokens[:, :-1], jnp.int32),
          jnp.asarray(tokens[:, 1:], jnp.int32))


def _sown(graphdef, params, rest, x):
  """The raw sown arrays, straight from nnx.capture (no diagnostics code)."""
  model = nnx.merge(graphdef, params, rest)
  _, inter = nnx.capture(model, nnx.Intermediate)(x)
  # Each value is a tuple with one array per call (one call here).
  return {labels.path_name(p): np.asarray(v.get_value()[0], np.float64)
          for p, v in nnx.to_flat_state(inter)}


@pytest.mark.heavy
def test_tracked_ranks_match_numpy(rng):
  graphdef, params, rest, x, y = _tiny_gpt(rng)
  loss, st, nr = T.make_track_fn(graphdef)(params, rest, x, y)
  sown = _sown(graphdef, params, rest, x)
  assert set(st) == ST_NAMES
  np.testing.assert_array_equal(sown["blocks/attn/k/inputs"],
                                sown["blocks/attn/q/inputs"])
  n_tok = x.size
  for name in ST_NAMES - {"wte/inputs", "wte/output"}:
    a = sown[name]
    layers = a.reshape(-1, n_tok, a.shape[-1])
    want = [_np_st(m) for m in layers]
    got = np.atleast_1d(np.asarray(st[name], np.float64))
    np.testing.assert_allclose(got, want, rtol=RTOL, err_msg=name)
    assert got.shape == ((2,) if name.startswith("blocks/") else (1,))
  counts = np.bincount(np.asarray(x).reshape(-1), minlength=256)
  np.testing.assert_allclose(float(st["wte/inputs"]), n_tok / counts.max(),
                             rtol=1e-6)
  table = np.asarray(params["wte"]["embedding"], np.float64)
  np.testing.assert_allclose(float(st["wte/output"]),
                             _np_st(table[np.asarray(x).reshape(-1)]),
                             rtol=RTOL)
  ref_loss, grads = jax.value_and_grad(T.make_loss_fn(graphdef))(
      params, rest, x, y)
  # Same loss; jitted beside the capture vs op by op: a few float32 ulps.
  np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-6)
  flat = {labels.path_name(p): np.asarray(g, np.float64)
          for p, g in jax.tree_util.tree_flatten_with_path(grads)[0]}
  assert set(nr) == set(flat)
  for name, g in flat.items():
    want = [_np_nr(m) for m in g.reshape(-1, *g.shape[-2:])]
    np.testing.assert_allclose(np.atleast_1d(np.asarray(nr[name])), want,
                               rtol=RTOL, err_msg=name)
