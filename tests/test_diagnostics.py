"""Tests for spectral_jax.diagnostics: capture, the layerwise report, the monitor.

References are NumPy float64 (SVDs of the same matrices, explicit one-hot
matrices, hand-written forward passes). Parameters are float64 so 1e-8
relative tolerances only absorb summation order and eigvalsh-vs-SVD rounding.
"""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from spectral_jax import diagnostics
from spectral_jax.models import GPT
from spectral_jax.models import GPTConfig
from spectral_jax.models import MLP

F64 = jnp.float64


def _seed(rng):
  return int(rng.integers(2**31))


def np_nr(g):
  s = np.linalg.svd(np.asarray(g, np.float64), compute_uv=False)
  return s.sum() ** 2 / (s**2).sum()


def np_st(a):
  s = np.linalg.svd(np.asarray(a, np.float64), compute_uv=False)
  return (s**2).sum() / s[0] ** 2


def _mse(model, batch):
  x, y = batch
  return jnp.mean((model(x) - y) ** 2)


TINY_GPT = dict(vocab_size=23, context=8, n_layer=2, n_head=2, d_model=8,
                param_dtype=F64)


def _lm_loss(model, tokens):
  logits = model(tokens[:, :-1])
  return optax.softmax_cross_entropy_with_integer_labels(
      logits, tokens[:, 1:]).mean()


# ---------------------------------------------------------------- token st


def test_token_stable_rank_is_inverse_max_frequency(rng):
  vocab = 30
  # Zipf-like skew so p_max is well defined and not 1/vocab.
  p = 1.0 / np.arange(1, vocab + 1) ** 0.9
  tokens = rng.choice(vocab, size=(3, 200), p=p / p.sum())
  st = diagnostics.token_stable_rank(jnp.asarray(tokens), vocab)
  for row, value in zip(tokens, np.asarray(st)):
    counts = np.bincount(row, minlength=vocab)
    assert value == pytest.approx(200 / counts.max(), rel=1e-6)  # exact ratio
    onehot = np.eye(vocab)[row]
    assert value == pytest.approx(np_st(onehot), rel=1e-6)


# ----------------------------------------------------------------- capture


def test_capture_activations_mlp_matches_forward_pass(rng):
  model = MLP((5, 7, 6, 2), "relu2", rngs=nnx.Rngs(_seed(rng)),
              param_dtype=F64)
  x = rng.normal(size=(9, 5))
  acts = diagnostics.capture_activations(model, jnp.asarray(x))
  w = [np.asarray(l.kernel[...]) for l in model.layers]
  a1 = np.maximum(x @ w[0], 0) ** 2
  a2 = np.maximum(a1 @ w[1], 0) ** 2
  assert sorted(acts) == [("layers", i, "kernel") for i in range(3)]
  for i, ref in enumerate((x, a1, a2)):
    np.testing.assert_allclose(acts[("layers", i, "kernel")], ref, rtol=1e-10)


def test_capture_activations_gpt_stacks_layers_and_one_hots_tokens(rng):
  cfg = GPTConfig(**TINY_GPT)
  model = GPT(cfg, rngs=nnx.Rngs(_seed(rng)))
  tokens = rng.integers(0, cfg.vocab_size, size=(3, 6))
  acts = diagnostics.capture_activations(model, jnp.asarray(tokens))
  matrices = [p for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
              if v.get_value().ndim >= 2]
  assert sorted(acts) == sorted(tuple(p) for p in matrices)
  L, d, n = cfg.n_layer, cfg.d_model, 18
  assert acts[("blocks", "attn", "q", "kernel")].shape == (L, n, d)
  assert acts[("blocks", "mlp", "proj", "kernel")].shape == (L, n, 4 * d)
  assert acts[("lm_head", "kernel")].shape == (n, d)
  np.testing.assert_array_equal(acts[("wte", "embedding")],
                                np.eye(cfg.vocab_size)[tokens.reshape(-1)])
  ids = diagnostics.capture_activations(model, jnp.asarray(tokens),
                                        one_hot=False)[("wte", "embedding")]
  np.testing.assert_array_equal(ids, tokens.reshape(-1))


class _PlainFlax(nnx.Module):
  """A model written with stock nnx.Embed / nnx.Linear (no sowing of its own)."""

  def __init__(self, rngs):
    self.emb = nnx.Embed(11, 6, rngs=rngs, param_dtype=F64)
    self.fc = nnx.Linear(6, 8, rngs=rngs, param_dtype=F64)
    self.out = nnx.Linear(8, 3, rngs=rngs, param_dtype=F64)

  def __call__(self, tokens):
    return self.out(jax.nn.relu(self.fc(self.emb(tokens))))


def test_plain_flax_layers_are_captured_and_patch_is_undone(rng):
  linear_call, embed_call = nnx.Linear.__call__, nnx.Embed.__call__
  model = _PlainFlax(nnx.Rngs(_seed(rng)))
  tokens = jnp.asarray(rng.integers(0, 11, size=(25,)))
  report = diagnostics.layerwise_report(model, tokens,
                                        lambda m, t: jnp.sum(m(t) ** 2))
  assert nnx.Linear.__call__ is linear_call
  assert nnx.Embed.__call__ is embed_call
  names = [e.name for e in report]
  assert names == ["emb/embedding", "fc/kernel", "out/kernel"]
  counts = np.bincount(np.asarray(tokens), minlength=11)
  assert report.entries[0].kind == "embedding"
  assert report.entries[0].st == pytest.approx(25 / counts.max(), rel=1e-6)
  h = np.asarray(model.emb(tokens))
  assert report.entries[1].st == pytest.approx(np_st(h), rel=1e-8)


# ------------------------------------------------------------------ report


def test_report_on_mlp_matches_numpy_ranks(rng):
  model = MLP((6, 12, 10, 1), "relu2", rngs=nnx.Rngs(_seed(rng)),
              param_dtype=F64)
  x = jnp.asarray(rng.normal(size=(40, 6)))
  y = jnp.asarray(rng.normal(size=(40, 1)))
  report = diagnostics.layerwise_report(model, (x, y), _mse)
  grads = nnx.grad(_mse)(model, (x, y))
  acts = diagnostics.capture_activations(model, x)
  assert len(report) == 3
  for i, e in enumerate(report):
    path = ("layers", i, "kernel")
    g = np.asarray(grads["layers"][i]["kernel"].get_value())
    assert e.path == path and e.layer is None and e.shape == g.shape
    assert e.nr == pytest.approx(np_nr(g), rel=1e-8)
    assert e.st == pytest.approx(np_st(acts[path]), rel=1e-8)
    rank_g, rank_a = np.linalg.matrix_rank(g), np.linalg.matrix_rank(acts[path])
    assert 1 - 1e-9 <= e.nr <= rank_g + 1e-9
    assert 1 - 1e-9 <= e.st <= rank_a + 1e-9
    assert e.condition == (e.nr >= e.st)
    assert e.strong == (e.nr >= 2 * e.st)
    assert e.ratio == pytest.approx(e.nr / e.st)
  # Hidden layers also report the st of their pre-activation.
  assert report.entries[0].st_preactivation is not None
  assert report.entries[2].st_preactivation is None


def test_relu_features_of_wide_random_layer_have_st_below_pi(rng):
  # Thm 2.6: st(ReLU(XW)) ≤ π(1+ε₁)/(1−ε₂)² for Gaussian X, whatever W and the
  # width. At n = 2048, d = 64 the sampling error is a few percent ([M] 3.11
  # at n = 4096), so π + 5% is a safe ceiling and 2.6 a floor well above 1.
  model = MLP((64, 512, 1), "relu", rngs=nnx.Rngs(_seed(rng)),
              param_dtype=F64)
  x = jnp.asarray(rng.normal(size=(2048, 64)))
  report = diagnostics.layerwise_report(model, (x, jnp.zeros((2048, 1))),
                                        _mse)
  st = report.entries[1].st
  assert 2.6 < st < np.pi * 1.05
  assert report.entries[0].st > 20  # the Gaussian input itself is not low-rank


def test_chunked_gram_equals_direct(rng):
  cfg = GPTConfig(**TINY_GPT)
  model = GPT(cfg, rngs=nnx.Rngs(_seed(rng)))
  tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, size=(3, 9)))
  direct = diagnostics.layerwise_report(model, tokens, _lm_loss)
  chunked = diagnostics.layerwise_report(model, tokens, _lm_loss,
                                         chunk_size=5)
  for a, b in zip(direct, chunked):
    assert a.name == b.name
    assert b.st == pytest.approx(a.st, rel=1e-8)
    assert b.nr == pytest.approx(a.nr, rel=1e-8)


def test_report_on_tiny_gpt_has_one_entry_per_matrix_and_layer(rng):
  cfg = GPTConfig(**TINY_GPT)
  model = GPT(cfg, rngs=nnx.Rngs(_seed(rng)))
  tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, size=(4, 9)))
  report = diagnostics.layerwise_report(model, tokens, _lm_loss)
  per_layer = [f"blocks/{m}/kernel[{l}]" for m in
               ("attn/k", "attn/o", "attn/q", "attn/v", "mlp/fc", "mlp/proj")
               for l in range(cfg.n_layer)]
  assert sorted(e.name for e in report) == sorted(
      per_layer + ["lm_head/kernel", "wte/embedding"])
  by = {e.name: e for e in report}
  # Table 1: Q, K, V and O of one block share the activation A_rms.
  for l in range(cfg.n_layer):
    sts = {by[f"blocks/attn/{m}/kernel[{l}]"].st for m in "qkvo"}
    assert max(sts) == pytest.approx(min(sts), rel=1e-12)
  counts = np.bincount(np.asarray(tokens[:, :-1]).reshape(-1),
                       minlength=cfg.vocab_size)
  assert by["wte/embedding"].st == pytest.approx(32 / counts.max(), rel=1e-6)
  d = report.to_dict()
  assert json.loads(report.to_json()) == d
  assert len(d["entries"]) == len(report)
  table = report.table()
  assert all(e.name in table for e in report)
  assert report.spectral_layers() == [e.name for e in report if e.condition]


def test_zero_input_gives_zero_ranks_not_nan(rng):
  model = MLP((4, 5, 1), rngs=nnx.Rngs(_seed(rng)), param_dtype=F64)
  x = jnp.zeros((6, 4), F64)
  report = diagnostics.layerwise_report(model, (x, jnp.ones((6, 1), F64)),
                                        _mse)
  first = report.entries[0]
  assert first.nr == 0 and first.st == 0 and first.ratio == 0
  assert first.condition is False
  assert "NaN" not in report.to_json()


def test_report_rejects_bad_chunk_size():
  model = MLP((2, 3, 1), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="chunk_size"):
    diagnostics.layerwise_report(model, None, lambda m, b: 0.0, chunk_size=0)


def test_module_docstring_example_runs(capsys):
  block = re.search(r"Ten lines.*?::\n\n(.*?)\n(?=\S)", diagnostics.__doc__,
                    re.S).group(1)
  lines = [l[2:] for l in block.splitlines() if l.strip()]
  assert 5 <= len(lines) <= 11
  exec("\n".join(lines), {})
  out = capsys.readouterr().out
  assert "blocks/mlp/fc/kernel[1]" in out and "wte/embedding" in out


# ----------------------------------------------------------------- monitor


def test_monitor_records_nuclear_rank_and_passes_updates_through(rng):
  params = {"w": jnp.zeros((3, 5, 4)), "m": jnp.zeros((6, 7)),
            "b": jnp.zeros((4,))}
  tx = diagnostics.monitor_nuclear_rank(every=2)
  state = tx.init(params)
  assert state.nuclear_rank["b"] is None
  assert state.nuclear_rank["w"].shape == (3,)
  seen = []
  for step in range(3):
    g = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape)), params)
    out, state = jax.jit(tx.update)(g, state)
    jax.tree.map(np.testing.assert_array_equal, out, g)
    seen.append(g)
  # Recorded at steps 0 and 2 (every=2); step 1 kept step 0's value.
  last = seen[2]
  np.testing.assert_allclose(state.nuclear_rank["m"], np_nr(last["m"]),
                             rtol=1e-5)  # recorded in float32
  np.testing.assert_allclose(state.nuclear_rank["w"],
                             [np_nr(w) for w in last["w"]], rtol=1e-5)
  assert int(state.count) == 3


def test_monitor_rejects_bad_every():
  with pytest.raises(ValueError, match="every"):
    diagnostics.monitor_nuclear_rank(every=0)


# ---------------------------------------------------------- sown statistics


class _SharedInput(nnx.Module):
  """a and b multiply one array; c an equal copy of it (another array)."""

  def __init__(self, rngs):
    from spectral_jax.models import layers  # pylint: disable=g-import-not-at-top
    self.a, self.b, self.c = (layers.Linear(5, 4, rngs=rngs, param_dtype=F64)
                              for _ in range(3))

  def __call__(self, x):
    return self.a(x) + self.b(x) + self.c(x * 1.0)


@pytest.mark.parametrize("distinct", [True, False])
def test_sown_statistics_counts_each_array_once(rng, distinct):
  model = _SharedInput(nnx.Rngs(_seed(rng)))
  x = rng.standard_normal((7, 5))
  grams, token_st = diagnostics.sown_statistics(model, jnp.asarray(x),
                                                distinct=distinct)
  # Identity, not contents, decides: c's input equals a's but is its own array.
  want = {"a/inputs", "c/inputs"} | (set() if distinct else {"b/inputs"})
  assert set(grams) == want and token_st == {}
  for g in grams.values():  # 7 rows ≥ 5 features: the 5 × 5 side, float64.
    np.testing.assert_allclose(g, x.T @ x, rtol=1e-12)
  assert nnx.Module.sow.__qualname__ == "Module.sow"  # the patch is undone
