"""Does the condition predict the step? The one-step advantage probe (issue 10).

Paper 1's layerwise condition ``nr(G_ℓ) ≥ st(A_{ℓ−1})`` says when a spectral
step's *guaranteed* decrease beats a Euclidean one's. This experiment asks
whether it also predicts the decrease the steps really give: at many points of
training it runs :func:`spectral_jax.probe.probe_step` on every matrix (all
other parameters fixed) and compares the predicted ratio ``nr/st`` with the
realized ratio ``Δ_spec/Δ_GD`` under the paper's step rules, under the best
step along each direction (quadratic model, one HVP per direction) and under a
short line search on the true loss.

Models:
  * E1: RF-ReLU(k=100, d=50, n=400), ``(1/2n)‖WA − Y‖²`` from ``W_0 = 0``,
    probed along the GD trajectory (float64; the loss is quadratic, so the
    constants are exact with c = 1).
  * Spiked (arXiv:2512.04299 Lemma 3.5): ``B = uuᵀ + Σ``, ``‖u‖² = d``,
    ``Σ = diag(U[1, 2])``, realised as ``A = √d·B^{1/2}`` (so ``AAᵀ/n = B``
    with ``n = d``), ``Y = W♯A``; GD with ``η = 1/(1 + ‖B‖)`` from ``W_0 = 0``.
  * E4: the bias-free 4-layer ReLU² MLP ``d → 4d → 4d → 4d → 1`` on
    ``y = x_1x_2x_3``, ``x ~ N(0, I_d)``, loss ``mean((f − y)²)``, trained by
    the paper's layerwise GD (``lr·n/‖A_{ℓ−1}‖_op²``, lr = 0.081); W_1..W_3
    probed (W_4 is a single column: polar(G) ∝ G, the two directions
    coincide). Curvature scale ``c = 1/0.081`` so that the probe's GD step is
    the paper's tuned GD step (the spectral step then uses the same c).
  * GPT: :class:`spectral_jax.models.gpt.GPT` on the stdlib byte corpus,
    trained a few AdamW steps; every matrix per layer (Table 1 activations,
    one-hot tokens for the embedding), c = 1, Gauss–Newton curvature for the
    best step (the cross-entropy Hessian is indefinite along G at init).

References:
  Davis & Drusvyatskiy, arXiv:2512.04299, §1.2, §3 (Lemma 3.5), §4, Fig. 4.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import report
from spectral_jax import linalg
from spectral_jax import probe

NAME = "probe_advantage"
TITLE = "Does the condition predict the step? One-step advantage probe"

_REALIZED = ("paper", "best", "line_search")
_HOLD_FRACTION = 0.9


@dataclasses.dataclass(frozen=True)
class Config:
  seed: int = 0
  line_search: bool = True
  # E1: RF-ReLU(k, d, n) along GD.
  rf_k: int = 100
  rf_d: int = 50
  rf_n: int = 400
  rf_steps: int = 300
  rf_probe_every: int = 10
  # Spiked one-step model (claim 16).
  spiked_dims: tuple[int, ...] = (100, 200)
  spiked_probe_steps: tuple[int, ...] = (0, 1, 2, 5, 10, 20)
  # E4: 4-layer ReLU² MLP.
  mlp_d: int = 64
  mlp_hidden: int = 256
  mlp_n: int = 256
  mlp_steps: int = 200
  mlp_probes: int = 6
  mlp_lr: float = 0.081
  # GPT (float32), AdamW steps; probes at the listed steps (≈ 15 s on 2
  # idle cores; it used to deadlock inside `reproduce`, which had cut XLA's
  # intra-op pool to one thread, see experiments/reproduce.py).
  gpt: bool = True
  gpt_n_layer: int = 2
  gpt_d_model: int = 64
  gpt_n_head: int = 2
  gpt_context: int = 64
  gpt_batch: int = 4
  gpt_probe_steps: tuple[int, ...] = (0, 10, 30)
  gpt_lr: float = 3e-3
  gpt_curvature_scale: float = 1.0
  gpt_corpus_bytes: int = 2_000_000
  gpt_layer_batch_size: int | None = 4   # lax.map chunks: bounds memory

  @classmethod
  def full(cls) -> "Config":
    from spectral_jax.models.gpt import GPTConfig
    g = GPTConfig()  # The default GPT.
    return cls(rf_steps=1000, rf_probe_every=5,
               spiked_dims=(100, 200, 400, 800),
               spiked_probe_steps=(0, 1, 2, 3, 5, 10, 20, 50, 100),
               mlp_d=128, mlp_hidden=512, mlp_n=512, mlp_steps=2000,
               mlp_probes=21, gpt=True, gpt_n_layer=g.n_layer, gpt_d_model=g.d_model,
               gpt_n_head=g.n_head, gpt_context=g.context, gpt_batch=8,
               gpt_probe_steps=(0, 50, 100, 200))


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------
def _tag(rep: probe.ProbeReport, model: str, step: int) -> list[dict]:
  return [{"model": model, "step": int(step), **r} for r in rep.records()]


def _agreement(rows, regime):
  flags = [r[f"{regime}_agrees"] for r in rows
           if r.get(f"{regime}_agrees") is not None]
  return sum(flags), len(flags)


# --------------------------------------------------------------------------
# E1: random features along GD
# --------------------------------------------------------------------------
def _rf_problem(cfg: Config):
  from experiments.lib import random_features as rf
  p = rf.make_problem(jax.random.key(cfg.seed), cfg.rf_k, cfg.rf_d, cfg.rf_n,
                      activation="relu", target="realizable",
                      dtype=jnp.float64)
  return p.a, p.y


def _lsq_probe(line_search):
  """Jitted probe of (1/2n)‖WA − Y‖² at W (paper layout: W m×k, A k×n).

  The data are arguments, not closed-over constants: XLA would otherwise
  constant-fold the Gram matrices at compile time, slowly.
  """
  @jax.jit
  def run(w, a, y):
    def loss(params):
      r = params["w"] @ a - y
      return jnp.sum(r * r) / (2 * a.shape[1])
    return probe.probe_step(loss, {"w": w}, {"w": a.T},
                            line_search=line_search)
  return run


@jax.jit
def _lsq_gd_step(w, a, y, eta):
  return w - eta * ((w @ a - y) @ a.T / a.shape[1])


def _run_rf(cfg: Config):
  a, y = _rf_problem(cfg)
  n = a.shape[1]
  eta = n / jnp.linalg.norm(a, 2) ** 2          # 1/L_F
  run = _lsq_probe(cfg.line_search)

  probe_at = set(range(0, cfg.rf_steps + 1, cfg.rf_probe_every)) | {1, 2, 3, 5}
  w = jnp.zeros((y.shape[0], a.shape[0]), jnp.float64)
  rows = []
  for t in range(cfg.rf_steps + 1):
    if t in probe_at:
      rows += _tag(run(w, a, y), "E1 RF-ReLU", t)
    w = _lsq_gd_step(w, a, y, eta)
  return rows


# --------------------------------------------------------------------------
# Spiked one-step model (Lemma 3.5)
# --------------------------------------------------------------------------
def _run_spiked(cfg: Config):
  from experiments.lib import random_features as rf
  rows = []
  run = _lsq_probe(cfg.line_search)
  for i, d in enumerate(cfg.spiked_dims):
    key_b, key_w = jax.random.split(jax.random.key(cfg.seed + 1000 + i))
    b = rf.spiked_gram(key_b, d, dtype=jnp.float64).b
    lam, q = jnp.linalg.eigh(b)
    a = jnp.sqrt(float(d)) * (q * jnp.sqrt(jnp.maximum(lam, 0))) @ q.T
    w_sharp = jax.random.normal(key_w, (d, d), jnp.float64) / np.sqrt(d)
    y = w_sharp @ a
    eta = 1.0 / (1.0 + lam[-1])
    w = jnp.zeros((d, d), jnp.float64)
    for t in range(max(cfg.spiked_probe_steps) + 1):
      if t in cfg.spiked_probe_steps:
        rows += [{**r, "d": d} for r in _tag(run(w, a, y), "spiked", t)]
      w = _lsq_gd_step(w, a, y, eta)
  return rows


# --------------------------------------------------------------------------
# E4: 4-layer ReLU² MLP
# --------------------------------------------------------------------------
def _run_mlp(cfg: Config):
  from flax import nnx
  from spectral_jax import diagnostics
  from spectral_jax.models.mlp import MLP

  d, h, n = cfg.mlp_d, cfg.mlp_hidden, cfg.mlp_n
  key_x, key_m = jax.random.split(jax.random.key(cfg.seed + 7))
  x = jax.random.normal(key_x, (n, d), jnp.float64)
  y = x[:, 0:1] * x[:, 1:2] * x[:, 2:3]
  model = MLP((d, h, h, h, 1), activation="relu2", init="torch",
              rngs=nnx.Rngs(int(jax.random.randint(key_m, (), 0, 2**30))),
              param_dtype=jnp.float64)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  kernels = [f"layers/{i}/kernel" for i in range(4)]
  probed = kernels[:3]
  x_op_sq = float(np.linalg.eigvalsh(np.asarray(x.T @ x))[-1])

  # Data are jit arguments (closed-over constants get constant-folded).
  def loss(p, x, y):
    return jnp.mean((nnx.merge(graphdef, p, rest)(x) - y) ** 2)

  def acts_of(p, x):
    return {probe.path_key(k): v for k, v in
            diagnostics.capture_activations(nnx.merge(graphdef, p, rest),
                                            x).items()}

  @jax.jit
  def gd(p, x, y):
    # The paper's layerwise GD: W_ℓ ← W_ℓ − lr·(n/‖A_{ℓ−1}‖_op²)·G_ℓ.
    acts = acts_of(p, x)
    value, grads = jax.value_and_grad(loss)(p, x, y)
    scale = {k: cfg.mlp_lr * n / (x_op_sq if k == kernels[0] else
                                  linalg.operator_norm_sq(acts[k], 30)) for k in kernels}
    new = jax.tree_util.tree_map_with_path(
        lambda path, w, g: w - scale[probe.path_key(path)] * g, p, grads)
    return new, value

  @jax.jit
  def run(p, x, y):
    return probe.probe_step(lambda q: loss(q, x, y), p, acts_of(p, x),
                            paths=probed,
                            curvature_scale=1.0 / cfg.mlp_lr,
                            line_search=cfg.line_search)

  probe_at = set(np.unique(np.linspace(0, cfg.mlp_steps, cfg.mlp_probes)
                           .round().astype(int)).tolist())
  rows, losses = [], []
  for t in range(cfg.mlp_steps + 1):
    if t in probe_at:
      rows += _tag(run(params, x, y), "E4 MLP", t)
    params, value = gd(params, x, y)
    losses.append(float(value))
  return rows, losses


# --------------------------------------------------------------------------
# GPT
# --------------------------------------------------------------------------
def _run_gpt(cfg: Config):
  import optax
  from flax import nnx
  from spectral_jax import diagnostics
  from spectral_jax.models import gpt as gpt_lib
  from spectral_jax.training import data as data_lib

  corpus = data_lib.stdlib_corpus(max_bytes=cfg.gpt_corpus_bytes)
  gcfg = gpt_lib.GPTConfig(
      vocab_size=corpus.vocab_size, context=cfg.gpt_context,
      n_layer=cfg.gpt_n_layer, n_head=cfg.gpt_n_head,
      d_model=cfg.gpt_d_model, param_dtype=jnp.float32)
  model = gpt_lib.GPT(gcfg, rngs=nnx.Rngs(cfg.seed))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x, y = corpus.train_batch(cfg.seed, 0, cfg.gpt_batch, cfg.gpt_context)
  probe_x, probe_y = jnp.asarray(x), jnp.asarray(y)

  def ce(logits, targets):
    return optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), targets).mean()

  def loss_on(p, xb, yb):
    return ce(nnx.merge(graphdef, p, rest)(xb), yb)

  opt = optax.adamw(cfg.gpt_lr)
  opt_state = opt.init(params)

  @jax.jit
  def train_step(p, s, xb, yb):
    value, grads = jax.value_and_grad(loss_on)(p, xb, yb)
    updates, s = opt.update(grads, s, p)
    return optax.apply_updates(p, updates), s, value

  @jax.jit
  def run(p, xb, yb):
    acts = diagnostics.capture_activations(nnx.merge(graphdef, p, rest), xb)
    return probe.probe_step(
        lambda q: loss_on(q, xb, yb), p, acts,
        curvature_scale=cfg.gpt_curvature_scale,
        line_search=cfg.line_search,
        layer_batch_size=cfg.gpt_layer_batch_size,
        gauss_newton=(lambda q: nnx.merge(graphdef, q, rest)(xb),
                      lambda out: ce(out, yb)))

  rows, losses = [], []
  for t in range(max(cfg.gpt_probe_steps) + 1):
    if t in cfg.gpt_probe_steps:
      rows += _tag(run(params, probe_x, probe_y), "GPT", t)
    xb, yb = corpus.train_batch(cfg.seed, t + 1, cfg.gpt_batch,
                                cfg.gpt_context)
    params, opt_state, value = train_step(params, opt_state, jnp.asarray(xb),
                                          jnp.asarray(yb))
    losses.append(float(value))
  return rows, losses, gcfg


# --------------------------------------------------------------------------
# Figures, claims, summary
# --------------------------------------------------------------------------
_MARKERS = {"E1 RF-ReLU": "o", "spiked": "s", "E4 MLP": "^", "GPT": "D"}


def _scatter(rows, regimes, path):
  fig, axes = report.subplots(len(regimes), width=4.6, height=4.2)
  for ax, regime in zip(axes, regimes):
    lo, hi, off = np.inf, -np.inf, 0
    for i, model in enumerate(_MARKERS):
      pts = [(r["predicted_ratio"], r[f"{regime}_ratio"]) for r in rows
             if r["model"] == model]
      if not pts:
        continue
      xs, ys = np.asarray(pts, float).T
      ok = (xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)
      off += int(np.sum(~ok))
      if ok.any():
        ax.scatter(xs[ok], ys[ok], s=14, alpha=0.6, marker=_MARKERS[model],
                   color=f"C{i}", label=model)
        lo = min(lo, xs[ok].min(), ys[ok].min())
        hi = max(hi, xs[ok].max(), ys[ok].max())
    if np.isfinite(lo):
      lo, hi = lo / 1.5, hi * 1.5
      ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="realized = predicted")
      ax.axhline(1.0, color="k", ls="--", lw=1)
      ax.axvline(1.0, color="k", ls=":", lw=1)
      ax.set_xlim(lo, hi)
      ax.set_ylim(lo, hi)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted nr(G)/st(A)")
    ax.set_ylabel("realized Δ_spec / Δ_GD")
    ax.set_title(f"{regime} ({off} points ≤ 0 or undefined, not shown)",
                 fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
  return report.save_figure(fig, path)


def _trajectory(rows, regimes, path):
  fig, axes = report.subplots(1, width=6.0, height=4.0)
  ax = axes[0]
  e1 = [r for r in rows if r["model"] == "E1 RF-ReLU"]
  steps = [r["step"] for r in e1]
  curves = {"predicted nr/st": [r["predicted_ratio"] for r in e1]}
  for regime in regimes:
    curves[f"{regime}: Δ_spec/Δ_GD"] = [r[f"{regime}_ratio"] for r in e1]
  report.plot_curves(ax, curves, x=steps, xlabel="GD iteration",
                     ylabel="ratio (log)",
                     title="E1 RF-ReLU along GD: predicted vs realized")
  ax.axhline(1.0, color="k", ls="--", lw=1)
  return report.save_figure(fig, path)


def _claims(rows, models, regimes):
  out = []
  for model in models:
    sub = [r for r in rows if r["model"] == model]
    if not sub:
      continue
    for regime in regimes:
      agree, total = _agreement(sub, regime)
      frac = agree / total if total else None
      out.append(report.claim(
          f"P10-{model.split()[0]}-{regime}", NAME,
          f"{model}: the verdict Δ_spec ≥ Δ_GD under the '{regime}' step "
          "agrees with the prediction nr(G) ≥ st(A), per (layer, step)",
          "(1.5)/(1.8): the spectral step's guarantee is larger iff "
          "nr ≥ st (a statement about guarantees, not realized steps)",
          f"{agree}/{total} = {report.fmt(frac)}" if total else
          "no defined verdicts",
          None if not total else frac >= _HOLD_FRACTION,
          rule=f"fraction of defined verdicts that agree ≥ {_HOLD_FRACTION}",
          # The papers state (1.5)/(1.8) for guaranteed decreases; agreement
          # of realized steps is an observation beyond them (the independent
          # NumPy implementation predicts the same rates), except the
          # paper's own step, whose realized verdict is the claim's.
          status=None if regime == "paper" else report.FINDING))
  return out


def _interval_and_bounds(rows):
  """On the quadratic models: nr ≥ 2st ⇒ paper spec ≥ paper GD; realized ≥ guaranteed."""
  quad = [r for r in rows if r["model"] in ("E1 RF-ReLU", "spiked")
          and r["guaranteed_verdict"] is not None]
  strong = [r for r in quad if r["nr"] >= 2 * r["st"]]
  ok_strong = sum(r["paper_spec"] >= r["paper_gd"] for r in strong)
  tol = 1e-9
  bad_bounds = 0
  for r in quad:
    for regime in _REALIZED:
      if f"{regime}_gd" not in r:
        continue
      for side in ("gd", "spec"):
        if not r[f"{regime}_{side}"] >= r[f"guaranteed_{side}"] * (1 - tol):
          bad_bounds += 1
  return [
      report.claim(
          "P10-interval", NAME,
          "Quadratic models: wherever nr ≥ 2·st(A), the paper's spectral "
          "step decreases the loss at least as much as the paper's GD step",
          "arXiv:2512.04299 §1.2, interval argument",
          f"{ok_strong}/{len(strong)} (layer, step) pairs",
          ok_strong == len(strong) if strong else None,
          rule="all pairs with nr ≥ 2 st"),
      report.claim(
          "P10-bounds", NAME,
          "Quadratic models: every realized decrease (paper, best, line "
          "search; GD and spectral) is at least its guaranteed one",
          "(1.4): the upper models are exact majorants",
          f"{bad_bounds} violations over {len(quad)} pairs",
          bad_bounds == 0 if quad else None,
          rule="no violation beyond 1e-9 relative"),
  ]


def _regime_table(rows, models, regimes) -> str:
  lines = ["| model | (layer, step) pairs | " + " | ".join(regimes) + " |",
           "|---|---|" + "---|" * len(regimes)]
  for model in models:
    sub = [r for r in rows if r["model"] == model]
    if not sub:
      continue
    cells = []
    for regime in regimes:
      agree, total = _agreement(sub, regime)
      cells.append(f"{agree}/{total}" if total else "n/a")
    lines.append(f"| {model} | {len(sub)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _disagreements(rows, models, regimes) -> list[str]:
  """Plain sentences where realized regimes disagree with the prediction."""
  notes = []
  for model in models:
    sub = [r for r in rows if r["model"] == model]
    for regime in regimes:
      bad = [r for r in sub if r.get(f"{regime}_agrees") is False]
      if not bad:
        continue
      pred_spec = sum(r["predicted"] for r in bad)
      notes.append(
          f"- {model}, {regime}: {len(bad)} of {len(sub)} (layer, step) "
          f"pairs disagree ({pred_spec} where nr ≥ st predicted the spectral "
          f"step but GD did better, {len(bad) - pred_spec} the reverse).")
    undefined = [r for r in sub if r.get("best_agrees") is None
                 and r["guaranteed_verdict"] is not None]
    if undefined:
      notes.append(f"- {model}: the best-step verdict is undefined on "
                   f"{len(undefined)} pairs (curvature ⟨D, H D⟩ ≤ 0 along G "
                   "or polar(G)).")
  return notes


def run(config: Config, out_dir) -> dict:
  report.enable_x64()
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  regimes = _REALIZED if config.line_search else _REALIZED[:2]
  timings, cpu = {}, {}

  def timed(name, fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    timings[name] = time.perf_counter() - t0
    cpu[name] = time.process_time() - c0
    return out

  rows = timed("E1", lambda: _run_rf(config))
  rows += timed("spiked", lambda: _run_spiked(config))
  mlp_rows, mlp_losses = timed("E4", lambda: _run_mlp(config))
  rows += mlp_rows
  gpt_note = "not run (Config.gpt = False)."
  gpt_losses = []
  gpt_available = importlib.util.find_spec("spectral_jax.models.gpt")
  if config.gpt and gpt_available is None:
    gpt_note = "not run: spectral_jax.models.gpt is not available."
  elif config.gpt:
    gpt_rows, gpt_losses, gcfg = timed("GPT", lambda: _run_gpt(config))
    rows += gpt_rows
    gpt_note = (f"GPT(n_layer={gcfg.n_layer}, d_model={gcfg.d_model}, "
                f"n_head={gcfg.n_head}, context={gcfg.context}, vocab="
                f"{gcfg.vocab_size}), float32, batch {config.gpt_batch}, "
                f"AdamW lr {config.gpt_lr} (loss {report.fmt(gpt_losses[0])} "
                f"→ {report.fmt(gpt_losses[-1])}), probed at steps "
                f"{list(config.gpt_probe_steps)} on one fixed batch; "
                f"c = {config.gpt_curvature_scale}, Gauss–Newton curvature.")
  models = [m for m in _MARKERS if any(r["model"] == m for r in rows)]

  report.write_jsonl(os.path.join(out_dir, "metrics.jsonl"), rows)
  figures = [
      _scatter(rows, regimes, os.path.join(out_dir, "scatter.png")),
      _trajectory(rows, regimes, os.path.join(out_dir, "e1_trajectory.png")),
  ]
  claims = _claims(rows, models, regimes) + _interval_and_bounds(rows)

  notes = _disagreements(rows, models, regimes)
  summary = "\n".join([
      "For every probed matrix (all other parameters fixed) the probe "
      "compares GD's direction G with the spectral direction polar(G): the "
      "guaranteed decreases (ratio = nr/st, the prediction), the realized "
      "decreases of the paper's steps 1/L^F and ‖G‖_*/L^op, the best step "
      "along each direction ⟨G,D⟩²/(2⟨D,HD⟩) and a 7-point line search on "
      "the true loss. A verdict agrees when 'Δ_spec ≥ Δ_GD' equals "
      "'nr ≥ st'.",
      "",
      f"Runs (seed {config.seed}): E1 RF-ReLU(k={config.rf_k}, "
      f"d={config.rf_d}, n={config.rf_n}) float64, GD {config.rf_steps} "
      f"steps, probed every {config.rf_probe_every}; spiked model d ∈ "
      f"{list(config.spiked_dims)} at GD steps "
      f"{list(config.spiked_probe_steps)}; E4 MLP ({config.mlp_d} → "
      f"{config.mlp_hidden} ×3 → 1, n={config.mlp_n}, ReLU², torch init, "
      f"float64) layerwise GD lr {config.mlp_lr} for {config.mlp_steps} steps "
      f"(loss {report.fmt(mlp_losses[0])} → {report.fmt(mlp_losses[-1])}), "
      f"W_1..W_3 probed at {config.mlp_probes} points, c = 1/lr; "
      f"GPT: {gpt_note}",
      "",
      "Fraction of (layer, step) pairs whose realized verdict agrees with "
      "nr ≥ st:",
      "",
      _regime_table(rows, models, regimes),
      "",
      "Where the realized regimes disagree with the prediction:" if notes
      else "No regime disagrees with the prediction on any pair.",
      *notes,
      "",
      "Wall time (CPU time) in s: " + ", ".join(
          f"{k} {v:.1f} ({cpu[k]:.1f})" for k, v in timings.items()) + ".",
  ])
  metrics = {
      "agreement": {m: {g: dict(zip(("agree", "total"), _agreement(
          [r for r in rows if r["model"] == m], g))) for g in regimes}
          for m in models},
      "pairs": {m: sum(r["model"] == m for r in rows) for m in models},
      "seconds": timings,
      "cpu_seconds": cpu,
      "mlp_loss": [mlp_losses[0], mlp_losses[-1]],
      "gpt_loss": gpt_losses[:1] + gpt_losses[-1:],
  }
  return {"claims": claims, "figures": figures, "summary": summary,
          "metrics": report.to_jsonable(metrics)}
