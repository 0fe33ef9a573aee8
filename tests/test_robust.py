"""Tests for spectral_jax.robust: non-finite gradients never corrupt a run.

The reference for a guarded optimizer is the same optimizer run, unguarded,
on the finite steps only: skipping a step must be exactly "the step never
happened" (the kept inner state bit for bit; a whole run to float32 rounding,
since two different jitted programs may fuse the arithmetic differently).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import spectral_jax
from spectral_jax import robust


def _params(rng):
  # Two equal-shaped matrices (grouped into one batched polar call by muon),
  # a differently shaped one and a vector (AdamW branch).
  return {
      "w1": jnp.asarray(rng.standard_normal((6, 4)), jnp.float32),
      "w2": jnp.asarray(rng.standard_normal((6, 4)), jnp.float32),
      "w3": jnp.asarray(rng.standard_normal((3, 5)), jnp.float32),
      "b": jnp.asarray(rng.standard_normal((5,)), jnp.float32),
  }


def _grads(rng, params):
  return jax.tree.map(
      lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)


def _poison(grads, leaf, value, rng):
  g = np.array(grads[leaf])
  idx = tuple(rng.integers(0, s) for s in g.shape)
  g[idx] = value
  return dict(grads, **{leaf: jnp.asarray(g)})


_OPTIMIZERS = {
    "muon": lambda: spectral_jax.muon(0.02),
    "muon_svd": lambda: spectral_jax.muon(0.02, polar_method="svd"),
    "specgd": lambda: spectral_jax.specgd(0.1),
    "specgd_ns": lambda: spectral_jax.specgd(0.1, polar_method="newton_schulz"),
}


def _assert_trees_equal(a, b, rtol=0.0):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    if rtol:
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol,
                                 atol=rtol)
    else:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("opt", ["muon", "specgd_ns"])
def test_skip_nonfinite_drops_step_and_keeps_state(rng, opt):
  # Which leaf and which non-finite value: drawn fresh each run.
  leaf = str(rng.choice(["w1", "w2", "w3", "b"]))
  bad = float(rng.choice([np.nan, np.inf, -np.inf]))
  params = _params(rng)
  tx = robust.skip_nonfinite(_OPTIMIZERS[opt]())
  state = tx.init(params)
  grads = _poison(_grads(rng, params), leaf, bad, rng)
  updates, new_state = jax.jit(tx.update)(grads, state, params)
  for u in jax.tree.leaves(updates):
    np.testing.assert_array_equal(np.asarray(u), 0.0)
  _assert_trees_equal(new_state.inner_state, state.inner_state)
  assert int(new_state.skipped) == 1 and int(new_state.total) == 1
  assert new_state.skipped.dtype == jnp.int32
  assert new_state.total.dtype == jnp.int32


@pytest.mark.parametrize("opt", ["muon", "specgd"])
@pytest.mark.parametrize("wrapper", ["skip_nonfinite", "apply_if_finite"])
def test_guarded_run_equals_unguarded_run_on_finite_steps(rng, opt, wrapper):
  """Four steps, two of them poisoned: the guarded run ends where the plain
  optimizer ends after only the two finite steps. Tolerance 1e-6: the two
  runs are different jitted programs, and XLA may fuse the float32 Adam
  arithmetic differently (observed: 1 ulp); counters are exact."""
  params0 = _params(rng)
  inner = _OPTIMIZERS[opt]()
  if wrapper == "skip_nonfinite":
    tx = robust.skip_nonfinite(inner)
  else:
    tx = optax.apply_if_finite(inner, max_consecutive_errors=10)
  bad_steps = {1, 2}
  steps = []
  for t in range(4):
    g = _grads(rng, params0)
    if t in bad_steps:
      g = _poison(g, ["w1", "b", "w3"][t % 3], np.nan, rng)
    steps.append(g)

  def run(opt_tx, grads_seq):
    params, state = params0, opt_tx.init(params0)
    upd = jax.jit(opt_tx.update)
    for g in grads_seq:
      u, state = upd(g, state, params)
      params = optax.apply_updates(params, u)
    return params, state

  params, state = run(tx, steps)
  ref_params, ref_state = run(
      inner, [g for t, g in enumerate(steps) if t not in bad_steps])
  _assert_trees_equal(params, ref_params, rtol=1e-6)
  _assert_trees_equal(state.inner_state, ref_state, rtol=1e-6)
  if wrapper == "skip_nonfinite":
    assert int(state.skipped) == 2 and int(state.total) == 4
  else:
    assert int(state.total_notfinite) == 2


def test_skip_nonfinite_never_gives_up_unlike_apply_if_finite(rng):
  """The documented difference: after max_consecutive_errors bad steps
  optax.apply_if_finite applies the NaN update; skip_nonfinite never does."""
  params = _params(rng)
  grads = _poison(_grads(rng, params), "w1", np.nan, rng)
  for wrapper in ("skip", "optax"):
    inner = optax.sgd(0.1)  # The wrappers' logic does not depend on inner.
    tx = (robust.skip_nonfinite(inner) if wrapper == "skip"
          else optax.apply_if_finite(inner, max_consecutive_errors=2))
    state = tx.init(params)
    p = params
    upd = jax.jit(tx.update)
    for _ in range(4):
      u, state = upd(grads, state, p)
      p = optax.apply_updates(p, u)
    finite = bool(robust.all_finite(p))
    assert finite == (wrapper == "skip"), wrapper
  assert int(state.total_notfinite) == 4


def test_check_updates_catches_inner_overflow(rng):
  """Finite gradients, non-finite updates (an inner that overflows)."""
  params = _params(rng)
  overflow = optax.scale(np.float32(3e38))  # finite factor, float32 overflow.
  grads = jax.tree.map(lambda g: 10.0 * g, _grads(rng, params))
  assert bool(robust.all_finite(grads))
  tx = robust.skip_nonfinite(overflow)
  u, s = tx.update(grads, tx.init(params), params)
  assert int(s.skipped) == 1
  assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u))
  tx = robust.skip_nonfinite(overflow, check_updates=False)
  u, s = tx.update(grads, tx.init(params), params)
  assert int(s.skipped) == 0
  assert not bool(robust.all_finite(u))


def test_check_updates_catches_state_overflow_in_muon_adam_branch(rng):
  """|g| = 1e20 on a vector leaf (float32): muon's AdamW branch, like
  optax.contrib.muon's, overflows ν to inf with finite (zero) updates, which
  would freeze that leaf for good. The guard skips the step instead, and the
  next ordinary step moves the leaf."""
  params = {"w": jnp.asarray(rng.standard_normal((6, 4)), jnp.float32),
            "b": jnp.zeros((4,), jnp.float32)}
  tx = robust.skip_nonfinite(spectral_jax.muon(0.01))
  state = tx.init(params)
  huge = jax.tree.map(lambda p: jnp.asarray(
      rng.standard_normal(p.shape) * 1e20, jnp.float32), params)
  u, state = tx.update(huge, state, params)
  assert int(state.skipped) == 1 and bool(robust.all_finite(state))
  assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u))
  ordinary = jax.tree.map(lambda p: jnp.ones_like(p), params)
  u, state = tx.update(ordinary, state, params)
  assert int(state.skipped) == 1
  assert np.all(np.asarray(u["b"]) != 0) and bool(robust.all_finite(state))


def test_empty_tree_and_zero_size_leaf(rng):
  tx = robust.skip_nonfinite(optax.sgd(0.1))
  u, s = tx.update({}, tx.init({}), {})
  assert u == {} and int(s.total) == 1 and int(s.skipped) == 0
  params = {"e": jnp.zeros((0, 3), jnp.float32),
            "v": jnp.asarray(rng.standard_normal(3), jnp.float32)}
  g = {"e": jnp.zeros((0, 3), jnp.float32), "v": jnp.asarray([1.0, np.nan, 0.0],
                                                             jnp.float32)}
  u, s = tx.update(g, tx.init(params), params)
  assert u["e"].shape == (0, 3) and int(s.skipped) == 1
  np.testing.assert_array_equal(np.asarray(u["v"]), 0.0)


def test_vmap_over_independent_runs(rng):
  """Per-run decisions under vmap: only the poisoned run is skipped."""
  w = jnp.asarray(rng.standard_normal((3, 4, 2)), jnp.float32)
  g = np.asarray(rng.standard_normal((3, 4, 2)), np.float32)
  g[1, 0, 0] = np.nan
  tx = robust.skip_nonfinite(spectral_jax.muon(0.02, polar_method="svd"))
  states = jax.vmap(tx.init)({"w": w})
  u, s = jax.jit(jax.vmap(tx.update))({"w": jnp.asarray(g)}, states, {"w": w})
  np.testing.assert_array_equal(np.asarray(s.skipped), [0, 1, 0])
  np.testing.assert_array_equal(np.asarray(u["w"][1]), 0.0)
  assert np.all(np.isfinite(np.asarray(u["w"])))
  assert np.all(np.abs(np.asarray(u["w"][0])) > 0)


def test_counters_saturate_at_int32_max(rng):
  params = _params(rng)
  tx = robust.skip_nonfinite(optax.sgd(0.1))
  big = jnp.asarray(np.iinfo(np.int32).max, jnp.int32)
  state = tx.init(params)._replace(skipped=big, total=big)
  _, s = tx.update(_poison(_grads(rng, params), "b", np.nan, rng), state,
                   params)
  assert int(s.skipped) == np.iinfo(np.int32).max
  assert int(s.total) == np.iinfo(np.int32).max


@pytest.mark.parametrize("bad", [None, "adam", object()])
def test_rejects_non_transformations(bad):
  with pytest.raises(ValueError, match=r"inner=.*optax\.GradientTransformation"):
    robust.skip_nonfinite(bad)
  with pytest.raises(ValueError, match=r"check_updates=1 .*True or False"):
    robust.skip_nonfinite(optax.sgd(0.1), check_updates=1)


# ---------------------------------------------------------------------------
# Unguarded optimizers: a bad leaf is loud, and stays in its own leaf.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("opt", sorted(_OPTIMIZERS))
def test_nonfinite_leaf_does_not_leak_into_other_leaves(rng, opt):
  """Without a guard, a NaN in one leaf makes that leaf's update NaN (never a
  silent zero) and leaves every other leaf's update and state exactly as if
  the bad leaf had been finite, even when w1 and w2 share one batched
  polar call."""
  leaf = str(rng.choice(["w1", "w2", "w3", "b"]))
  params = _params(rng)
  tx = _OPTIMIZERS[opt]()
  state = tx.init(params)
  grads = _grads(rng, params)
  bad_grads = _poison(grads, leaf, np.nan, rng)
  upd = jax.jit(tx.update)
  u_ref, s_ref = upd(grads, state, params)
  u_bad, s_bad = upd(bad_grads, state, params)
  assert np.isnan(np.asarray(u_bad[leaf])).any()
  for other in params:
    if other == leaf:
      continue
    np.testing.assert_array_equal(np.asarray(u_bad[other]),
                                  np.asarray(u_ref[other]), err_msg=other)
  # States: every array that is not (derived from) the bad leaf is unchanged.
  ref_leaves = jax.tree_util.tree_flatten_with_path(s_ref)[0]
  bad_leaves = jax.tree_util.tree_flatten_with_path(s_bad)[0]
  for (path, r), (_, b) in zip(ref_leaves, bad_leaves):
    if f"'{leaf}'" in jax.tree_util.keystr(path):
      continue
    np.testing.assert_array_equal(np.asarray(b), np.asarray(r),
                                  err_msg=jax.tree_util.keystr(path))
