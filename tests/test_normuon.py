"""NorMuon (spectral_jax.neuron_norm) against NumPy float64 implementations of the
rule, written here from the paper (Li et al., arXiv:2510.05491, Algorithm 1)
and the authors' released update:

  O   ← Newton–Schulz(m̂)                         (Muon; torch rule below)
  v   ← β2·v + (1 − β2)·mean_in(O ⊙ O)           (one entry per output neuron)
  Ô   ← O / (√v + ε)                             (each neuron's row/column)
  u   ← Ô·‖O‖_F/‖Ô‖_F, then Muon's √max(1, out/in)   (authors' code)
   or ← Ô·0.2·√(out·in)/‖Ô‖_F                          (Algorithm 1's step size)
  W   ← W·(1 − lr·wd) − lr·u

Tolerances: float64 1e-6 (the issue's bound; measured ~1e-15). float32: the
bound test_torch_parity.py uses for ten float32 Muon steps (1e-5); the
normalisation adds a few roundings (each ≤ 2^-24 relative) per step on top of
the Newton–Schulz error it bounds (measured ~3e-7).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spectral_jax import neuron_norm as nm
from spectral_jax.labels import MuonDimensionNumbers
from references import torch_newton_schulz


def _neuron_normalise(o, v, beta2, eps, rms):
  """Rows of an out × in ``o`` are neurons."""
  v = beta2 * v + (1 - beta2) * np.mean(o * o, axis=1)
  oh = o / (np.sqrt(v)[:, None] + eps)
  target = np.linalg.norm(o) if rms is None else rms * np.sqrt(o.size)
  return oh * target / np.linalg.norm(oh), v


def _numpy_normuon(ws, grads, lr, mu, beta2, wd, nesterov, rms):
  """Ten steps of NorMuon with torch's momentum on out × in float64 arrays."""
  ws = [w.copy() for w in ws]
  bufs = [np.zeros_like(w) for w in ws]
  vs = [np.zeros(w.shape[0]) for w in ws]
  for g_step in grads:
    for i, g in enumerate(g_step):
      bufs[i] = mu * bufs[i] + (1 - mu) * g
      o = torch_newton_schulz((1 - mu) * g + mu * bufs[i] if nesterov else bufs[i])
      u, vs[i] = _neuron_normalise(o, vs[i], beta2, 1e-8, rms)
      if rms is None:
        u = u * np.sqrt(max(1.0, o.shape[0] / o.shape[1]))
      ws[i] = ws[i] * (1 - lr * wd) - lr * u
  return ws


def _run(tx, ws, grads, dtype):
  params = {f"w{i}": jnp.asarray(w, dtype) for i, w in enumerate(ws)}
  state = tx.init(params)
  step = jax.jit(tx.update)
  for g_step in grads:
    g = {f"w{i}": jnp.asarray(x, dtype) for i, x in enumerate(g_step)}
    updates, state = step(g, state, params)
    params = optax.apply_updates(params, updates)
  return [np.asarray(params[f"w{i}"], np.float64) for i in range(len(ws))]


def _rel_err(got, want):
  return max(np.max(np.abs(g - w)) / np.max(np.abs(w))
             for g, w in zip(got, want))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-6),
                                        (np.float32, 1e-5)])
@pytest.mark.parametrize("nesterov, rms", [(True, None), (False, None),
                                           (False, 0.2)])
def test_normuon_matches_numpy_rule(rng, dtype, tol, nesterov, rms):
  shapes = [(12, 20), (20, 12), (16, 16)]  # out × in: wide, tall, square
  ws = [rng.standard_normal(s) for s in shapes]
  grads = [[rng.standard_normal(s) for s in shapes] for _ in range(10)]
  lr, mu, beta2, wd = 0.02, 0.95, float(rng.uniform(0.5, 0.99)), 0.1
  want = _numpy_normuon(ws, grads, lr, mu, beta2, wd, nesterov, rms)
  tx = nm.normuon(lr, beta=mu, eps=1e-7, weight_decay=wd, nesterov=nesterov,
                  beta2=beta2, momentum_style="torch", weight_layout="torch",
                  consistent_rms=rms)
  assert _rel_err(_run(tx, ws, grads, dtype), want) <= tol


def test_match_rms_adamw_is_the_papers_step_size(rng):
  shapes = [(12, 20), (16, 8)]
  ws = [rng.standard_normal(s) for s in shapes]
  grads = [[rng.standard_normal(s) for s in shapes] for _ in range(3)]
  kw = dict(nesterov=False, momentum_style="torch", weight_layout="torch")
  a = _run(nm.normuon(0.02, consistent_rms=0.2, **kw), ws, grads, np.float64)
  b = _run(nm.normuon(0.02, adjust_lr="match_rms_adamw", **kw), ws, grads,
           np.float64)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12),
                                        (np.float32, 1e-5)])
@pytest.mark.parametrize("rms", [None, 0.3])
def test_scale_by_normuon_reads_neurons_through_dimension_numbers(
    rng, dtype, tol, rms):
  """A (layers, fan_in, fan_out) Flax leaf: each layer is a matrix and each
  output column a neuron. Only the normalisation runs, so float64 agrees to
  rounding (1e-12) and float32 to a few roundings of 2^-24 (1e-5 is loose)."""
  shape, beta2 = (3, 10, 6), 0.9
  dims = {"w": MuonDimensionNumbers(reduction_axis=1, output_axis=2)}
  tx = nm.scale_by_normuon(beta2, 1e-8, rms=rms, weight_dimension_numbers=dims)
  state = tx.init({"w": jnp.zeros(shape, dtype)})
  vs = [np.zeros(shape[2]) for _ in range(shape[0])]
  step = jax.jit(tx.update)
  for _ in range(10):
    o = rng.standard_normal(shape) * rng.uniform(0.1, 3.0, size=(1, 1, 6))
    got, state = step({"w": jnp.asarray(o, dtype)}, state)
    for layer in range(shape[0]):
      want, vs[layer] = _neuron_normalise(o[layer].T, vs[layer], beta2, 1e-8,
                                          rms)
      np.testing.assert_allclose(np.asarray(got["w"][layer], np.float64),
                                 want.T, rtol=tol, atol=tol * np.abs(want).max())


def test_zero_update_stays_zero():
  tx = nm.scale_by_normuon()
  params = {"w": jnp.zeros((4, 3))}
  out, state = tx.update(params, tx.init(params))
  np.testing.assert_array_equal(out["w"], 0.0)
  np.testing.assert_array_equal(state.nu["w"], 0.0)


def test_non_matrix_leaves_take_adamw(rng):
  params = {"w": jnp.asarray(rng.standard_normal((6, 4))),
            "b": jnp.asarray(rng.standard_normal(4))}
  grads = jax.tree.map(lambda x: x * 0.5, params)
  # As in sj.muon: AdamW with the same eps and Nesterov flag, no decay.
  tx, adam = nm.normuon(0.01), optax.adamw(
      0.01, eps=1e-8, weight_decay=0.0, nesterov=True)
  got, _ = tx.update(grads, tx.init(params), params)
  want, _ = adam.update({"b": grads["b"]}, adam.init({"b": params["b"]}),
                        {"b": params["b"]})
  np.testing.assert_array_equal(got["b"], want["b"])


def test_injected_hyperparameters_match_plain(rng):
  params = {"w": jnp.asarray(rng.standard_normal((8, 5)), jnp.float64)}
  grads = [{"w": jnp.asarray(rng.standard_normal((8, 5)))} for _ in range(3)]
  plain = nm.normuon(0.02, beta2=0.9)
  injected = optax.inject_hyperparams(nm.normuon, static_args=("ns_steps",))(
      0.02, beta2=0.9)
  outs = []
  for tx in (plain, injected):
    state, p = tx.init(params), params
    for g in grads:
      u, state = jax.jit(tx.update)(g, state, p)
      p = optax.apply_updates(p, u)
    outs.append(p["w"])
  np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(beta2=1.0), r"beta2=1.0 is not allowed.*\[0, 1\)"),
    (dict(beta2=-0.1), r"beta2=-0.1"),
    (dict(normuon_eps=-1e-8), "normuon_eps=-1e-08"),
    (dict(consistent_rms=0.0), r"rms=0.0.*> 0"),
    (dict(consistent_rms=0.2, adjust_lr="original"), "pass one of them"),
    (dict(adjust_lr="rms"), "adjust_lr='rms'"),
    (dict(beta=1.0), "beta=1.0"),
    (dict(weight_layout="jax"), "weight_layout='jax'"),
    (dict(weight_layout="torch",
          muon_weight_dimension_numbers={"w": MuonDimensionNumbers()}),
     "weight_layout='torch'"),
    (dict(learning_rate=-0.1), "learning_rate=-0.1"),
    (dict(adam_b2=1.0), "adam_b2=1.0"),
])
def test_bad_arguments_are_refused(kwargs, match):
  kwargs = {"learning_rate": 0.02, **kwargs}
  with pytest.raises(ValueError, match=match):
    nm.normuon(**kwargs)


def test_scale_by_normuon_refuses_bad_arguments():
  for kwargs, match in ((dict(beta2=1.5), "beta2=1.5"),
                        (dict(eps=float("nan")), "eps=nan"),
                        (dict(rms=-1.0), "rms=-1.0")):
    with pytest.raises(ValueError, match=match):
      nm.scale_by_normuon(**kwargs)


def test_train_normuon_arm_balances_neurons_on_its_first_step(rng):
  """train-gpt's normuon arm: at step 1, v = (1 − β2)·(each neuron's mean
  square), so within a layer every output column of Ô has the same norm (up
  to ε)."""
  import importlib  # pylint: disable=g-import-not-at-top
  T = importlib.import_module("spectral_jax.training.train")
  cfg = T.preset("cpu-small", optimizer="normuon", warmup_steps=0)
  params = {"blocks": {"w": jnp.asarray(rng.standard_normal((2, 8, 12)),
                                        jnp.float32)},
            "wte": {"embedding": jnp.asarray(rng.standard_normal((5, 8)),
                                             jnp.float32)}}
  grads = jax.tree.map(
      lambda p: jnp.asarray(rng.standard_normal(p.shape), jnp.float32), params)
  tx = T.make_optimizer(cfg, params)
  upd, _ = tx.update(grads, tx.init(params), params)
  cols = np.linalg.norm(np.asarray(upd["blocks"]["w"], np.float64), axis=1)
  # float32: a few roundings per entry; columns of Muon's own update differ
  # by 10-50 %.
  np.testing.assert_allclose(cols / cols.mean(axis=1, keepdims=True), 1.0,
                             rtol=1e-5)
