"""E4 + E5: four-layer MLP on a sparse cubic, GD vs block-SpecGD (Figures 1, 4, 17, 18).

Data ``x ~ N(0, I_d)`` (n samples), target ``y = x₁x₂x₃``; bias-free MLP
``d → h → h → h → 1`` (``spectral_jax.models.mlp.MLP``, PyTorch-default
uniform init, float64), loss ``mean((f(x) − y)²)`` (no ½). Per-layer steps use
the layer's incoming activation ``A_{ℓ−1}`` (samples × fan_in), recomputed
every iteration:

* GD, every layer:        ``W_ℓ ← W_ℓ − lr · n/‖A_{ℓ−1}‖_op² · G_ℓ``
* block-SpecGD, layers 2–3: ``W_ℓ ← W_ℓ − lr · n‖G_ℓ‖_*/‖A_{ℓ−1}‖_F² · polar(G_ℓ)``
  (layers 1 and 4 take the GD step).

E4 uses ReLU² (the paper's GD lr 0.081, SpecGD lr 0.1); E5 the SwiGLU MLP (a
linear map to 2h outputs split into ``silu(z₁)·z₂``) at a small and a large
batch, plus the init stable ranks vs batch size of Figure 17.

References: Davis & Drusvyatskiy, arXiv:2512.04299, §1.2.1, §4, Figures 1, 4,
17, 18 and Appendix A.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments import report
from spectral_jax import linalg
from spectral_jax import transforms
from spectral_jax.models.mlp import MLP

NAME = "mlp_specgd"
TITLE = "E4–E5: four-layer MLP, GD vs block-SpecGD (Figures 1, 4, 17, 18)"

SPECTRAL_LAYERS = (1, 2)  # 0-based: the paper's layers 2 and 3


@dataclasses.dataclass(frozen=True)
class Config:
  # E4 (ReLU²) at the paper's size; quick mode cuts the 2000 iterations.
  d: int = 128
  hidden: int = 512
  n: int = 512
  steps: int = 150
  lr_gd: float = 0.081
  lr_specgd: float = 0.1
  # E5 (SwiGLU).
  swiglu_n_small: int = 512
  swiglu_n_large: int = 8196     # the paper's n: the size C20d is about
  swiglu_steps_small: int = 100
  # The curves separate first and meet again: GD/SpecGD (float64, seeds 42,
  # 1, 0) = 0.54, 0.33, 0.50 at iteration 59; 0.66, 0.75, 0.68 at 100; 0.81,
  # 1.23, 0.85 at 149. So 60 iterations tested the transient, not the claim
  # ("essentially coincide", [M]: within ~2× at iterations 50–150). Quick
  # mode stops at 100, one of [M]'s comparison points, to stay near the
  # 15-minute budget (the two arms took 2.3 s per iteration together; the
  # whole quick run 15 min 48 s); full mode runs the paper's 150. (float32 is not a shortcut: its
  # own data draw for seed 1 made GD diverge by iteration 50.)
  swiglu_steps_large: int = 100
  swiglu_lr_gd_small: float = 0.01
  swiglu_lr_specgd_small: tuple[float, ...] = (0.01, 0.0175)
  swiglu_lr_gd_large: float = 0.0035
  swiglu_lr_specgd_large: float = 0.0015
  swiglu_init_ns: tuple[int, ...] = (128, 256, 512, 1024)
  polar_method: str = "eigh"  # the authors' exact route, float64
  log_every: int = 5          # nr(G_ℓ) logging period (an SVD per layer)
  seed: int = 42

  @classmethod
  def full(cls) -> "Config":
    return cls(steps=2000, swiglu_n_large=8196, swiglu_steps_small=400,
               swiglu_steps_large=150,
               swiglu_lr_specgd_small=(0.01, 0.0175, 0.025), log_every=1)


def make_data(key, d: int, n: int):
  """``x ~ N(0, I_d)`` (n×d) and ``y = x₁x₂x₃``."""
  x = jax.random.normal(key, (n, d), jnp.float64)
  return x, x[:, 0] * x[:, 1] * x[:, 2]


def make_model(key, d: int, hidden: int, activation: str):
  model = MLP([d, hidden, hidden, hidden, 1], activation, init="torch",
              rngs=nnx.Rngs(params=key), param_dtype=jnp.float64)
  graphdef, params = nnx.split(model, nnx.Param)
  kernels, treedef = jax.tree.flatten(params)
  return graphdef, treedef, kernels


def _forward(graphdef, treedef, kernels, x, y):
  model = nnx.merge(graphdef, jax.tree.unflatten(treedef, kernels))
  pred, inter = nnx.capture(model, nnx.Intermediate)(x)
  acts = [jax.tree.leaves(layer["inputs"])[0] for _, layer in
          sorted(inter["layers"].items())]
  return jnp.mean((pred[:, 0] - y) ** 2), acts


def layer_stats(graphdef, treedef, kernels, x, y):
  """``(loss, grads, incoming activations)`` for the current kernels."""
  (loss, acts), grads = jax.value_and_grad(
      lambda k: _forward(graphdef, treedef, k, x, y), has_aux=True)(kernels)
  return loss, grads, acts


def _make_step(graphdef, treedef, spectral: tuple[int, ...], method: str,
               log_every: int):
  def step(carry):
    kernels, x, y, lr, t = carry
    n = x.shape[0]
    loss, grads, acts = layer_stats(graphdef, treedef, kernels, x, y)
    new, st, g_fro2 = [], [], []
    for i, (w, g, a) in enumerate(zip(kernels, grads, acts)):
      fro2_a, op2_a = jnp.sum(a * a), linalg.operator_norm_sq(a)
      st.append(fro2_a / op2_a)
      g_fro2.append(jnp.sum(g * g))
      if i in spectral:
        # The library's SpecGD direction ‖G‖_* polar(G) (L = 1), stepped
        # with L_op = ‖A‖_F²/n.
        d, _ = transforms.scale_by_specgd(method).update(g, optax.EmptyState())
        new.append(w - lr * n / fro2_a * d)
      else:
        new.append(w - lr * n / op2_a * g)
    # nr(G_ℓ) needs an SVD per layer: logged every log_every steps only
    # (lax.cond runs one branch), NaN in between.
    nr = jax.lax.cond(
        t % log_every == 0,
        lambda gs: jnp.stack([linalg.nuclear_rank(g) for g in gs]),
        lambda gs: jnp.full((len(gs),), jnp.nan, x.dtype), grads[:-1])
    out = {"loss": loss, "st": jnp.stack(st[1:]), "nr": nr}
    return (new, x, y, lr, t + 1), out
  return step


_STEP_CACHE: dict = {}


def _step_fn(graphdef, treedef, spectral, method, log_every):
  # One function object per (model structure, method) so report.run_steps
  # reuses its compilation across seeds and learning rates.
  key = (graphdef, treedef, spectral, method, log_every)
  if key not in _STEP_CACHE:
    _STEP_CACHE[key] = _make_step(graphdef, treedef, spectral, method,
                                  log_every)
  return _STEP_CACHE[key]


def train(config: Config, activation: str, n: int, steps: int, lr: float,
          spectral: bool, desc: str) -> dict:
  kd, km = jax.random.split(jax.random.key(config.seed))
  x, y = make_data(kd, config.d, n)
  graphdef, treedef, kernels = make_model(km, config.d, config.hidden,
                                          activation)
  step = _step_fn(graphdef, treedef, SPECTRAL_LAYERS if spectral else (),
                  config.polar_method, config.log_every)
  _, out = report.run_steps(
      step, (kernels, x, y, jnp.float64(lr), jnp.int32(0)), steps, desc=desc,
      chunk=25)
  out = {k: np.asarray(v) for k, v in out.items()}
  out["nr_steps"] = np.arange(0, steps, config.log_every)
  out["nr"] = out["nr"][out["nr_steps"]]
  return out


def init_stable_ranks(config: Config, activation: str, n: int) -> list[float]:
  kd, km = jax.random.split(jax.random.key(config.seed))
  x, y = make_data(kd, config.d, n)
  graphdef, treedef, kernels = make_model(km, config.d, config.hidden,
                                          activation)
  _, acts = _forward(graphdef, treedef, kernels, x, y)
  return [float(linalg.stable_rank(a)) for a in acts[1:]]


def _at(series, t):
  return float(series[min(t, len(series) - 1)])


def _finite_final(out):
  loss = out["loss"]
  return bool(np.all(np.isfinite(loss))), float(loss[-1])


def run(config: Config, out_dir: str) -> dict:
  report.enable_x64()
  os.makedirs(out_dir, exist_ok=True)
  c = config
  e4 = {"gd": train(c, "relu2", c.n, c.steps, c.lr_gd, False, "E4 GD"),
        "specgd": train(c, "relu2", c.n, c.steps, c.lr_specgd, True,
                        "E4 SpecGD")}
  e5_init = {n: init_stable_ranks(c, "swiglu", n) for n in c.swiglu_init_ns}
  e5_small = {"gd": train(c, "swiglu", c.swiglu_n_small, c.swiglu_steps_small,
                          c.swiglu_lr_gd_small, False, "E5 GD small n")}
  for lr in c.swiglu_lr_specgd_small:
    e5_small[f"specgd lr={lr:g}"] = train(
        c, "swiglu", c.swiglu_n_small, c.swiglu_steps_small, lr, True,
        f"E5 SpecGD lr={lr:g} small n")
  e5_large = {
      "gd": train(c, "swiglu", c.swiglu_n_large, c.swiglu_steps_large,
                  c.swiglu_lr_gd_large, False, "E5 GD large n"),
      "specgd": train(c, "swiglu", c.swiglu_n_large, c.swiglu_steps_large,
                      c.swiglu_lr_specgd_large, True, "E5 SpecGD large n")}

  rows = []
  for part, runs in (("E4", e4), ("E5_small", e5_small), ("E5_large", e5_large)):
    for method, out in runs.items():
      nr_at = {int(t): j for j, t in enumerate(out["nr_steps"])}
      for t in range(len(out["loss"])):
        row = {"part": part, "method": method, "step": t,
               "loss": float(out["loss"][t]),
               **{f"st_A{i + 1}": float(out["st"][t, i]) for i in range(3)}}
        if t in nr_at:
          row.update({f"nr_G{i + 1}": float(out["nr"][nr_at[t], i])
                      for i in range(3)})
        rows.append(row)
  rows += [{"part": "E5_init", "n": n, **{f"st_A{i + 1}": v
                                          for i, v in enumerate(vals)}}
           for n, vals in e5_init.items()]
  report.write_jsonl(os.path.join(out_dir, "metrics.jsonl"), rows)

  figures = [_fig_e4(c, e4, out_dir), _fig_e5(c, e5_init, e5_small, e5_large,
                                              out_dir)]
  claims, metrics = _claims(c, e4, e5_init, e5_small, e5_large)
  summary = (
      f"E4: ReLU² MLP {c.d} → {c.hidden} → {c.hidden} → {c.hidden} → 1, "
      f"n = {c.n}, {c.steps} iterations, GD lr {c.lr_gd}, block-SpecGD lr "
      f"{c.lr_specgd} (paper: d = 128, h = 512, n = 512, 2000 iterations; "
      "quick mode runs fewer iterations). "
      f"E5: the SwiGLU MLP at n = {c.swiglu_n_small} ({c.swiglu_steps_small} "
      f"iterations; GD lr {c.swiglu_lr_gd_small}, SpecGD lr ∈ "
      f"{list(c.swiglu_lr_specgd_small)}) and n = {c.swiglu_n_large} "
      f"({c.swiglu_steps_large} iterations; GD lr {c.swiglu_lr_gd_large}, "
      f"SpecGD lr {c.swiglu_lr_specgd_large}, the launcher's values); init "
      f"stable ranks for n ∈ {list(c.swiglu_init_ns)}. Seed {c.seed}, float64, "
      f"exact polar factor ({c.polar_method}). Diverged runs (non-finite "
      "loss) are shown as such, not dropped.")
  return {"claims": claims, "figures": figures, "summary": summary,
          "metrics": metrics}


def _fig_e4(c, e4, out_dir):
  fig, axes = report.subplots(3)
  report.plot_curves(axes[0], {"GD": e4["gd"]["loss"],
                               "block-SpecGD": e4["specgd"]["loss"]},
                     ylabel="training loss (MSE)",
                     title=f"ReLU² MLP: loss (Fig. 4a), n={c.n}")
  st = {f"st(A_{i + 1}) {m}": e4[m]["st"][:, i]
        for m in ("gd", "specgd") for i in range(3)}
  styles = {f"st(A_{i + 1}) {m}": {"color": f"C{i}",
                                   "ls": "-" if m == "gd" else "--"}
            for m in ("gd", "specgd") for i in range(3)}
  report.plot_curves(axes[1], st, logy=False, styles=styles,
                     ylabel="stable rank st(A_ℓ)",
                     title="post-activation stable ranks (Fig. 1)\n"
                           "solid GD, dashed block-SpecGD")
  nr = {f"nr(G_{i + 1}) {m}": e4[m]["nr"][:, i]
        for m in ("gd", "specgd") for i in range(3)}
  styles = {f"nr(G_{i + 1}) {m}": {"color": f"C{i}",
                                   "ls": "-" if m == "gd" else "--"}
            for m in ("gd", "specgd") for i in range(3)}
  report.plot_curves(axes[2], nr, x=e4["gd"]["nr_steps"], logy=False,
                     styles=styles,
                     ylabel="gradient nuclear rank nr(G_ℓ)",
                     title="gradient nuclear ranks (Fig. 4b)\n"
                           "solid GD, dashed block-SpecGD")
  return report.save_figure(fig, os.path.join(out_dir, "fig1_fig4_relu2.png"))


def _fig_e5(c, e5_init, e5_small, e5_large, out_dir):
  fig, axes = report.subplots(3)
  ns = list(e5_init)
  report.plot_curves(axes[0], {f"st(A_{i + 1})": [e5_init[n][i] for n in ns]
                               for i in range(3)}, x=ns,
                     xlabel="batch size n", ylabel="stable rank at init",
                     title="SwiGLU MLP: st at init vs n (Fig. 17)")
  axes[0].set_xscale("log", base=2)
  for line in axes[0].get_lines():
    line.set_marker("o")
  report.plot_curves(axes[1], {k: v["loss"] for k, v in e5_small.items()},
                     ylabel="training loss (MSE)",
                     title=f"SwiGLU, n={c.swiglu_n_small} (Fig. 18a)")
  report.plot_curves(axes[2], {k: v["loss"] for k, v in e5_large.items()},
                     ylabel="training loss (MSE)",
                     title=f"SwiGLU, n={c.swiglu_n_large} (Fig. 18b)")
  return report.save_figure(fig, os.path.join(out_dir, "fig17_fig18_swiglu.png"))


def _e4_claims(c, e4):
  """C18–C19b (ReLU² MLP): ``(claims, metrics)``."""
  E = NAME
  gd, sd = e4["gd"], e4["specgd"]
  st_rng = [(float(gd["st"][:, i].min()), float(gd["st"][:, i].max()))
            for i in range(3)]
  checkpoints = [t for t in (10, 50, 100, 200, c.steps - 1) if t < c.steps]
  loss_pts = {t: (_at(gd["loss"], t), _at(sd["loss"], t)) for t in checkpoints}
  nr0 = [float(gd["nr"][0, i]) for i in range(3)]
  nr_peak = [float(gd["nr"][:, i].max()) for i in range(3)]
  st0 = [float(x) for x in gd["st"][0]]
  # nr(G_ℓ) against st(A_{ℓ−1}); A_0 = x is not logged, so layers 2 and 3.
  cond0 = [nr0[i] >= st0[i - 1] for i in (1, 2)]
  t100 = min(100, c.steps - 1)
  claims = [
      report.claim(
          "C18", E, "Post-activation stable ranks stay small during GD "
          f"(≪ {c.hidden}, the maximum)",
          "st(A₁) ≈ 5.8, st(A₂) ≈ 3.7–4.1, st(A₃) ≈ 1.4–3.4 [M]; "
          "Fig. 1 axis 0–6",
          "; ".join(f"st(A_{i + 1}) {lo:.2f}–{hi:.2f}"
                    for i, (lo, hi) in enumerate(st_rng)),
          all(hi <= 10 for _, hi in st_rng), "max over training ≤ 10"),
      report.claim(
          "C19a", E, "Gradient nuclear ranks are large at init and exceed the "
          "incoming stable ranks: nr(G_ℓ) ≥ st(A_{ℓ−1}) for ℓ = 2, 3",
          "nr(G₁), nr(G₂) ≈ 48 at init, peak ≈ 67–71 [M] (paper axis to ~64)",
          f"nr(G₁..₃) at init {report.fmt(nr0)}, peak {report.fmt(nr_peak)}; "
          f"st(A₁..₃) at init {report.fmt(st0)}",
          all(cond0), "nr(G_ℓ) ≥ st(A_{ℓ−1}) at init for ℓ = 2, 3"),
      report.claim(
          "C19b", E, "Block-SpecGD drops the loss much faster than GD early",
          "iteration 50 / 100 / 200: SpecGD 9.2e-3 / 1.1e-4 / 2.0e-6 vs GD "
          "0.39 / 0.26 / 0.022 [M] (paper size); 'significantly faster' (paper)",
          "; ".join(f"t={t}: SpecGD {report.fmt(s)} vs GD {report.fmt(g)}"
                    for t, (g, s) in loss_pts.items()),
          loss_pts[t100][1] * 10 <= loss_pts[t100][0] if t100 in loss_pts
          else None, f"SpecGD ≤ GD/10 at t = {t100}"),
  ]
  metrics = {"st_range_gd": st_rng, "nr0": nr0, "nr_peak": nr_peak,
             "loss_checkpoints": {str(t): v for t, v in loss_pts.items()},
             "st0": st0}
  return claims, metrics


def _e5_init_claims(c, e5_init, relu2_st0) -> list[dict]:
  """C20a–b: SwiGLU stable ranks at init, against n and against ReLU²."""
  E = NAME
  ns = list(e5_init)
  st_init_small = e5_init[ns[0]]
  st_init_large = e5_init[ns[-1]]
  return [
      report.claim(
          "C20a", E, "SwiGLU hidden-layer stable ranks at init grow with the "
          "batch size n (Fig. 17)",
          "'grow noticeably with the batch size'; (90, 80, 33) at n = 512 vs "
          "(113, 224, 97) at n = 8196 [M]",
          "; ".join(f"n={n}: {report.fmt(e5_init[n])}" for n in ns),
          all(b > 1.2 * a for a, b in zip(st_init_small, st_init_large)),
          f"each layer: st at n={ns[-1]} > 1.2 × st at n={ns[0]}"),
      report.claim(
          "C20b", E, "SwiGLU init stable ranks are far above ReLU²'s",
          "90, 80, 33 (SwiGLU) vs ≈ 3–6 (ReLU²) at n = 512 [M]",
          f"SwiGLU at n={c.swiglu_n_small}: "
          f"{report.fmt(e5_init.get(c.swiglu_n_small, st_init_small))}; "
          f"ReLU² max {relu2_st0:.3g}",
          min(e5_init.get(c.swiglu_n_small, st_init_small)[:2])
          > 3 * relu2_st0, "st(A₁), st(A₂) > 3 × ReLU²'s largest"),
  ]


def _e5_claims(c, e5_init, e5_small, e5_large, relu2_st0):
  """C20a–e (SwiGLU MLP): ``(claims, metrics)``."""
  E = NAME
  small_final = {k: _finite_final(v) for k, v in e5_small.items()}
  gd_ok, gd_fin = small_final["gd"]
  stable_sd = {k: f for k, (ok, f) in small_final.items()
               if k != "gd" and ok}
  best_sd = min(stable_sd.values()) if stable_sd else None
  diverged = [k for k, (ok, _) in small_final.items() if not ok]
  lg, ls_ = _finite_final(e5_large["gd"]), _finite_final(e5_large["specgd"])
  ratio_large = lg[1] / ls_[1] if lg[0] and ls_[0] and ls_[1] > 0 else None
  # Judged on the small-n runs (the Fig. 18a setting, trained long enough);
  # the short large-n runs are shown alongside.
  st3_final = [float(v["st"][-1, 2]) for v in e5_small.values()
               if np.all(np.isfinite(v["loss"]))]
  st3_large = [float(v["st"][-1, 2]) for v in e5_large.values()
               if np.all(np.isfinite(v["loss"]))]
  claims = _e5_init_claims(c, e5_init, relu2_st0) + [
      report.claim(
          "C20c", E, f"Small batch (n = {c.swiglu_n_small}): block-SpecGD beats "
          "GD by orders of magnitude",
          "loss at iteration 200: 1.2e-13 (SpecGD lr 0.01) vs 9.5e-5 (GD) at "
          "n = 512 [M]; SpecGD lr 0.025 diverged in [M]",
          f"final: GD {report.fmt(gd_fin)}, SpecGD "
          + ", ".join(f"{k.split(' ', 1)[1]}: {report.fmt(f)}"
                      for k, (ok, f) in small_final.items() if k != "gd")
          + (f"; diverged: {', '.join(diverged)}" if diverged else ""),
          best_sd is not None and gd_ok and best_sd * 100 <= gd_fin,
          "best stable SpecGD ≤ GD/100 at the last iteration"),
      report.claim(
          "C20d", E, f"Large batch (n = {c.swiglu_n_large}): GD and SpecGD "
          "'essentially coincide'",
          "within ~2× (0.126 vs 0.062 at iteration 150, n = 8196) [M]",
          f"final GD {report.fmt(lg[1])}, SpecGD {report.fmt(ls_[1])}, ratio "
          f"{report.fmt(ratio_large)}",
          ratio_large is not None and 1 / 3 <= ratio_large <= 3,
          f"GD/SpecGD loss ratio in [1/3, 3] at the last iteration "
          f"({c.swiglu_steps_large})"),
      report.claim(
          "C20e", E, "st(A₃) collapses to ≈ 3 during SwiGLU training",
          "'the third layer drops rapidly to stable rank ≈ 3' (caption)",
          f"final st(A₃) at n={c.swiglu_n_small}: {report.fmt(st3_final)} "
          f"(from {report.fmt(e5_init[c.swiglu_n_small][2]) if c.swiglu_n_small in e5_init else 'n/a'} at init); "
          f"at n={c.swiglu_n_large} after {c.swiglu_steps_large} iterations: "
          f"{report.fmt(st3_large)}",
          bool(st3_final) and max(st3_final) <= 6,
          f"final st(A₃) ≤ 6 in every finite n={c.swiglu_n_small} run"),
  ]
  metrics = {"st_init": {str(n): v for n, v in e5_init.items()},
             "small_final": {k: v[1] for k, v in small_final.items()},
             "large_final": {"gd": lg[1], "specgd": ls_[1]}}
  return claims, metrics


def _claims(c, e4, e5_init, e5_small, e5_large):
  c4, m4 = _e4_claims(c, e4)
  c5, m5 = _e5_claims(c, e5_init, e5_small, e5_large, max(m4.pop("st0")))
  return c4 + c5, {"e4": m4, "e5": m5}
