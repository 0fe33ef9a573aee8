"""Tests for spectral_jax.models (MLP, GPT, activations, the sow convention).

References are NumPy float64 re-implementations of the forward passes; with
float64 parameters they agree to ~1e-12, so 1e-9 tolerances leave room for
summation-order differences only.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spectral_jax.models import ACTIVATIONS
from spectral_jax.models import GPT
from spectral_jax.models import GPTConfig
from spectral_jax.models import MLP
from spectral_jax.models import get_activation

F64 = jnp.float64


_NP_ACT = {
    "relu": lambda z: np.maximum(z, 0),
    "relu2": lambda z: np.maximum(z, 0) ** 2,
    "abs": np.abs,
    "gelu": lambda z: z * 0.5 * (1 + np.vectorize(math.erf)(z / np.sqrt(2))),
    "silu": lambda z: z / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
}
_np_silu = _NP_ACT["silu"]


def _seed(rng):
  return int(rng.integers(2**31))


# ------------------------------------------------------------------ activations


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_numpy(name, rng):
  z = rng.normal(size=(50,)) * 2
  np.testing.assert_allclose(get_activation(name)(jnp.asarray(z)),
                             _NP_ACT[name](z), rtol=1e-12, atol=1e-12)


def test_get_activation_rejects_unknown_name():
  with pytest.raises(ValueError, match="relu2"):
    get_activation("relu3")


# ------------------------------------------------------------------------- MLP


def _mlp_reference(kernels, x, activation):
  """Returns (output, per-layer inputs, per-hidden-layer pre-activations)."""
  inputs, pre = [], []
  for i, w in enumerate(kernels):
    inputs.append(x)
    z = x @ w
    if i == len(kernels) - 1:
      return z, inputs, pre
    pre.append(z)
    if activation == "swiglu":
      z1, z2 = np.split(z, 2, axis=-1)
      x = _np_silu(z1) * z2
    else:
      x = _NP_ACT[activation](z)


@pytest.mark.parametrize("activation", ["relu2", "relu", "gelu", "swiglu"])
def test_mlp_matches_reference_and_captures_layer_inputs(activation, rng):
  widths = (6, 9, 8, 3)
  model = MLP(widths, activation, rngs=nnx.Rngs(_seed(rng)), param_dtype=F64)
  x = rng.normal(size=(11, 6))
  gate = 2 if activation == "swiglu" else 1
  kernels = [np.asarray(layer.kernel[...]) for layer in model.layers]
  assert [k.shape for k in kernels] == [(6, 9 * gate), (9, 8 * gate), (8, 3)]

  y_ref, inputs_ref, pre_ref = _mlp_reference(kernels, x, activation)
  y = model(jnp.asarray(x))
  assert y.shape == (11, 3)
  np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-12)

  y_cap, inter = nnx.capture(model, nnx.Intermediate)(jnp.asarray(x))
  np.testing.assert_array_equal(y_cap, y)  # capture leaves outputs unchanged
  for i in range(3):
    (a,) = inter["layers"][i]["inputs"].get_value()
    np.testing.assert_allclose(a, inputs_ref[i], rtol=1e-9, atol=1e-12)
  for i in range(2):
    (z,) = inter["layers"][i]["preactivation"].get_value()
    np.testing.assert_allclose(z, pre_ref[i], rtol=1e-9, atol=1e-12)
  assert "preactivation" not in inter["layers"][2]


def test_plain_call_stores_no_intermediates(rng):
  model = MLP((4, 5, 1), rngs=nnx.Rngs(_seed(rng)))
  model(jnp.ones((2, 4), jnp.float32))
  nnx.capture(model, nnx.Intermediate)(jnp.ones((2, 4), jnp.float32))
  model(jnp.ones((2, 4), jnp.float32))
  # Training-time calls must not grow module state.
  assert not jax.tree.leaves(nnx.state(model, nnx.Intermediate))


def test_mlp_torch_init_is_uniform_within_fan_in_bound(rng):
  model = MLP((400, 300, 2), rngs=nnx.Rngs(_seed(rng)), param_dtype=F64)
  for layer, fan_in in zip(model.layers, (400, 300)):
    w = np.asarray(layer.kernel[...])
    bound = 1 / np.sqrt(fan_in)
    assert np.abs(w).max() <= bound
    # 600+ draws of U(−b, b): the extreme is within 2% of b w.p. ≈ 1 − 1e-5,
    # and the variance b²/3 is matched to ~10% (relative sd ≈ 4% for 600 draws).
    assert np.abs(w).max() >= 0.98 * bound
    np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.15)


def test_mlp_lecun_init_has_fan_in_variance(rng):
  model = MLP((256, 512, 1), init="lecun", rngs=nnx.Rngs(_seed(rng)),
              param_dtype=F64)
  w = np.asarray(model.layers[0].kernel[...])
  np.testing.assert_allclose(w.var(), 1 / 256, rtol=0.05)


def test_mlp_bias_is_a_param(rng):
  model = MLP((3, 4, 2), use_bias=True, rngs=nnx.Rngs(_seed(rng)))
  shapes = {jax.tree_util.keystr(p): v.shape for p, v in
            jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))}
  assert sorted(shapes.values()) == [(2,), (3, 4), (4,), (4, 2)]


@pytest.mark.parametrize("kwargs,match", [
    (dict(widths=(3,)), "widths"),
    (dict(widths=(3, 4), activation="softplus"), "activation"),
    (dict(widths=(3, 4), init="xavier"), "init"),
])
def test_mlp_rejects_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    MLP(rngs=nnx.Rngs(0), **kwargs)


# ------------------------------------------------------------------------- GPT

TINY = dict(vocab_size=19, context=12, n_layer=3, n_head=2, d_model=8,
            param_dtype=F64)


def _rms(x):
  return x / np.sqrt(np.mean(x**2, -1, keepdims=True) + 1e-6)


def _rope(x, base=10000.0):
  t, hd = x.shape[-3], x.shape[-1]
  freqs = base ** (-np.arange(hd // 2) / (hd // 2))
  ang = np.arange(t)[:, None] * freqs[None]
  cos, sin = np.cos(ang)[:, None], np.sin(ang)[:, None]
  x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
  return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


def _gpt_reference(params, tokens, cfg):
  """NumPy float64 forward pass written from the module docstring."""
  p = jax.tree.map(np.asarray, params)
  x = p["wte"]["embedding"][tokens]
  b, t, d = x.shape
  h = cfg.n_head
  for i in range(cfg.n_layer):
    blk = jax.tree.map(lambda a: a[i], p["blocks"])
    a = _rms(x)
    q, k, v = (a @ blk["attn"][n]["kernel"] for n in "qkv")
    q, k, v = (y.reshape(b, t, h, d // h) for y in (q, k, v))
    q, k = _rope(q), _rope(k)
    s = np.einsum("bqhc,bkhc->bhqk", q, k) / np.sqrt(d // h)
    s = np.where(np.tril(np.ones((t, t), bool)), s, -np.inf)
    pr = np.exp(s - s.max(-1, keepdims=True))
    pr /= pr.sum(-1, keepdims=True)
    att = np.einsum("bhqk,bkhc->bqhc", pr, v).reshape(b, t, d)
    x = x + att @ blk["attn"]["o"]["kernel"]
    z = _rms(x) @ blk["mlp"]["fc"]["kernel"]
    x = x + np.maximum(z, 0) ** 2 @ blk["mlp"]["proj"]["kernel"]
  return _rms(x) @ p["lm_head"]["kernel"]


def _params(model):
  return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def test_gpt_matches_numpy_reference(rng):
  cfg = GPTConfig(**TINY)
  model = GPT(cfg, rngs=nnx.Rngs(_seed(rng)))
  tokens = rng.integers(0, cfg.vocab_size, size=(2, 10))
  logits = model(jnp.asarray(tokens))
  assert logits.shape == (2, 10, cfg.vocab_size)
  assert logits.dtype == jnp.float32  # logits are float32 whatever the params
  ref = _gpt_reference(_params(model), tokens, cfg)
  # float32 logits: compare at float32 resolution.
  np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-5)


def test_gpt_params_are_stacked_over_layers(rng):
  cfg = GPTConfig(**TINY)
  shapes = jax.tree.map(jnp.shape, _params(GPT(cfg, rngs=nnx.Rngs(_seed(rng)))))
  d, k, L = cfg.d_model, cfg.mlp_ratio * cfg.d_model, cfg.n_layer
  for n in "qkvo":
    assert shapes["blocks"]["attn"][n]["kernel"] == (L, d, d)
  assert shapes["blocks"]["mlp"]["fc"]["kernel"] == (L, d, k)
  assert shapes["blocks"]["mlp"]["proj"]["kernel"] == (L, k, d)
  assert shapes["wte"]["embedding"] == (cfg.vocab_size, d)
  assert shapes["lm_head"]["kernel"] == (d, cfg.vocab_size)


def test_gpt_stacked_layers_are_distinct_and_fan_in_scaled(rng):
  cfg = GPTConfig(**{**TINY, "d_model": 64, "n_head": 4, "n_layer": 2})
  p = _params(GPT(cfg, rngs=nnx.Rngs(_seed(rng))))
  q = np.asarray(p["blocks"]["attn"]["q"]["kernel"])
  assert not np.allclose(q[0], q[1])  # split_rngs gave each layer its own key
  # 2·64² N(0, 1/64) draws: sample variance within 10% w.p. > 1 − 1e-6.
  np.testing.assert_allclose(q.var(), 1 / 64, rtol=0.1)
  proj = np.asarray(p["blocks"]["mlp"]["proj"]["kernel"])
  np.testing.assert_allclose(proj.var(), 1 / 256, rtol=0.1)


def test_gpt_is_causal(rng):
  cfg = GPTConfig(**TINY)
  model = GPT(cfg, rngs=nnx.Rngs(_seed(rng)))
  tokens = rng.integers(0, cfg.vocab_size, size=(1, 12))
  cut = int(rng.integers(1, 11))
  changed = tokens.copy()
  changed[0, cut:] = (changed[0, cut:] + 1) % cfg.vocab_size
  a, b = model(jnp.asarray(tokens)), model(jnp.asarray(changed))
  np.testing.assert_array_equal(a[:, :cut], b[:, :cut])
  assert not np.allclose(a[:, cut:], b[:, cut:])


def test_gpt_scan_equals_unrolled_loop(rng):
  cfg = GPTConfig(**TINY)
  model = GPT(cfg, rngs=nnx.Rngs(_seed(rng)))
  tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, size=(2, 7)))
  graphdef, state = nnx.split(model.blocks)
  x = model.wte(tokens)
  for i in range(cfg.n_layer):
    x = nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))(x)
  unrolled = model.lm_head(model.norm_f(x)).astype(jnp.float32)
  # Same float64 arithmetic, then one rounding to float32 logits: ≤ 1 ulp.
  np.testing.assert_allclose(model(tokens), unrolled, rtol=3e-7, atol=1e-7)


def test_gpt_capture_has_table1_activations(rng):
  cfg = GPTConfig(**TINY)
  model = GPT(cfg, rngs=nnx.Rngs(_seed(rng)))
  tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, size=(2, 5)))
  logits, inter = nnx.capture(model, nnx.Intermediate)(tokens)
  np.testing.assert_array_equal(logits, model(tokens))
  get = lambda *path: inter[path[0]] if len(path) == 1 else get(*path[:-1])[path[-1]]
  val = lambda *path: get(*path).get_value()[0]
  L, d = cfg.n_layer, cfg.d_model
  np.testing.assert_array_equal(val("wte", "inputs"), tokens)
  # Table 1: Q, K, V and O all see A_rms; stacked with a leading layer axis.
  a_rms = val("blocks", "attn", "q", "inputs")
  assert a_rms.shape == (L, 2, 5, d)
  for n in "kvo":
    np.testing.assert_array_equal(val("blocks", "attn", n, "inputs"), a_rms)
  np.testing.assert_allclose(np.mean(np.asarray(a_rms) ** 2, -1), 1, rtol=1e-5)
  # Layer 0's A_rms is the normalized embedding.
  np.testing.assert_allclose(a_rms[0], _rms(np.asarray(model.wte(tokens))),
                             rtol=1e-12)
  pre = val("blocks", "mlp", "fc", "preactivation")
  b = val("blocks", "mlp", "proj", "inputs")
  np.testing.assert_allclose(b, np.maximum(pre, 0) ** 2, rtol=1e-12)
  assert val("lm_head", "inputs").shape == (2, 5, d)


def test_gpt_options(rng):
  cfg = GPTConfig(**{**TINY, "zero_init_out": True, "tie_embeddings": True,
                     "qk_norm": True, "norm_gain": True})
  model = GPT(cfg, rngs=nnx.Rngs(_seed(rng)))
  p = _params(model)
  assert "lm_head" not in p
  assert not np.any(np.asarray(p["blocks"]["attn"]["o"]["kernel"]))
  assert not np.any(np.asarray(p["blocks"]["mlp"]["proj"]["kernel"]))
  assert p["blocks"]["norm_attn"]["scale"].shape == (cfg.n_layer, cfg.d_model)
  tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, size=(1, 6)))
  # Zero out-projections make every block the identity: logits = rms(E_t) Eᵀ.
  e = np.asarray(p["wte"]["embedding"])
  ref = _rms(e[np.asarray(tokens)]) @ e.T
  np.testing.assert_allclose(model(tokens), ref, rtol=1e-5, atol=1e-5)


def test_gpt_rejects_bad_config_and_long_input():
  with pytest.raises(ValueError, match="d_model"):
    GPTConfig(d_model=10, n_head=4)
  with pytest.raises(ValueError, match="n_layer"):
    GPTConfig(n_layer=0)
  model = GPT(GPTConfig(**TINY), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="context"):
    model(jnp.zeros((1, 13), jnp.int32))
