"""Tests for spectral_jax.alias: muon as an optax.contrib.muon drop-in, specgd.

Parity tests run optax.contrib.muon and ours side by side on the same random
float32 gradients for several steps. Both do the same float32 arithmetic in a
different order (our normaliser is scaled against under/overflow, equal
shapes are batched), and five Newton–Schulz steps amplify the last-bit
differences; we measured max relative differences of 1e-6 to 4e-6, so the
tolerance is 3e-5 · max|u| per leaf.
"""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import spectral_jax
from spectral_jax import MuonDimensionNumbers
from references import textbook_newton_schulz

_RTOL = 3e-5


def _randn(rng, shape, dtype=jnp.float32):
  if jnp.issubdtype(dtype, jnp.complexfloating):
    return jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape),
                       dtype)
  return jnp.asarray(rng.normal(size=shape), dtype)


def _params(rng, dtype=jnp.float32):
  # Two equal-shape matrices (one batched group), a tall one and a bias
  # (Adam). Few leaves keep compile times small.
  return {"q": _randn(rng, (8, 12), dtype), "k": _randn(rng, (8, 12), dtype),
          "out": _randn(rng, (12, 6), dtype), "bias": _randn(rng, (6,), dtype)}


def _assert_close(ours, ref, rtol=_RTOL, what=""):
  for path, (a, b) in zip(
      [p for p, _ in jax.tree_util.tree_leaves_with_path(ref)],
      zip(jax.tree.leaves(ours), jax.tree.leaves(ref))):
    scale = float(jnp.max(jnp.abs(b))) or 1.0
    np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                               atol=rtol * scale, rtol=0,
                               err_msg=f"{what} {jax.tree_util.keystr(path)}")


def _parity(rng, kwargs, params=None, steps=3, rtol=_RTOL, lr=1e-2):
  params = _params(rng) if params is None else params
  ref_tx = optax.contrib.muon(lr, **kwargs)
  our_tx = spectral_jax.muon(lr, **kwargs)
  ref_s, our_s = ref_tx.init(params), our_tx.init(params)
  assert jax.tree.structure(ref_s) == jax.tree.structure(our_s)
  p_ref = p_our = params
  # jit: one compile per optimizer instead of op-by-op dispatch (10× faster).
  ref_up, our_up = jax.jit(ref_tx.update), jax.jit(our_tx.update)
  for t in range(steps):
    g = jax.tree.map(lambda x: _randn(rng, x.shape, x.dtype), params)
    u_ref, ref_s = ref_up(g, ref_s, p_ref)
    u_our, our_s = our_up(g, our_s, p_our)
    _assert_close(u_our, u_ref, rtol, what=f"{kwargs} step {t}")
    p_ref = optax.apply_updates(p_ref, u_ref)
    p_our = optax.apply_updates(p_our, u_ref)
  _assert_close(our_s, ref_s, rtol, what=f"{kwargs} state")
  return u_our


# Options are combined where they touch different parts of the step, so that
# each compile covers several (compiles dominate this file's runtime).
@pytest.mark.parametrize("kwargs", [
    {},
    {"nesterov": False, "consistent_rms": 0.2, "adam_b1": 0.8,
     "adam_b2": 0.99, "adam_eps_root": 1e-8, "adam_weight_decay": 0.01,
     "adam_learning_rate": 3e-3},
    {"adaptive": True, "weight_decay": 0.1, "weight_decay_mask": {
        "q": True, "k": False, "out": True, "bias": False}},
    {"preconditioning": "spectral", "mu_dtype": jnp.bfloat16},
    {"preconditioning": "aol", "ns_coeffs": "dion"},
    {"preconditioning": "schatten", "ns_steps": 6,
     "ns_coeffs": ((4.0, -6.0, 2.5), (3.4, -4.7, 2.0), (2.0, -1.5, 0.5))},
    {"nesterov": False},
    {"adaptive": True},
    {"mu_dtype": jnp.bfloat16},
    {"ns_coeffs": "standard", "ns_steps": 3},
    {"weight_decay": 0.05, "weight_decay_mask": lambda p:
     jax.tree.map(lambda x: x.ndim == 2, p)},
    {"beta": 0.8, "eps": 1e-6},
    {"adam_learning_rate": optax.linear_schedule(1e-2, 1e-3, 3)},
], ids=lambda kw: ",".join(sorted(kw)) or "defaults")
def test_parity_with_optax(rng, kwargs):
  _parity(rng, kwargs)


def test_parity_complex64(rng):
  params = {"w": _randn(rng, (6, 9), jnp.complex64),
            "v": _randn(rng, (6, 9), jnp.complex64),
            "b": _randn(rng, (9,), jnp.complex64)}
  u = _parity(rng, {"adaptive": True, "preconditioning": "aol"},
              params=params)
  assert u["w"].dtype == jnp.complex64
  assert float(jnp.max(jnp.abs(u["w"].imag))) > 0


def test_parity_dimension_numbers_tree_with_prefix_none(rng):
  params = {"blocks": {"w": _randn(rng, (3, 8, 12)), "b": _randn(rng, (3, 12))},
            "head": {"w": _randn(rng, (12, 5)), "v": _randn(rng, (12, 5))},
            "emb": _randn(rng, (10, 8)),
            "c": _randn(rng, (3, 3, 4, 6)), "d": _randn(rng, (2, 5, 3))}
  dims = {"blocks": {"w": MuonDimensionNumbers(1, 2), "b": None},
          "head": None,  # prefix None: the whole subtree goes to Adam.
          "emb": MuonDimensionNumbers(0, 1),
          # Conv-like: several reduction axes; split output axes.
          "c": MuonDimensionNumbers((0, 1, 2), 3),
          "d": MuonDimensionNumbers(1, (0, 2))}
  _parity(rng, {"muon_weight_dimension_numbers": dims}, params=params)


def test_parity_dimension_numbers_callable(rng):
  params = dict(_params(rng), conv=_randn(rng, (3, 4, 5)))
  fn = lambda p: jax.tree.map(
      lambda x: MuonDimensionNumbers(x.ndim - 2, x.ndim - 1)
      if x.ndim >= 2 else None, p)
  _parity(rng, {"muon_weight_dimension_numbers": fn}, params=params)
  u = spectral_jax.muon(1e-2, muon_weight_dimension_numbers=fn)
  state = u.init(params)
  assert not isinstance(state[0]["muon"][0][0][1]["conv"], optax.MaskedNode)
  assert isinstance(state[0]["muon"][0][0][1]["bias"], optax.MaskedNode)


def test_state_layout_matches_optax(rng):
  params = _params(rng)
  ours = spectral_jax.muon(1e-2).init(params)
  ref = optax.contrib.muon(1e-2).init(params)
  assert jax.tree.structure(ours) == jax.tree.structure(ref)
  mu = ours[0]["muon"][0][0][1]
  assert isinstance(mu["bias"], optax.MaskedNode)
  assert mu["q"].shape == params["q"].shape


def test_inject_hyperparams_learning_rate(rng):
  params = _params(rng)
  grads = jax.tree.map(lambda x: _randn(rng, x.shape), params)
  tx = optax.inject_hyperparams(spectral_jax.muon)(learning_rate=0.1)
  update = jax.jit(tx.update)
  state = tx.init(params)
  u1, _ = update(grads, state, params)
  state.hyperparams["learning_rate"] = jnp.asarray(0.3, jnp.float32)
  u3, _ = update(grads, state, params)
  # Muon and Adam branches are both linear in the learning rate.
  _assert_close(u3, jax.tree.map(lambda x: 3 * x, u1), 1e-5)
  ref = optax.inject_hyperparams(optax.contrib.muon)(learning_rate=0.3)
  u_ref, _ = ref.update(grads, ref.init(params), params)
  _assert_close(u3, u_ref)


def test_first_step_exact_polar_matches_numpy(rng):
  # First Nesterov step: m̂ = (β/(1+β) + 1) g, a positive multiple of g, so
  # the update is −lr·√max(1, fan_out/fan_in)·polar(g).
  params = {"w": _randn(rng, (6, 10)), "t": _randn(rng, (10, 4))}
  grads = jax.tree.map(lambda x: _randn(rng, x.shape), params)
  lr = 0.05
  for method in ("svd",):  # eigh, qdwh: tests/test_transforms.py
    tx = spectral_jax.muon(lr, polar_method=method)
    u, _ = tx.update(grads, tx.init(params), params)
    for name in ("w", "t"):
      g = np.asarray(grads[name], np.float64)
      uu, _, vh = np.linalg.svd(g, full_matrices=False)
      fan_in, fan_out = g.shape
      want = -lr * np.sqrt(max(1.0, fan_out / fan_in)) * (uu @ vh)
      # float32 SVD / eigh of well-conditioned 6×10: ~1e-5 relative.
      np.testing.assert_allclose(u[name], want, atol=2e-4 * lr, rtol=0,
                                 err_msg=method)


def test_named_schedules_and_compute_dtype(rng):
  params = {"w": _randn(rng, (16, 32))}
  grads = {"w": _randn(rng, (16, 32))}
  g = np.asarray(grads["w"], np.float64)
  uu, _, vh = np.linalg.svd(g, full_matrices=False)
  exact = -1e-2 * np.sqrt(2.0) * (uu @ vh)
  err = {}
  for coeffs in ("jordan", "polar_express", "cubic"):
    tx = spectral_jax.muon(1e-2, ns_coeffs=coeffs, ns_steps=8)
    u, _ = tx.update(grads, tx.init(params), params)
    err[coeffs] = np.linalg.norm(u["w"] - exact) / np.linalg.norm(exact)
  # Polar Express converges, Jordan's quintic plateaus at O(0.1) error.
  assert err["polar_express"] < 0.05 < err["jordan"], err
  tx = spectral_jax.muon(1e-2, ns_coeffs="jordan", ns_steps=8)
  u_jordan, _ = tx.update(grads, tx.init(params), params)
  tx = spectral_jax.muon(1e-2, ns_coeffs="standard", ns_steps=8)
  u_std, _ = tx.update(grads, tx.init(params), params)
  _assert_close(u_jordan, u_std, 1e-6)
  # bfloat16 iteration, float32 state: same update to bf16 accuracy.
  tx = spectral_jax.muon(1e-2, compute_dtype=jnp.bfloat16)
  state = tx.init(params)
  u_bf, state = tx.update(grads, state, params)
  tx32 = spectral_jax.muon(1e-2)
  u_32, _ = tx32.update(grads, tx32.init(params), params)
  assert u_bf["w"].dtype == jnp.float32
  assert state[0]["muon"][0][0][1]["w"].dtype == jnp.float32
  # A true bf16 iteration is ~6-8% off the float32 one. Yardstick: the
  # textbook bf16 iteration on g (at step 1 the Nesterov momentum is a
  # positive multiple of g; the iteration is scale invariant), times the
  # update's scale -lr·√(32/16): ours may not be worse than 1.5x its error.
  ref = -1e-2 * np.sqrt(2.0) * textbook_newton_schulz(
      grads["w"], [(3.4445, -4.7750, 2.0315)] * 5, dtype=jnp.bfloat16)
  u32 = np.asarray(u_32["w"], np.float64)
  err = lambda u: np.linalg.norm(np.asarray(u, np.float64) - u32) / (
      np.linalg.norm(u32))
  assert err(u_bf["w"]) <= 1.5 * err(ref)


def _chain_pair(make):
  return make(spectral_jax.muon(1e-2)), make(optax.contrib.muon(1e-2))


@pytest.mark.parametrize("wrapper", ["chain", "multisteps", "apply_if_finite"])
def test_composition_under_jit(rng, wrapper):
  make = {
      "chain": lambda tx: optax.chain(optax.clip_by_global_norm(1.0), tx),
      "multisteps": lambda tx: optax.MultiSteps(tx, every_k_schedule=2),
      "apply_if_finite": lambda tx: optax.apply_if_finite(tx, 3),
  }[wrapper]
  ours, ref = _chain_pair(make)
  params = _params(rng)
  s_our, s_ref = ours.init(params), ref.init(params)
  up_our, up_ref = jax.jit(ours.update), jax.jit(ref.update)
  for _ in range(4):
    g = jax.tree.map(lambda x: _randn(rng, x.shape), params)
    u_our, s_our = up_our(g, s_our, params)
    u_ref, s_ref = up_ref(g, s_ref, params)
    _assert_close(u_our, u_ref, what=wrapper)


def test_apply_if_finite_skips_nonfinite_step(rng):
  params = _params(rng)
  tx = optax.apply_if_finite(spectral_jax.muon(1e-2), 3)
  state = tx.init(params)
  g = jax.tree.map(lambda x: _randn(rng, x.shape), params)
  g["q"] = g["q"].at[0, 0].set(jnp.nan)
  u, new_state = jax.jit(tx.update)(g, state, params)
  for leaf in jax.tree.leaves(u):
    assert np.all(np.asarray(leaf) == 0)
  assert int(new_state.notfinite_count) == 1
  # Inner state untouched: the next finite step is the first Muon step.
  _assert_close(new_state.inner_state, state.inner_state, 0.0)


def test_nonfinite_leaf_stays_in_its_leaf(rng):
  # Documented behaviour without apply_if_finite: the NaN leaf's update is
  # NaN; the other leaf of its batched group and all other leaves are exactly
  # what they would be with a finite gradient there.
  params = _params(rng)
  g = jax.tree.map(lambda x: _randn(rng, x.shape), params)
  bad = dict(g, q=g["q"].at[1, 2].set(jnp.inf))
  tx = spectral_jax.muon(1e-2)
  update = jax.jit(tx.update)
  u_bad, _ = update(bad, tx.init(params), params)
  u_ok, _ = update(g, tx.init(params), params)
  assert np.all(np.isnan(np.asarray(u_bad["q"])))
  for name in ("k", "out", "bias"):
    np.testing.assert_array_equal(u_bad[name], u_ok[name], err_msg=name)


def test_nnx_optimizer_matches_optax(rng):
  def make_model():
    return nnx.Sequential(nnx.Linear(4, 8, rngs=nnx.Rngs(0)), nnx.relu,
                          nnx.Linear(8, 3, rngs=nnx.Rngs(1)))

  x = _randn(rng, (16, 4))
  y = _randn(rng, (16, 3))

  def train(tx):
    model = make_model()
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
      loss, grads = nnx.value_and_grad(
          lambda m: jnp.mean((m(x) - y) ** 2))(model)
      opt.update(model, grads)
      return loss

    losses = [float(step(model, opt)) for _ in range(4)]
    return nnx.state(model, nnx.Param), losses

  # Ours with the spec nnx_dimension_numbers builds vs optax's default rule
  # (the same leaves are matrices here).
  spec = spectral_jax.nnx_dimension_numbers(make_model())
  ours, l_ours = train(spectral_jax.muon(
      1e-2, muon_weight_dimension_numbers=spec))
  ref, _ = train(optax.contrib.muon(1e-2))
  _assert_close(ours, ref)
  assert l_ours[-1] < l_ours[0]


# ---------------------------------------------------------------- specgd --
def test_specgd_step_matches_numpy(rng):
  params = {"w": _randn(rng, (5, 9), jnp.float64),
            "b": _randn(rng, (9,), jnp.float64)}
  grads = jax.tree.map(lambda x: _randn(rng, x.shape, x.dtype), params)
  lr, lip = 0.1, 2.5
  tx = spectral_jax.specgd(lr, lipschitz=lip, other=optax.sgd(0.5))
  u, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  g = np.asarray(grads["w"])
  uu, s, vh = np.linalg.svd(g, full_matrices=False)
  np.testing.assert_allclose(u["w"], -lr * s.sum() / lip * (uu @ vh),
                             rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(u["b"], -0.5 * np.asarray(grads["b"]),
                             rtol=1e-12)


def test_specgd_default_other_is_adamw(rng):
  params = {"w": _randn(rng, (5, 9)), "b": _randn(rng, (9,))}
  grads = jax.tree.map(lambda x: _randn(rng, x.shape), params)
  tx = spectral_jax.specgd(0.1)
  u, _ = tx.update(grads, tx.init(params), params)
  ref = optax.adamw(0.1)
  u_ref, _ = ref.update({"b": grads["b"]}, ref.init({"b": params["b"]}),
                        {"b": params["b"]})
  np.testing.assert_allclose(u["b"], u_ref["b"], rtol=1e-6)


# ------------------------------------------------------------- bad input --
@pytest.mark.parametrize("kwargs, name", [
    ({"polar_method": "cholesky"}, "polar_method"),
    ({"ns_coeffs": "chebyshev"}, "ns_coeffs"),
    ({"preconditioning": "newton"}, "preconditioning"),
    ({"ns_steps": 0}, "ns_steps"),
    ({"ns_steps": 2.5}, "ns_steps"),
    ({"beta": 1.0}, "beta"),
    ({"beta": -0.1}, "beta"),
    ({"learning_rate": -1e-3}, "learning_rate"),
    ({"adam_learning_rate": -1.0}, "adam_learning_rate"),
    ({"ns_coeffs": "dion", "ns_steps": 3}, "ns_steps"),
    ({"ns_coeffs": ((1.0, 2.0),)}, "ns_coeffs"),
    ({"polar_method": "svd", "preconditioning": "aol"}, "preconditioning"),
    ({"polar_method": "svd", "compute_dtype": jnp.bfloat16}, "compute_dtype"),
])
def test_muon_bad_input_at_build_time(kwargs, name):
  kwargs = dict(kwargs)
  lr = kwargs.pop("learning_rate", 1e-3)
  with pytest.raises(ValueError, match=name):
    spectral_jax.muon(lr, **kwargs)


@pytest.mark.parametrize("kwargs, name", [
    ({"lipschitz": 0.0}, "lipschitz"),
    ({"lipschitz": -2.0}, "lipschitz"),
    ({"polar_method": "lu"}, "method"),
    ({"polar_method": "newton_schulz", "ns_coeffs": "nope"}, "ns_coeffs"),
    ({"learning_rate": -0.1}, "learning_rate"),
])
def test_specgd_bad_input_at_build_time(kwargs, name):
  kwargs = dict(kwargs)
  lr = kwargs.pop("learning_rate", 1e-3)
  with pytest.raises(ValueError, match=name):
    spectral_jax.specgd(lr, **kwargs)


def test_bad_input_message_lists_allowed_values():
  with pytest.raises(ValueError, match="svd"):
    spectral_jax.muon(1e-3, polar_method="cholesky")
  with pytest.raises(ValueError, match="polar_express"):
    spectral_jax.muon(1e-3, ns_coeffs="chebyshev")
  with pytest.raises(ValueError, match="schatten"):
    spectral_jax.muon(1e-3, preconditioning="newton")


def test_zero_gradients_give_zero_updates(rng):
  # Zero params too: AdamW's (default) weight decay would move them otherwise.
  zeros = jax.tree.map(jnp.zeros_like, _params(rng))
  params = zeros
  # Every method on its own: tests/test_transforms.py. Here: the aliases.
  txs = [spectral_jax.muon(1e-2, adaptive=True), spectral_jax.specgd(1e-2)]
  for tx in txs:
    u, _ = tx.update(zeros, tx.init(params), params)
    for leaf in jax.tree.leaves(u):
      assert np.all(np.asarray(leaf) == 0)
