"""Tests for the follow-up papers' code: sensing, image data, CNN/ViT, experiments.

References are NumPy float64 on fresh random inputs (``rng`` fixture).
Tolerances: float64 linear algebra agrees to ~1e-10; iterative solvers are
held to what their iteration count guarantees on these sizes.
"""

import json
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import spectral_jax
from experiments.lib import image_data
from experiments.lib import sensing
from spectral_jax import labels
from spectral_jax.models.cnn import CNN
from spectral_jax.models.vit import ViT
from spectral_jax.models.vit import ViTConfig


def _problem(rng, d1=6, d2=5, m=18, rank=1):
  key = jax.random.key(int(rng.integers(1 << 30)))
  return sensing.gaussian_sensing(key, d1, d2, m, rank, jnp.float64)


# --------------------------------------------------------------------------
# sensing
# --------------------------------------------------------------------------
def test_interpolation_against_numpy(rng):
  p = _problem(rng)
  interp = sensing.Interpolation(p.a, p.y)
  m = np.asarray(p.a).reshape(p.a.shape[0], -1)
  y = np.asarray(p.y)
  ref = np.linalg.lstsq(m, y, rcond=None)[0]  # min-norm solution.
  np.testing.assert_allclose(np.asarray(interp.min_frobenius()).ravel(), ref,
                             rtol=1e-9, atol=1e-10)
  z = rng.standard_normal(p.w_star.shape)
  pz = np.asarray(interp.project_null(jnp.asarray(z))).ravel()
  ref_null = z.ravel() - np.linalg.pinv(m) @ (m @ z.ravel())
  np.testing.assert_allclose(pz, ref_null, rtol=1e-9, atol=1e-10)
  w = interp.project(jnp.asarray(z))
  assert float(jnp.linalg.norm(interp.residual(w))) < 1e-9 * np.linalg.norm(y)


def test_svt_against_numpy(rng):
  x = rng.standard_normal((7, 4))
  u, s, vt = np.linalg.svd(x, full_matrices=False)
  tau = float(np.median(s))
  ref = (u * np.maximum(s - tau, 0)) @ vt
  np.testing.assert_allclose(
      np.asarray(sensing.singular_value_threshold(jnp.asarray(x), tau)), ref,
      atol=1e-12)


def test_nuclear_norm_minimizer_recovers_low_rank(rng):
  # Rank 1, 8×8, m = 56 ≥ 3r(d1 + d2 − r) = 45 Gaussian measurements: W* is
  # the unique nuclear-norm minimizer with overwhelming probability.
  p = _problem(rng, 8, 8, 56, 1)
  interp = sensing.Interpolation(p.a, p.y)
  w = sensing.nuclear_norm_minimizer(interp, iters=2000)
  err = float(jnp.linalg.norm(w - p.w_star) / jnp.linalg.norm(p.w_star))
  assert err < 1e-6, err
  assert float(spectral_jax.nuclear_norm(w)) < float(
      spectral_jax.nuclear_norm(interp.min_frobenius()))


def test_nuclear_norm_minimizer_bad_args(rng):
  p = _problem(rng)
  interp = sensing.Interpolation(p.a, p.y)
  with pytest.raises(ValueError, match="iters"):
    sensing.nuclear_norm_minimizer(interp, iters=0)
  with pytest.raises(ValueError, match="tau"):
    sensing.nuclear_norm_minimizer(interp, tau=-1.0)
  with pytest.raises(ValueError, match="m must be"):
    sensing.gaussian_sensing(jax.random.key(0), 2, 2, 5, 1)


def test_flow_alphas_match_finite_differences(rng):
  p = _problem(rng, 6, 6, 20, 2)
  interp = sensing.Interpolation(p.a, p.y)
  w = interp.min_frobenius()
  s, a_exact, a_review = sensing.flow_alphas(interp, w)
  # Independent NumPy reference of the exact rate: σ̇_i/η = −u_iᵀ P_⊥(UVᵀ) v_i.
  m = np.asarray(p.a).reshape(20, -1)
  proj = np.eye(36) - np.linalg.pinv(m) @ m
  u, sv, vt = np.linalg.svd(np.asarray(w))
  pu = (proj @ (u @ vt).ravel()).reshape(6, 6)
  ref = np.array([u[:, i] @ pu @ vt[i] for i in range(6)])
  np.testing.assert_allclose(np.asarray(a_exact), ref, atol=1e-10)
  ref_rev = np.array([np.sum((proj @ np.outer(u[:, i], vt[i]).ravel())**2)
                      for i in range(6)])
  np.testing.assert_allclose(np.asarray(a_review), ref_rev, atol=1e-10)
  eta = 1e-7
  w1 = w - eta * interp.project_null(spectral_jax.polar(w))
  fd = (np.linalg.svd(np.asarray(w1), compute_uv=False) - sv) / eta
  np.testing.assert_allclose(fd, -ref, atol=1e-5 * np.max(np.abs(ref)))


def test_self_polar_flow_feasible_and_descends(rng):
  p = _problem(rng, 6, 6, 20, 1)
  interp = sensing.Interpolation(p.a, p.y)
  w, tr = sensing.self_polar_flow(interp, interp.min_frobenius(), eta=0.002,
                                  steps=300)
  assert tr.nuclear_norm.shape == (301,)
  assert float(jnp.max(tr.residual)) < 1e-9 * float(jnp.linalg.norm(p.y))
  assert float(tr.nuclear_norm[-1]) < float(tr.nuclear_norm[0])


def test_norm_matched_update_has_muon_frobenius_norm(rng):
  # Same momentum, same LR: the norm-matched step and exact-polar Muon's step
  # have equal Frobenius norm at every step (= lr·√rank), different directions.
  beta, lr = 0.9, 0.05
  muon = spectral_jax.muon(lr, beta=beta, nesterov=False, polar_method="svd")
  nm = optax.chain(optax.trace(decay=beta), sensing.scale_by_polar_norm(),
                   optax.scale_by_learning_rate(lr))
  params = {"w": jnp.zeros((7, 5))}
  s_mu, s_nm = muon.init(params), nm.init(params)
  for t in range(4):
    g = rng.standard_normal((7, 5))
    if t == 2:  # A rank-deficient gradient: √rank, not √min(m, n).
      g = np.outer(rng.standard_normal(7), rng.standard_normal(5))
    grads = {"w": jnp.asarray(g)}
    u_mu, s_mu = muon.update(grads, s_mu, params)
    u_nm, s_nm = nm.update(grads, s_nm, params)
    np.testing.assert_allclose(float(jnp.linalg.norm(u_nm["w"])),
                               float(jnp.linalg.norm(u_mu["w"])), rtol=1e-8)
  # Zero updates stay zero; vectors pass through unchanged.
  z, _ = sensing.scale_by_polar_norm().update(
      {"w": jnp.zeros((3, 3)), "b": jnp.ones(3)}, None)
  assert float(jnp.abs(z["w"]).sum()) == 0 and np.all(np.asarray(z["b"]) == 1)


def test_fit_gd_interpolates(rng):
  p = _problem(rng, 5, 5, 12, 1)
  lam = float(jnp.linalg.norm(p.a.reshape(12, -1), 2) ** 2 / 12)
  w, losses = sensing.fit(p, optax.sgd(1.0 / lam), jnp.zeros((5, 5)),
                          steps=2000, log_every=500)
  assert losses.shape == (5,)
  assert float(losses[-1]) < 1e-6 * float(losses[0])
  # GD from 0 stays in the row space: it converges to the min-norm solution.
  interp = sensing.Interpolation(p.a, p.y)
  np.testing.assert_allclose(np.asarray(w), np.asarray(interp.min_frobenius()),
                             atol=1e-3)


# --------------------------------------------------------------------------
# image data
# --------------------------------------------------------------------------
def _write_cifar(folder, rng, n_train=(5, 3), n_test=4):
  raw = {}
  for i, n in enumerate(n_train, start=1):
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    lab = rng.integers(0, 10, n).tolist()
    with open(os.path.join(folder, f"data_batch_{i}"), "wb") as f:
      pickle.dump({b"data": data, b"labels": lab, b"batch_label": b"x"}, f)
    raw[f"data_batch_{i}"] = (data, lab)
  data = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
  lab = rng.integers(0, 10, n_test).tolist()
  with open(os.path.join(folder, "test_batch"), "wb") as f:
    pickle.dump({b"data": data, b"labels": lab}, f)
  raw["test_batch"] = (data, lab)
  return raw


def test_cifar_reader_on_fabricated_batches(tmp_path, rng):
  raw = _write_cifar(tmp_path, rng)
  d = image_data.load_cifar10(tmp_path)
  assert d.x_train.shape == (8, 32, 32, 3) and d.x_test.shape == (4, 32, 32, 3)
  assert d.x_train.dtype == np.float32 and d.num_classes == 10
  # Reference: rows are R plane, G plane, B plane of 32×32, row-major.
  img = lambda a: a.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1) / 255.0
  tr = np.concatenate([img(raw["data_batch_1"][0]),
                       img(raw["data_batch_2"][0])])
  te = img(raw["test_batch"][0])
  mean, std = tr.mean((0, 1, 2)), tr.std((0, 1, 2))
  np.testing.assert_allclose(d.x_train, (tr - mean) / std, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(d.x_test, (te - mean) / std, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_array_equal(
      d.y_train, raw["data_batch_1"][1] + raw["data_batch_2"][1])


def test_cifar_reader_errors(tmp_path, rng):
  with pytest.raises(ValueError, match="does not exist"):
    image_data.load_cifar10(tmp_path / "nope")
  with pytest.raises(ValueError, match="test_batch"):
    image_data.load_cifar10(tmp_path)
  _write_cifar(tmp_path, rng)
  with open(tmp_path / "data_batch_1", "wb") as f:
    pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, f)
  with pytest.raises(ValueError, match="3072"):
    image_data.load_cifar10(tmp_path)


def test_digits_loader():
  d = image_data.load_digits(seed=3)
  assert d.x_train.shape[1:] == (8, 8, 1)
  assert len(d.y_train) + len(d.y_test) == 1797
  assert abs(float(d.x_train.mean())) < 1e-5
  assert abs(float(d.x_train.std()) - 1) < 1e-4
  assert set(np.unique(d.y_train)) == set(range(10))
  with pytest.raises(ValueError, match="test_fraction"):
    image_data.load_digits(test_fraction=1.0)


def test_batch_indices_cover_each_sample_once(rng):
  idx = list(image_data.batch_indices(rng, 23, 5, drop_last=False))
  assert sorted(np.concatenate(idx).tolist()) == list(range(23))
  assert [len(b) for b in image_data.batch_indices(rng, 23, 5)] == [5] * 4


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def test_cnn_shapes_and_conv_specs():
  m = CNN(3, 7, channels=(4, 8), hidden=16, rngs=nnx.Rngs(0))
  assert m(jnp.ones((2, 12, 12, 3))).shape == (2, 7)
  specs = labels.nnx_dimension_numbers(m)
  assert specs["convs"][1]["kernel"] == labels.MuonDimensionNumbers(
      (0, 1, 2), 3)
  assert specs["head"]["kernel"] is None
  with pytest.raises(ValueError, match="channels"):
    CNN(3, 7, channels=(0,), rngs=nnx.Rngs(0))


def test_vit_patchify_and_forward(rng):
  cfg = ViTConfig(image_size=4, patch_size=2, in_channels=3, num_classes=5,
                  d_model=8, depth=2, n_head=2)
  m = ViT(cfg, rngs=nnx.Rngs(0))
  x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
  p = np.asarray(m.patchify(jnp.asarray(x)))
  assert p.shape == (2, 4, 12)
  # Patch 1 (row 0, column 1) is x[:, 0:2, 2:4, :], flattened row-major.
  np.testing.assert_array_equal(p[:, 1], x[:, 0:2, 2:4, :].reshape(2, -1))
  assert m(jnp.asarray(x)).shape == (2, 5)
  # Blocks are stacked (depth, in, out): Muon reads them as batched matrices.
  specs = labels.nnx_dimension_numbers(m)
  assert specs["blocks"]["fc"]["kernel"] == labels.MuonDimensionNumbers(1, 2)
  with pytest.raises(ValueError, match="patch_size"):
    ViTConfig(image_size=5, patch_size=2)


# --------------------------------------------------------------------------
# experiments at tiny sizes
# --------------------------------------------------------------------------
def _check_result(res, out_dir):
  assert set(res) >= {"claims", "figures", "summary", "metrics"}
  for c in res["claims"]:
    assert set(c) >= {"id", "claim", "paper", "measured", "holds", "rule"}
  for f in res["figures"]:
    assert os.path.getsize(f) > 0
  with open(os.path.join(out_dir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert rows
  json.dumps(res["metrics"], default=float)
  return rows


def test_stability_tiny(tmp_path):
  from experiments import stability
  cfg = stability.Config(k=20, d=10, n=60, steps=60, multipliers=(0.5, 3.0),
                         power_iters=50)
  res = stability.run(cfg, str(tmp_path))
  _check_result(res, tmp_path)
  by_id = {c["id"]: c for c in res["claims"]}
  # The HVP λ_max matches the closed form, and GD at 3·(2/λ_max) diverges.
  assert by_id["C21a"]["holds"] and by_id["C21b"]["holds"]
  assert by_id["C22a"]["holds"]


def test_matrix_sensing_tiny(tmp_path):
  from experiments import matrix_sensing
  cfg = matrix_sensing.Config(d=6, m=20, rank=1, steps=400, seeds=(0,),
                              dr_iters=300, flow_steps=100)
  res = matrix_sensing.run(cfg, str(tmp_path))
  rows = _check_result(res, tmp_path)
  flow = [r for r in rows if r["kind"] == "flow"][0]
  assert flow["max_rel_residual"] < 1e-8
  assert len(flow["alpha_exact"]) == len(flow["alpha_review"]) == 6


@pytest.mark.slow  # --cifar10 plumbing: default suite, fake experiment.
def test_dual_optimizer_tiny_on_fabricated_cifar(tmp_path, rng):
  from experiments import dual_optimizer as dual
  data_dir = tmp_path / "cifar"
  data_dir.mkdir()
  _write_cifar(data_dir, rng, n_train=(8,), n_test=4)
  cfg = dual.Config(lrs=(0.05, 50.0), models=("cnn",), epochs=2,
                    batch_size=4, cnn_channels=(4,), hidden=8, window=4,
                    power_iters=3, layer_curvature=True, rest_lr=None,
                    data=str(data_dir))
  res = dual.run(cfg, str(tmp_path / "out"))
  rows = _check_result(res, tmp_path / "out")
  runs = [r for r in rows if r["kind"] == "run"]
  assert len(runs) == 2 * 2 and runs[0]["steps_per_epoch"] == 2
  # Per-layer curvature of every Muon layer: the conv kernel, hidden dense.
  cnn = [r for r in rows if r["kind"] == "init_curvature"
         and r["model"] == "cnn"][0]["layers"]
  assert {"convs/0/kernel", "hidden/kernel"} <= set(cnn)
  for k, v in cnn.items():
    assert np.isfinite(v["lambda_max"])
    if k != "network":  # σ̄(G) is a mean of singular values: ≤ σ_max.
      assert 0 < v["sigma_bar"] <= v["sigma_max"] * (1 + 1e-6)


def test_divergence_and_milestone_helpers():
  from experiments import dual_optimizer as dual
  loss = np.array([[1.0, 0.9, 0.8], [1.0, 20.0, np.nan], [1.0, np.nan, 1.0]])
  div, at = dual.diverged_within(loss, window=3, blowup=10.0)
  assert div.tolist() == [False, True, True] and at.tolist() == [-1, 1, 1]
  acc = np.array([[0.1, 0.5, 0.9], [0.1, 0.2, 0.3]])
  assert dual.steps_to(acc, 0.85, 10).tolist() == [20, -1]


@pytest.mark.slow  # ~26 s; each arm is covered by the other experiment tests
def test_regime_tiny(tmp_path):
  from experiments import regime
  cfg = regime.Config(adamw_lrs=(1e-3, 1e-2), muon_lrs=(0.01, 0.1), epochs=1,
                      d_model=8, depth=1, n_head=2, patch_size=4,
                      batch_size=256)
  res = regime.run(cfg, str(tmp_path))
  rows = _check_result(res, tmp_path)
  assert {r["arm"] for r in rows} == {"adamw", "muon"}
  assert regime.plateau_decades([1e-3, 1e-2, 1e-1], [0.5, 0.9, 0.89],
                                0.02) == pytest.approx(1.0)


def test_library_imports_nothing_from_experiments():
  import ast
  root = os.path.dirname(spectral_jax.__file__)
  bad = []
  for folder, _, names in os.walk(root):
    for name in names:
      if not name.endswith(".py"):
        continue
      path = os.path.join(folder, name)
      tree = ast.parse(open(path, encoding="utf-8").read())
      for node in ast.walk(tree):
        mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom)
                else [])
        bad += [(path, m) for m in mods if m.split(".")[0] == "experiments"]
  assert not bad
  assert not os.path.exists(os.path.join(root, "sensing.py"))
  assert not os.path.exists(os.path.join(root, "image_data.py"))
