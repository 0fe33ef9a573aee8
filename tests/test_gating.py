"""Tests for spectral_jax.gating: the branch taken follows nr(G) ≥ margin·st(A).

Reference directions are NumPy float64 SVDs: the spectral slice must equal
‖G‖_*·U Vᵀ and the Euclidean slice G itself (tolerance 1e-10: float64 SVD).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spectral_jax import diagnostics
from spectral_jax import gating
from spectral_jax.models import MLP


def np_nr(g):
  s = np.linalg.svd(g, compute_uv=False)
  return s.sum() ** 2 / (s**2).sum()


def np_specgd(g):
  u, s, vt = np.linalg.svd(g, full_matrices=False)
  return s.sum() * u @ vt


def _tree(rng):
  return {"w": jnp.asarray(rng.normal(size=(3, 6, 5))),
          "m": jnp.asarray(rng.normal(size=(7, 4))),
          "b": jnp.asarray(rng.normal(size=(5,)))}


def test_each_slice_takes_the_branch_the_condition_picks(rng):
  grads = _tree(rng)
  nr_w = [np_nr(np.asarray(g)) for g in grads["w"]]
  nr_m = np_nr(np.asarray(grads["m"]))
  # Layer 0 and the 2-D leaf: st just below nr (spectral); layer 1 just
  # above (Euclidean); layer 2 st = 0 (spectral: any nonzero nr wins).
  st = {"w": jnp.asarray([0.99 * nr_w[0], 1.01 * nr_w[1], 0.0]),
        "m": 0.99 * nr_m, "b": None}
  tx = gating.scale_by_gated_spectral()
  updates, state = jax.jit(tx.update)(grads, tx.init(grads), None,
                                      stable_rank=st)
  np.testing.assert_array_equal(state.spectral["w"], [True, False, True])
  assert bool(state.spectral["m"]) and state.spectral["b"] is None
  np.testing.assert_allclose(state.nuclear_rank["w"], nr_w, rtol=1e-5)
  w = np.asarray(grads["w"])
  np.testing.assert_allclose(updates["w"][0], np_specgd(w[0]), atol=1e-10)
  np.testing.assert_allclose(updates["w"][1], w[1], atol=1e-12)
  np.testing.assert_allclose(updates["w"][2], np_specgd(w[2]), atol=1e-10)
  np.testing.assert_allclose(updates["m"], np_specgd(np.asarray(grads["m"])),
                             atol=1e-10)
  np.testing.assert_array_equal(updates["b"], grads["b"])  # always Euclidean


def test_margin_two_is_stricter_and_default_state_is_euclidean(rng):
  grads = _tree(rng)
  nr_m = np_nr(np.asarray(grads["m"]))
  st = {"w": 0.0, "m": 0.75 * nr_m, "b": None}  # nr ≥ st but nr < 2 st
  loose, strict = gating.scale_by_gated_spectral(), gating.scale_by_gated_spectral(margin=2.0)
  _, s1 = loose.update(grads, loose.init(grads), stable_rank=st)
  _, s2 = strict.update(grads, strict.init(grads), stable_rank=st)
  assert bool(s1.spectral["m"]) and not bool(s2.spectral["m"])
  # Never told st(A): +inf, so every matrix stays Euclidean.
  updates, s3 = loose.update(grads, loose.init(grads))
  assert not np.any(s3.spectral["w"]) and not bool(s3.spectral["m"])
  jax.tree.map(np.testing.assert_array_equal, updates, grads)
  # A state field set once is used on later steps.
  s4 = s3._replace(stable_rank={"w": jnp.zeros(3), "m": jnp.asarray(0.0),
                                "b": None})
  _, s5 = loose.update(grads, s4)
  assert np.all(s5.spectral["w"]) and bool(s5.spectral["m"])


def test_stable_rank_tree_from_report_feeds_the_optimizer(rng):
  model = MLP((4, 9, 1), rngs=nnx.Rngs(int(rng.integers(2**31))),
              param_dtype=jnp.float64)
  x = jnp.asarray(rng.normal(size=(12, 4)))
  y = jnp.asarray(rng.normal(size=(12, 1)))
  loss = lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2)
  report = diagnostics.layerwise_report(model, (x, y), loss)
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  tree = gating.stable_rank_tree(report, params)
  for i, e in enumerate(report):
    assert float(tree["layers"][i]["kernel"]) == pytest.approx(e.st, rel=1e-6)
  grads = nnx.to_pure_dict(nnx.grad(loss)(model, (x, y)))
  tx = gating.gated_specgd(0.1)
  _, state = tx.update(grads, tx.init(params), params, stable_rank=tree)
  for i, e in enumerate(report):
    assert bool(state[0].spectral["layers"][i]["kernel"]) == e.condition


def test_bad_arguments_raise(rng):
  with pytest.raises(ValueError, match="margin"):
    gating.scale_by_gated_spectral(margin=0.0)
  grads = _tree(rng)
  tx = gating.scale_by_gated_spectral()
  with pytest.raises(ValueError, match="stable_rank"):
    tx.update(grads, tx.init(grads), stable_rank={"w": 1.0})
