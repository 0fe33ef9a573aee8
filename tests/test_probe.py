"""Tests for spectral_jax.probe: closed forms on least squares, guarantees, MLPs.

References are independent NumPy float64 computations on fresh random
instances. On (1/2n)‖WA − Y‖² the block Hessian is exact (⟨D, H D⟩ =
‖DA‖_F²/n), so the probe must match the closed forms to round-off: 1e-8
relative in float64 leaves room for the SVD/eigh and accumulation errors of
100-dimensional problems (≈ 1e-13 observed) while catching any wrong factor.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax import probe

RTOL = 1e-8


def _rf_instance(rng, m, k, n, *, relu=True):
  x = rng.standard_normal((k // 2 + 1, n))
  v = rng.standard_normal((k, x.shape[0])) / np.sqrt(x.shape[0])
  a = np.maximum(v @ x, 0.0) if relu else v @ x
  y = (rng.standard_normal((m, k)) / np.sqrt(k)) @ a
  w = rng.standard_normal((m, k)) * rng.uniform(0.0, 0.3)
  return w, a, y


def _np_reference(w, a, y):
  """Closed forms for L(W) = ‖WA − Y‖²/(2n), paper layout W (m×k), A (k×n)."""
  n = a.shape[1]
  loss = lambda w_: np.sum((w_ @ a - y) ** 2) / (2 * n)
  g = (w @ a - y) @ a.T / n
  u, s, vt = np.linalg.svd(g, full_matrices=False)
  p = u @ vt
  sa = np.linalg.svd(a, compute_uv=False)
  lf, lop = sa[0] ** 2 / n, np.sum(sa**2) / n
  nuc, fro2 = s.sum(), np.sum(s**2)
  curv_g = np.linalg.norm(g @ a) ** 2 / n
  curv_p = np.linalg.norm(p @ a) ** 2 / n
  return dict(
      nr=nuc**2 / fro2, st=np.sum(sa**2) / sa[0] ** 2, grad_fro_sq=fro2,
      grad_nuclear=nuc, lipschitz_f=lf, lipschitz_op=lop,
      guaranteed_gd=fro2 / (2 * lf), guaranteed_spec=nuc**2 / (2 * lop),
      paper_gd=loss(w) - loss(w - g / lf),
      paper_spec=loss(w) - loss(w - nuc / lop * p),
      curvature_gd=curv_g, curvature_spec=curv_p,
      best_gd=fro2**2 / (2 * curv_g), best_spec=nuc**2 / (2 * curv_p))


@pytest.mark.parametrize("layout", ["paper", "flax"])
def test_closed_form_and_guarantees_stacked(rng, layout):
  # Three independent least-squares problems in one stacked leaf: the block
  # Hessian of layer ℓ is that problem's own, so each layer must match its
  # closed form, and the vmapped layer axis must not mix layers.
  layers, m, k, n = 3, 7, 24, 60
  insts = [_rf_instance(rng, m, k, n) for _ in range(layers)]
  ws = np.stack([w for w, _, _ in insts])
  acts = np.stack([a.T for _, a, _ in insts])               # (L, n, k)
  ys = np.stack([y for _, _, y in insts])
  if layout == "paper":                                     # W: (m, k), y = W A
    params = {"w": jnp.asarray(ws)}
    loss = lambda p: sum(
        jnp.sum((p["w"][i] @ acts[i].T - ys[i]) ** 2) / (2 * n)
        for i in range(layers))
  else:                                                     # K: (k, m), y = A K
    params = {"w": jnp.asarray(np.swapaxes(ws, 1, 2))}
    loss = lambda p: sum(
        jnp.sum((acts[i] @ p["w"][i] - ys[i].T) ** 2) / (2 * n)
        for i in range(layers))
  rep = probe.probe_step(loss, params, {"w": acts}, line_search=True)
  stats = rep.entries["w"]
  assert rep.stacked == ("w",)
  for i, (w, a, y) in enumerate(insts):
    ref = _np_reference(w, a, y)
    for name, val in ref.items():
      np.testing.assert_allclose(float(getattr(stats, name)[i]), val,
                                 rtol=RTOL, err_msg=f"{name}, layer {i}")
  # Exact quadratic model: every realized decrease ≥ its guarantee (up to
  # round-off of the loss differences, ~1e-12 relative to the loss).
  slack = 1e-10
  for d in ("gd", "spec"):
    g = np.asarray(getattr(stats, f"guaranteed_{d}"))
    for regime in ("paper", "best", "line"):
      val = np.asarray(getattr(stats, f"{regime}_{d}"))
      assert np.all(val >= g * (1 - slack)), (regime, d, val, g)
    # The best step along D beats any fixed step along D; the line search
    # includes the paper's step.
    assert np.all(np.asarray(getattr(stats, f"best_{d}"))
                  >= np.asarray(getattr(stats, f"paper_{d}")) * (1 - slack))
    assert np.all(np.asarray(getattr(stats, f"line_{d}"))
                  >= np.asarray(getattr(stats, f"paper_{d}")) * (1 - slack))
  recs = rep.records()
  assert [r["layer"] for r in recs] == [0, 1, 2]
  for r in recs:
    assert r["guaranteed_agrees"] is True   # nr/st is that regime's ratio.
    np.testing.assert_allclose(r["guaranteed_ratio"], r["predicted_ratio"],
                               rtol=RTOL)


def _tanh_instance(rng, n=40, k=6, h=9):
  """A two-layer tanh network (Flax layout) with a concave term on w2.

  L = ‖tanh(X W1 + b1) W2 − Y‖²/(2n) − (μ/2)‖W2‖_F², μ = 2 λ_max(HᵀH/n):
  the block Hessian of W2 is HᵀH/n − μI (negative definite, so both "best"
  decreases of W2 are undefined and its line search falls back to the paper
  step); that of W1 is indefinite in general.
  """
  x = rng.standard_normal((n, k))
  w1 = rng.standard_normal((k, h)) / np.sqrt(k)
  b1 = 0.1 * rng.standard_normal(h)
  w2 = rng.standard_normal((h, 1)) / np.sqrt(h)
  y = np.sin(x[:, :1] * x[:, 1:2])
  hid = np.tanh(x @ w1 + b1)
  mu = 2 * np.linalg.eigvalsh(hid.T @ hid / n)[-1]
  return dict(x=x, y=y, mu=mu, w1=w1, b1=b1, w2=w2)


def _tanh_np(inst, p):
  """Loss, gradients and second directional derivatives, all in NumPy.

  Returns the loss at ``p``, ``{name: G}`` and a function ``(name, D) →
  (⟨D, H D⟩, ⟨D, GN D⟩, scale)``, where GN drops the ⟨R, d²O⟩ term and
  ``scale`` sums the absolute values of the terms (the size of the
  round-off in their cancelling sum).
  """
  x, y, mu = inst["x"], inst["y"], inst["mu"]
  n = x.shape[0]
  hid = np.tanh(x @ p["w1"] + p["b1"])
  r = hid @ p["w2"] - y
  loss = np.sum(r**2) / (2 * n) - mu / 2 * np.sum(p["w2"] ** 2)
  dz = (r @ p["w2"].T) * (1 - hid**2) / n
  grads = {"w1": x.T @ dz, "w2": hid.T @ r / n - mu * p["w2"]}

  def curv(name, d):
    if name == "w2":
      fit, conc = np.sum((hid @ d) ** 2) / n, mu * np.sum(d**2)
      return fit - conc, fit - conc, fit + conc
    dzd = x @ d
    do = ((1 - hid**2) * dzd) @ p["w2"]
    d2o = (-2 * hid * (1 - hid**2) * dzd**2) @ p["w2"]
    fit, second = np.sum(do**2) / n, np.sum(r * d2o) / n
    return fit + second, fit, fit + abs(second)

  return loss, grads, curv


def _probe_np(inst, name, act, c, curvature, factors):
  """The probe's numbers for one leaf of the tanh network, in float64 NumPy."""
  p = {k: inst[k] for k in ("w1", "b1", "w2")}
  loss, grads, curv = _tanh_np(inst, p)
  n = act.shape[0]
  g = grads[name]
  u, s, vt = np.linalg.svd(g, full_matrices=False)
  pol = u @ vt
  sa = np.linalg.svd(act, compute_uv=False)
  lf, lop = c * sa[0] ** 2 / n, c * np.sum(sa**2) / n
  out = dict(nr=s.sum() ** 2 / np.sum(s**2), st=np.sum(sa**2) / sa[0] ** 2,
             grad_fro_sq=np.sum(s**2), grad_nuclear=s.sum(),
             lipschitz_f=lf, lipschitz_op=lop,
             guaranteed_gd=np.sum(s**2) / (2 * lf),
             guaranteed_spec=s.sum() ** 2 / (2 * lop))
  scales = {}
  for tag, d, t_paper in (("gd", g, 1 / lf), ("spec", pol, s.sum() / lop)):
    def moved(t):
      return _tanh_np(inst, {**p, name: p[name] - t * d})[0]
    hess, gn, scale = curv(name, d)
    dhd = hess if curvature == "hessian" else gn
    slope = np.sum(g * d)
    t_ref = slope / dhd if dhd > 0 else t_paper
    grid = [t_ref * f for f in factors] + [t_paper]
    out.update({f"paper_{tag}": loss - moved(t_paper),
                f"curvature_{tag}": dhd,
                f"best_{tag}": slope**2 / (2 * dhd) if dhd > 0 else np.nan,
                f"line_{tag}": loss - min(moved(t) for t in grid)})
    scales[tag] = scale
  return out, scales, abs(loss)


@pytest.mark.parametrize("curvature", ["hessian", "gauss_newton"])
@pytest.mark.parametrize("layer_batch_size", [None, 1])
def test_tanh_network_matches_numpy(rng, curvature, layer_batch_size):
  # Every ProbeStats field of both probed leaves of a nonlinear network with
  # a bias left unprobed, against the NumPy recomputation above. Round-off:
  # float64 SVDs, eigensolves and sums of ≤ 400 terms are exact to ~1e-14
  # relative, so RTOL = 1e-8 catches any wrong factor. Three quantities
  # cancel and get an absolute term on top: loss differences (paper, line)
  # lose |L|·eps, so atol 1e-12·|L|; curvatures lose eps·(sum of |terms|),
  # so atol 1e-12·scale, and best = slope²/(2 dhd) inherits that relative
  # error, scale/|dhd|·1e-12.
  inst = _tanh_instance(rng)
  mu, n = inst["mu"], inst["x"].shape[0]
  x, y = jnp.asarray(inst["x"]), jnp.asarray(inst["y"])
  params = {k: jnp.asarray(inst[k]) for k in ("w1", "b1", "w2")}

  def outputs(q):
    return jnp.tanh(x @ q["w1"] + q["b1"]) @ q["w2"], q["w2"]

  def out_loss(o):
    return jnp.sum((o[0] - y) ** 2) / (2 * n) - mu / 2 * jnp.sum(o[1] ** 2)

  loss = lambda q: out_loss(outputs(q))
  hid = np.tanh(inst["x"] @ inst["w1"] + inst["b1"])
  acts = {"w1": inst["x"], "w2": hid}
  scale = {"w1": 1.0, "w2": 2.5}
  factors = (0.5, 1.0, 2.0)
  rep = probe.probe_step(
      loss, params, acts, curvature_scale=scale, line_search=True,
      line_search_factors=factors, layer_batch_size=layer_batch_size,
      gauss_newton=(outputs, out_loss) if curvature == "gauss_newton"
      else None)
  assert sorted(rep.entries) == ["w1", "w2"] and rep.curvature == curvature
  for name in ("w1", "w2"):
    ref, cscale, lscale = _probe_np(inst, name, acts[name], scale[name],
                                    curvature, factors)
    stats = rep.entries[name]
    assert set(ref) == set(probe.ProbeStats._fields)
    for field, want in ref.items():
      got = float(getattr(stats, field)[0])
      tag = field.rsplit("_", 1)[-1]
      atol = 0.0
      if field.startswith(("paper", "line")):
        atol = 1e-12 * lscale
      elif field.startswith("curvature"):
        atol = 1e-12 * cscale[tag]
      elif field.startswith("best") and np.isfinite(want):
        atol = abs(want) * 1e-12 * cscale[tag] / abs(ref[f"curvature_{tag}"])
      np.testing.assert_allclose(got, want, rtol=RTOL, atol=atol,
                                 err_msg=f"{name}.{field} ({curvature})")
  # The concave term makes W2's curvature negative along both directions.
  w2 = rep.entries["w2"]
  assert float(w2.curvature_gd[0]) < 0 and float(w2.curvature_spec[0]) < 0
  assert np.isnan(float(w2.best_gd[0])) and np.isnan(float(w2.best_spec[0]))


def test_gauss_newton_equals_hessian_on_least_squares(rng):
  w, a, y = _rf_instance(rng, 5, 16, 40)
  n = a.shape[1]
  outputs = lambda p: p["w"] @ a
  out_loss = lambda z: jnp.sum((z - y) ** 2) / (2 * n)
  loss = lambda p: out_loss(outputs(p))
  params = {"w": jnp.asarray(w)}
  hess = probe.probe_step(loss, params, {"w": a.T})
  gn = probe.probe_step(loss, params, {"w": a.T},
                        gauss_newton=(outputs, out_loss))
  assert gn.curvature == "gauss_newton"
  for f in ("curvature_gd", "curvature_spec", "best_gd", "best_spec"):
    np.testing.assert_allclose(np.asarray(getattr(gn.entries["w"], f)),
                               np.asarray(getattr(hess.entries["w"], f)),
                               rtol=RTOL)


def test_jit_matches_eager_and_curvature_scale(rng):
  w, a, y = _rf_instance(rng, 6, 20, 50)
  n = a.shape[1]
  loss = lambda p: jnp.sum((p["w"] @ a - y) ** 2) / (2 * n)
  params = {"w": jnp.asarray(w)}
  eager = probe.probe_step(loss, params, {"w": a.T}, curvature_scale=3.0)
  jitted = jax.jit(lambda p: probe.probe_step(
      loss, p, {"w": a.T}, curvature_scale=3.0))(params)
  for f in probe.ProbeStats._fields:
    np.testing.assert_allclose(np.asarray(getattr(jitted.entries["w"], f)),
                               np.asarray(getattr(eager.entries["w"], f)),
                               rtol=1e-10, err_msg=f)
  # c multiplies both constants: L^F = c‖A‖_op²/n, L^op = c‖A‖_F²/n; the
  # paper's GD step 1/L^F then decreases the quadratic by
  # t⟨G,G⟩ − t²⟨G,HG⟩/2 with t = n/(c‖A‖_op²).
  ref = _np_reference(w, a, y)
  s3 = eager.entries["w"]
  np.testing.assert_allclose(float(s3.guaranteed_gd[0]),
                             ref["guaranteed_gd"] / 3.0, rtol=RTOL)
  np.testing.assert_allclose(float(s3.guaranteed_spec[0]),
                             ref["guaranteed_spec"] / 3.0, rtol=RTOL)
  t = n / (3.0 * np.linalg.norm(a, 2) ** 2)
  want = t * ref["grad_fro_sq"] - t**2 * ref["curvature_gd"] / 2
  np.testing.assert_allclose(float(s3.paper_gd[0]), want, rtol=1e-7)


def test_zero_gradient_is_finite_and_undefined(rng):
  w, a, y = _rf_instance(rng, 4, 12, 30)
  y = w @ a                                   # W is the minimiser: G = 0.
  n = a.shape[1]
  loss = lambda p: jnp.sum((p["w"] @ a - y) ** 2) / (2 * n)
  rep = probe.probe_step(loss, {"w": jnp.asarray(w)}, {"w": a.T},
                         line_search=True)
  s = rep.entries["w"]
  for f in ("nr", "guaranteed_gd", "guaranteed_spec", "paper_gd",
            "paper_spec", "line_gd", "line_spec"):
    assert np.all(np.isfinite(np.asarray(getattr(s, f)))), f
  assert all(v["total"] == 0 for v in rep.agreement().values())
  assert "agreement" in rep.table()


def test_non_finite_activation_propagates(rng):
  # The probe's denominators (‖A‖_op², ‖A‖_F², ‖G‖_F², c·…/n with c > 0)
  # are sums of squares or top eigenvalues of Gram matrices: never negative,
  # so linalg's safe_div (den ≠ 0 → divide) equals a den > 0 guard on finite
  # inputs, and an all-zero activation gives zeros. A NaN activation must
  # not become st = 0 and zero "guaranteed" decreases (counted as an agreeing
  # verdict); it propagates and leaves the verdicts undefined.
  w, a, y = _rf_instance(rng, 4, 12, 30)
  n = a.shape[1]
  loss = lambda p: jnp.sum((p["w"] @ a - y) ** 2) / (2 * n)
  params = {"w": jnp.asarray(w)}
  zero = probe.probe_step(loss, params, {"w": 0 * a.T}).entries["w"]
  for f in ("st", "lipschitz_f", "lipschitz_op", "guaranteed_gd",
            "guaranteed_spec"):
    assert float(getattr(zero, f)[0]) == 0.0, f
  bad = a.T.copy()
  bad[tuple(int(rng.integers(d)) for d in bad.shape)] = np.nan
  rep = probe.probe_step(loss, params, {"w": bad})
  s = rep.entries["w"]
  for f in ("st", "lipschitz_f", "guaranteed_gd", "guaranteed_spec",
            "paper_gd", "paper_spec"):
    assert np.isnan(float(getattr(s, f)[0])), f
  r = rep.records()[0]
  assert r["guaranteed_verdict"] is None and r["paper_verdict"] is None


def test_bad_inputs_raise(rng):
  w, a, y = _rf_instance(rng, 4, 12, 30)
  loss = lambda p: jnp.sum((p["w"] @ a - y) ** 2)
  params = {"w": jnp.asarray(w)}
  with pytest.raises(ValueError, match="features"):
    probe.probe_step(loss, params, {"w": a})          # k × n, not n × k.
  with pytest.raises(ValueError, match="not a parameter"):
    probe.probe_step(loss, params, {"v": a.T})
  with pytest.raises(ValueError, match="curvature_scale"):
    probe.probe_step(loss, params, {"w": a.T}, curvature_scale=0.0)
  with pytest.raises(ValueError, match="empty"):
    probe.probe_step(loss, params, {})


def test_probe_model_tiny_mlp_one_finite_entry_per_matrix(rng):
  from flax import nnx
  from spectral_jax.models.mlp import MLP
  model = MLP((5, 12, 12, 1), activation="relu2", init="torch",
              rngs=nnx.Rngs(int(rng.integers(1 << 30))),
              param_dtype=jnp.float64)
  x = jnp.asarray(rng.standard_normal((32, 5)))
  y = x[:, :1] * x[:, 1:2] * x[:, 2:3]
  mse = lambda out, batch: jnp.mean((out - batch[1]) ** 2)
  loss = lambda mdl, batch: mse(mdl(batch[0]), batch)
  # Gauss–Newton: ⟨D, H D⟩ of an MLP can be negative, the GN form cannot,
  # so every best-step decrease is defined.
  rep = probe.probe_model(model, (x, y), loss, curvature_scale=2.0,
                          gauss_newton_loss=mse)
  assert rep.curvature == "gauss_newton"
  kernels = [f"layers/{i}/kernel" for i in range(3)]
  assert sorted(rep.entries) == kernels
  recs = rep.records()
  assert len(recs) == 3 and all(r["layer"] is None for r in recs)
  for r in recs:
    for key in ("nr", "st", "predicted_ratio", "guaranteed_gd", "paper_gd",
                "paper_spec", "best_gd", "best_spec"):
      assert np.isfinite(r[key]), (r["path"], key)
    assert 1 - 1e-9 <= r["st"] <= 12 + 1e-9
  # The last kernel is a column: polar(G) = G/‖G‖, so nr = 1 and the two
  # directions coincide (equal best-step decreases).
  last = rep.entries["layers/2/kernel"]
  np.testing.assert_allclose(float(last.nr[0]), 1.0, rtol=1e-9)
  np.testing.assert_allclose(float(last.best_spec[0]),
                             float(last.best_gd[0]), rtol=1e-8)
  d = rep.to_dict()
  assert len(d["records"]) == 3 and set(d["agreement"]) == set(rep.regimes)
  assert "layers/0/kernel" in rep.table()


def test_spiked_one_step_favours_spectral(rng):
  # arXiv:2512.04299 Lemma 3.5: B = uuᵀ + Σ, W_0 = 0, one GD step with
  # η = 1/(1 + ‖B‖) makes nr(∇L(W_1)) ≍ d while st(A) = O(1); the paper's
  # spectral step must then beat the paper's GD step on the true loss
  # (guaranteed by the interval argument once nr ≥ 2 st).
  d = 60
  u = rng.standard_normal(d)
  u *= np.sqrt(d) / np.linalg.norm(u)
  b = np.outer(u, u) + np.diag(rng.uniform(1.0, 2.0, d))
  lam, q = np.linalg.eigh(b)
  a = np.sqrt(d) * (q * np.sqrt(lam)) @ q.T            # A Aᵀ/n = B, n = d.
  w_sharp = rng.standard_normal((d, d)) / np.sqrt(d)
  y = w_sharp @ a
  loss = lambda p: jnp.sum((p["w"] @ a - y) ** 2) / (2 * d)
  eta = 1.0 / (1.0 + lam[-1])
  w1 = eta * w_sharp @ b                               # W_0 − η ∇L(W_0).
  rep = probe.probe_step(loss, {"w": jnp.asarray(w1)}, {"w": a.T})
  r = rep.records()[0]
  assert r["nr"] >= 2 * r["st"]
  assert r["paper_ratio"] > 1.0
  assert r["paper_agrees"]


def _tiny_config(**kw):
  from experiments import probe_advantage as pa
  base = dict(rf_k=16, rf_d=8, rf_n=40, rf_steps=10, rf_probe_every=5,
              spiked_dims=(16,), spiked_probe_steps=(0, 1), mlp_d=6,
              mlp_hidden=12, mlp_n=32, mlp_steps=3, mlp_probes=2,
              line_search=False, gpt=False)
  base.update(kw)
  return pa.Config(**base)


@pytest.mark.heavy
def test_experiment_tiny(tmp_path):
  import json
  import os
  from experiments import probe_advantage as pa
  res = pa.run(_tiny_config(), tmp_path)
  assert set(res) >= {"claims", "figures", "summary", "metrics"}
  for f in res["figures"]:
    assert os.path.getsize(f) > 0
  with open(tmp_path / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  models = {r["model"] for r in rows}
  assert models == {"E1 RF-ReLU", "spiked", "E4 MLP"}
  # E1: probe steps 0, 1, 2, 3, 5, 10 (one matrix); E4: W_1..W_3 at 2 points.
  assert sum(r["model"] == "E1 RF-ReLU" for r in rows) == 6
  assert sum(r["model"] == "E4 MLP" for r in rows) == 6
  ids = {c["id"] for c in res["claims"]}
  assert {"P10-E1-paper", "P10-E1-best", "P10-E4-paper", "P10-interval",
          "P10-bounds"} <= ids
  # Exact quadratic models: the guarantees hold on every probed pair.
  bounds = next(c for c in res["claims"] if c["id"] == "P10-bounds")
  assert bounds["holds"] is True
  agree = res["metrics"]["agreement"]["E1 RF-ReLU"]["paper"]
  assert 0 <= agree["agree"] <= agree["total"] == 6
  assert "GPT: not run" in res["summary"]


@pytest.mark.slow  # test_experiment_tiny: the same without the GPT arm.
def test_experiment_tiny_with_gpt(tmp_path):
  res_cfg = _tiny_config(gpt=True, gpt_n_layer=1, gpt_d_model=16,
                         gpt_n_head=2, gpt_context=8, gpt_batch=2,
                         gpt_probe_steps=(0, 1), gpt_corpus_bytes=1_000_000)
  from experiments import probe_advantage as pa
  res = pa.run(res_cfg, tmp_path)
  gpt = res["metrics"]["pairs"]["GPT"]
  # 2 probes × (q, k, v, o, fc, proj on 1 layer + lm_head + embedding).
  assert gpt == 2 * 8
  agree = res["metrics"]["agreement"]["GPT"]["paper"]
  assert 0 <= agree["agree"] <= agree["total"] == 2 * 8
  assert "GPT: not run" not in res["summary"]
