"""QK-clip (spectral_jax.attention_clip) and the GPT's sown attention-logit maxima,
against a NumPy float64 forward pass and the Kimi K2 rule written here:

  S_max^h = max over batch and causal pairs (i >= j) of q_i^h·k_j^h / √d_head
  γ_h = τ / S_max^h where S_max^h > τ, else 1
  W_q^h ← γ_h^α W_q^h,  W_k^h ← γ_h^(1−α) W_k^h  (head h = output columns
  h·d_head … (h+1)·d_head − 1 of each layer's kernel)

With float64 parameters the model and the reference agree to ~1e-12 (the
models' tests measure this), so 1e-9 leaves room for summation order only.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from spectral_jax import attention_clip as qk
from spectral_jax.models import GPT
from spectral_jax.models import GPTConfig

TINY = dict(vocab_size=23, context=12, n_layer=3, n_head=4, d_model=16,
            param_dtype=jnp.float64)


def _rms(x):
  return x / np.sqrt(np.mean(x**2, -1, keepdims=True) + 1e-6)


def _rope(x):
  t, hd = x.shape[-3], x.shape[-1]
  ang = np.arange(t)[:, None] * 10000.0 ** (-np.arange(hd // 2) / (hd // 2))
  cos, sin = np.cos(ang)[:, None], np.sin(ang)[:, None]
  x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
  return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


def _numpy_logit_max(p, tokens, n_head):
  """(n_layer, n_head) maxima from a float64 forward pass of the GPT."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
  x = p["wte"]["embedding"][tokens]
  b, t, d = x.shape
  hd = d // n_head
  out = []
  for i in range(p["blocks"]["attn"]["q"]["kernel"].shape[0]):
    w = jax.tree.map(lambda a: a[i], p["blocks"])
    a = _rms(x)
    q, k, v = (a @ w["attn"][n]["kernel"] for n in "qkv")
    q, k, v = (y.reshape(b, t, n_head, hd) for y in (q, k, v))
    s = np.einsum("bqhc,bkhc->bhqk", _rope(q), _rope(k)) / np.sqrt(hd)
    s = np.where(np.tril(np.ones((t, t), bool)), s, -np.inf)
    out.append(s.max(axis=(0, 2, 3)))
    pr = np.exp(s - s.max(-1, keepdims=True))
    pr /= pr.sum(-1, keepdims=True)
    x = x + np.einsum("bhqk,bkhc->bqhc", pr, v).reshape(b, t, d) @ w[
        "attn"]["o"]["kernel"]
    x = x + np.maximum(_rms(x) @ w["mlp"]["fc"]["kernel"], 0) ** 2 @ w[
        "mlp"]["proj"]["kernel"]
  return np.stack(out)


def _numpy_clip(kernel, s_max, tau, power):
  kernel = np.asarray(kernel, np.float64).copy()
  n_layer, n_head = s_max.shape
  hd = kernel.shape[-1] // n_head
  for layer in range(n_layer):
    for h in range(n_head):
      if s_max[layer, h] > tau:
        cols = slice(h * hd, (h + 1) * hd)
        kernel[layer, :, cols] *= (tau / s_max[layer, h]) ** power
  return kernel


def _model(rng, **kw):
  model = GPT(GPTConfig(**{**TINY, **kw}), rngs=nnx.Rngs(int(rng.integers(2**31))))
  return model, nnx.to_pure_dict(nnx.state(model, nnx.Param))


def _max(maxima):
  return np.asarray(maxima["blocks"]["attn"]["logit_max"][0])


def test_logit_maxima_equal_numpy(rng):
  model, params = _model(rng)
  tokens = rng.integers(0, TINY["vocab_size"], size=(3, 11))
  logits, maxima = qk.capture_logit_max(model, jnp.asarray(tokens))
  np.testing.assert_array_equal(logits, model(jnp.asarray(tokens)))
  want = _numpy_logit_max(params, tokens, TINY["n_head"])
  assert _max(maxima).shape == (TINY["n_layer"], TINY["n_head"])
  np.testing.assert_allclose(_max(maxima), want, rtol=1e-9, atol=1e-9)


def test_activation_capture_does_not_see_logit_maxima(rng):
  model, _ = _model(rng)
  _, inter = nnx.capture(model, nnx.Intermediate)(jnp.zeros((1, 4), jnp.int32))
  assert "logit_max" not in nnx.to_pure_dict(inter)["blocks"]["attn"]


@pytest.mark.parametrize("alpha", [0.5, 0.3])
def test_clip_equals_numpy_rule(rng, alpha):
  model, params = _model(rng)
  # Kernels scaled up so several heads' logits pass τ; τ between the
  # smallest and largest maxima so some heads are clipped and some not.
  params = jax.tree.map(lambda w: 3.0 * w, params)
  nnx.update(model, params)
  tokens = rng.integers(0, TINY["vocab_size"], size=(2, 12))
  _, maxima = qk.capture_logit_max(model, jnp.asarray(tokens))
  s_max = _numpy_logit_max(params, tokens, TINY["n_head"])
  tau = float(np.quantile(s_max, 0.5))
  assert 0 < (s_max > tau).sum() < s_max.size
  out = qk.qk_clip(params, maxima, tau, alpha=alpha)
  attn, new = params["blocks"]["attn"], out["blocks"]["attn"]
  for name, power in (("q", alpha), ("k", 1 - alpha)):
    want = _numpy_clip(attn[name]["kernel"], s_max, tau, power)
    np.testing.assert_allclose(new[name]["kernel"], want, rtol=1e-12)
  # Heads at or below τ and every other parameter: unchanged, bit for bit.
  hd = TINY["d_model"] // TINY["n_head"]
  for layer, h in zip(*np.nonzero(s_max <= tau)):
    cols = slice(h * hd, (h + 1) * hd)
    for name in "qk":
      np.testing.assert_array_equal(new[name]["kernel"][layer, :, cols],
                                    attn[name]["kernel"][layer, :, cols])
  rest = lambda p: {k: v for k, v in p.items() if k != "blocks"}
  jax.tree.map(np.testing.assert_array_equal, rest(out), rest(params))
  for name in ("v", "o"):
    np.testing.assert_array_equal(new[name]["kernel"], attn[name]["kernel"])
  # After the clip, the first layer (same inputs) has maxima min(S, τ): a
  # clipped head's logits scale by γ^α·γ^(1−α) = γ.
  nnx.update(model, out)
  _, after = qk.capture_logit_max(model, jnp.asarray(tokens))
  np.testing.assert_allclose(_max(after)[0], np.minimum(s_max[0], tau),
                             rtol=1e-9)


def test_clip_in_a_jitted_train_step(rng):
  """The composition the module docstring shows, with sj.muon, jitted."""
  import spectral_jax as sj
  model, params = _model(rng, param_dtype=jnp.float32)
  graphdef, _, rest = nnx.split(model, nnx.Param, ...)
  tx = sj.muon(0.05)
  opt_state = tx.init(params)
  tokens = jnp.asarray(rng.integers(0, TINY["vocab_size"], size=(2, 12)))

  def loss_fn(p, x):
    logits, maxima = qk.capture_logit_max(nnx.merge(graphdef, p, rest), x)
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits[:, :-1], x[:, 1:]).mean()
    return loss, maxima

  @jax.jit
  def step(p, opt_state, x, tau):
    (_, maxima), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, x)
    updates, opt_state = tx.update(grads, opt_state, p)
    stepped = optax.apply_updates(p, updates)
    return stepped, qk.qk_clip(stepped, maxima, tau), maxima

  stepped, clipped, maxima = step(params, opt_state, tokens, 0.5)
  s_max = _max(maxima)
  # The maxima are the pre-step forward pass's: the NumPy rule applied to the
  # stepped kernels gives the clipped ones. float32: τ/S, the power and the
  # product each round once (≤ 2^-24 relative), the power's exp/log a few
  # units more: 5 units of roundoff, 3e-7.
  for name, power in (("q", 0.5), ("k", 0.5)):
    want = _numpy_clip(stepped["blocks"]["attn"][name]["kernel"], s_max, 0.5,
                       power)
    np.testing.assert_allclose(clipped["blocks"]["attn"][name]["kernel"],
                               want, rtol=3e-7, atol=0)


@pytest.mark.parametrize("tau, match", [(0.0, "tau=0.0"), (-1.0, "tau=-1.0"),
                                        (float("inf"), "tau=inf"),
                                        ("5", "tau='5'")])
def test_bad_tau_is_refused(tau, match):
  maxima = {"attn": {"logit_max": (jnp.ones((2,)),)}}
  params = {"attn": {n: {"kernel": jnp.ones((4, 4))} for n in "qk"}}
  with pytest.raises(ValueError, match=match):
    qk.qk_clip(params, maxima, tau)


def test_bad_alpha_maxima_and_params_are_refused():
  maxima = {"attn": {"logit_max": (jnp.full((2,), 5.0),)}}
  params = {"attn": {n: {"kernel": jnp.ones((4, 4))} for n in "qk"}}
  with pytest.raises(ValueError, match="alpha=1.5"):
    qk.qk_clip(params, maxima, 1.0, alpha=1.5)
  with pytest.raises(ValueError, match="no sown 'logit_max'"):
    qk.qk_clip(params, {}, 1.0)
  with pytest.raises(ValueError, match="is not a sown 'logit_max'"):
    qk.qk_clip(params, {"attn": {"x": jnp.ones(2)}}, 1.0)
  with pytest.raises(ValueError, match="attn/k/kernel"):
    qk.qk_clip({"attn": {"q": params["attn"]["q"]}}, maxima, 1.0)
  with pytest.raises(ValueError, match=r"n_head=3"):
    qk.qk_clip(params, {"attn": {"logit_max": (jnp.ones((3,)),)}}, 1.0)


# ------------------------------------------------------------ train-gpt hook
def _train_lib():
  import importlib  # pylint: disable=g-import-not-at-top
  return importlib.import_module("spectral_jax.training.train")


def _tiny_config(**kw):
  base = dict(n_layer=2, n_head=2, d_model=16, context=16, batch_size=4,
              steps=8, log_every=2, eval_every=4, val_batches=1,
              track_every=0, warmup_steps=0, momentum_warmup_steps=4)
  return _train_lib().preset("cpu-small", **{**base, **kw})


@pytest.mark.heavy
def test_train_step_clips_after_the_update(rng):
  T = _train_lib()
  cfg = _tiny_config(optimizer="normuon")
  graphdef, params, rest = T.init_model(cfg, 256)
  x = jnp.asarray(rng.integers(0, 256, size=(4, 16)))
  y = jnp.asarray(rng.integers(0, 256, size=(4, 16)))
  maxima = jax.jit(lambda p: qk.capture_logit_max(
      nnx.merge(graphdef, p, rest), x)[1])(params)
  tau = float(np.median(_max(maxima)))  # about half the heads over τ
  tx = T.make_optimizer(cfg, params)
  state = T.TrainState(params, tx.init(params), jnp.zeros(2, jnp.uint32))
  plain, _ = jax.jit(T.make_train_step(graphdef, tx))(state, rest, x, y)
  clipped, _ = jax.jit(T.make_train_step(graphdef, tx, tau))(state, rest, x, y)
  want = qk.qk_clip(plain.params, maxima, tau)
  # Two jit programs of the same float32 arithmetic: reductions may be
  # ordered differently (~1e-6 relative in the gradients); the update enters
  # the weights times lr = 0.02, so 1e-5 of the weights' scale is loose.
  for name in "qk":
    got = np.asarray(clipped.params["blocks"]["attn"][name]["kernel"])
    ref = np.asarray(want["blocks"]["attn"][name]["kernel"])
    unclipped = np.asarray(plain.params["blocks"]["attn"][name]["kernel"])
    np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max())
    assert np.max(np.abs(got - unclipped)) > 1e-3 * np.abs(ref).max()


@pytest.mark.slow  # A short training run; the clip itself is tested above.
def test_qk_clip_trains_with_falling_loss(tmp_path):
  from spectral_jax.training import data as D  # pylint: disable=g-import-not-at-top
  text = ("def f(x):\n    return x * 2 + 1\n" * 40).encode()
  arr = np.frombuffer(text, np.uint8)
  data = D.TokenData("tiny", 256, (arr[:1000],), (arr[1000:],))
  summary = _train_lib().train(
      _tiny_config(optimizer="normuon", qk_clip=1.0), tmp_path, data=data,
      progress=False, plots=False)
  rows = _train_lib().read_metrics(tmp_path)
  val = [r["val_loss"] for r in rows if "val_loss" in r]
  assert summary["final_val_loss"] == val[-1] < val[0]


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_config_refuses_bad_qk_clip(value):
  with pytest.raises(ValueError, match="qk_clip"):
    _tiny_config(qk_clip=value)
