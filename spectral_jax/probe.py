r"""One-step advantage probe: does nr(G_ℓ) ≥ st(A_{ℓ−1}) predict the real step?

The layerwise condition of Davis & Drusvyatskiy compares the *guaranteed*
decreases of two steps on one weight matrix ``W_ℓ`` with every other parameter
held fixed:

.. math::
  \Delta^{g}_{GD} = \frac{\|G\|_F^2}{2 L^F}, \qquad
  \Delta^{g}_{Spec} = \frac{\|G\|_*^2}{2 L^{op}}, \qquad
  \frac{\Delta^{g}_{Spec}}{\Delta^{g}_{GD}} = \frac{nr(G)}{st(A)},

with ``L^F = c‖A‖_op²/n`` and ``L^op = c‖A‖_F²/n`` built from the incoming
activation ``A`` (SPEC (1.4), (4.8), (4.14)–(4.15); the ``C_op`` terms of
(4.14)–(4.16) are left out, which gives the paper's sufficient condition
(4.18), ``nr ≥ st``). The probe measures, for
every probed matrix, how the two directions ``D = G`` (Euclidean) and
``D = polar(G)`` (spectral) really do, in up to four *regimes*:

* ``"guaranteed"``: the two bounds above (their ratio is the prediction);
* ``"paper"``: the realized loss decrease of the paper's steps
  ``W − G/L^F`` and ``W − (‖G‖_*/L^op)·polar(G)`` on the true loss;
* ``"best"``: the best step along ``D`` under the local quadratic model,
  ``⟨G, D⟩² / (2⟨D, H D⟩)``, from one Hessian-vector product per direction
  (``H`` is the block Hessian of ``W_ℓ``, or its Gauss–Newton part);
* ``"line_search"`` (optional): the largest realized decrease over a short
  grid of steps along ``D`` on the true loss (the paper's step included).

In each regime the realized verdict "spectral is at least as good"
(``Δ_Spec ≥ Δ_GD``) is compared with the predicted one (``nr ≥ st``).

Conventions. Activations are *samples × features* — the layout of
:func:`spectral_jax.diagnostics.capture_activations` and of Flax, where a
kernel has shape ``(fan_in, fan_out)`` and ``y = x W``: pass ``A`` of shape
``(n, fan_in)``. In the paper's layout ``W`` is ``m × k`` and ``A`` is
``k × n`` (``y = W A``): pass ``A.T``. The probe never needs to know which
layout a kernel uses — ``nr``, ``st``, ``polar`` and both constants are
transpose-invariant — and only checks that the feature axis of ``A`` matches
one of the two matrix axes of ``W``. ``n`` is the number of rows of ``A``
(all leading sample axes flattened). A *stacked* leaf of shape
``(*layers, a, b)`` (``nnx.vmap``/``nnx.scan`` blocks) needs activations of
shape ``(*layers, *samples, features)``; it is reported per layer, and the
layers are probed in one batched (vmapped) call.

The curvature scale ``c``. For ``(1/2n)‖WA − Y‖²`` the constants are exact
with ``c = 1``. For any other loss ``L^F, L^op`` are only known up to a common
factor (SPEC (1.6): ``c`` = the smoothness of the loss in the layer's output;
``c = 2`` for a mean-squared error without ½ at the last layer; for inner layers
``C_F`` of (4.5)). One ``c`` multiplies both constants, so it rescales both
paper steps alike and never changes the prediction ``nr/st``, the
``"guaranteed"`` verdicts or the ``"best"`` regime; it does change the realized
``"paper"`` decreases. ``c`` may be a float or a mapping path → float.

References:
  Davis & Drusvyatskiy, *When do spectral gradient updates help in deep
  learning?*, arXiv:2512.04299, §1.2 and §4.
  Carlson, Cevher & Carin, *Stochastic spectral descent for restricted
  Boltzmann machines*, AISTATS 2015.
  Pearlmutter, *Fast exact multiplication by the Hessian*, Neural Computation
  6(1), 1994.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax import linalg

__all__ = [
    "ProbeReport",
    "ProbeStats",
    "REGIMES",
    "probe_model",
    "probe_step",
]

PyTree = Any

REGIMES = ("guaranteed", "paper", "best", "line_search")

# Multiples of the reference step tried by the line search (the reference is
# the quadratic model's best step where the curvature is positive, else the
# paper's step); the paper's step itself is always tried too.
DEFAULT_LINE_SEARCH_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)


class ProbeStats(NamedTuple):
  """Per-layer probe numbers of one parameter; every field has shape (layers,)."""
  nr: jax.Array               # nr(G) = ‖G‖_*²/‖G‖_F².
  st: jax.Array               # st(A) = ‖A‖_F²/‖A‖_op².
  grad_fro_sq: jax.Array      # ‖G‖_F².
  grad_nuclear: jax.Array     # ‖G‖_*.
  lipschitz_f: jax.Array      # L^F = c‖A‖_op²/n.
  lipschitz_op: jax.Array     # L^op = c‖A‖_F²/n.
  guaranteed_gd: jax.Array    # ‖G‖_F²/(2L^F).
  guaranteed_spec: jax.Array  # ‖G‖_*²/(2L^op).
  paper_gd: jax.Array         # L(W) − L(W − G/L^F).
  paper_spec: jax.Array       # L(W) − L(W − (‖G‖_*/L^op) polar(G)).
  curvature_gd: jax.Array     # ⟨G, H G⟩.
  curvature_spec: jax.Array   # ⟨P, H P⟩, P = polar(G).
  best_gd: jax.Array          # ⟨G, G⟩²/(2⟨G, H G⟩); NaN if ⟨G, H G⟩ ≤ 0.
  best_spec: jax.Array        # ⟨G, P⟩²/(2⟨P, H P⟩); NaN if ⟨P, H P⟩ ≤ 0.
  line_gd: jax.Array          # max over the grid of L(W) − L(W − tG); NaN if off.
  line_spec: jax.Array        # max over the grid of L(W) − L(W − tP); NaN if off.


_REGIME_FIELDS = {
    "guaranteed": ("guaranteed_gd", "guaranteed_spec"),
    "paper": ("paper_gd", "paper_spec"),
    "best": ("best_gd", "best_spec"),
    "line_search": ("line_gd", "line_spec"),
}


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------
def _finite_or_none(x) -> float | None:
  x = float(x)
  return x if math.isfinite(x) else None


@dataclasses.dataclass(frozen=True)
class ProbeReport:
  """What :func:`probe_step` measured; a pytree, so it can leave ``jax.jit``.

  Attributes:
    entries: path → :class:`ProbeStats` (arrays of shape ``(layers,)``).
    stacked: the paths whose leaf has a leading layer axis.
    regimes: the regimes measured, a subset of :data:`REGIMES`.
    curvature: ``"hessian"`` or ``"gauss_newton"``.
  """
  entries: dict[str, ProbeStats]
  stacked: tuple[str, ...] = ()
  regimes: tuple[str, ...] = REGIMES[:3]
  curvature: str = "hessian"

  def records(self) -> list[dict]:
    """One dict per (path, layer): the numbers, ratios and verdicts.

    Keys: ``path``, ``layer`` (``None`` for an unstacked leaf), ``nr``,
    ``st``, ``predicted_ratio`` (= nr/st), ``predicted`` (nr ≥ st) and, per
    regime ``r``: ``r_gd``, ``r_spec``, ``r_ratio`` (Δ_Spec/Δ_GD, NaN unless
    Δ_GD > 0), ``r_verdict`` (Δ_Spec ≥ Δ_GD, ``None`` where undefined) and
    ``r_agrees`` (verdict == predicted, ``None`` where undefined). A verdict
    is undefined where G = 0 or either decrease is not finite.
    """
    out = []
    for path, stats in self.entries.items():
      s = {k: np.asarray(v, np.float64).reshape(-1)
           for k, v in stats._asdict().items()}
      for i in range(s["nr"].shape[0]):
        nr, st = s["nr"][i], s["st"][i]
        pred_ratio = nr / st if st > 0 else float("nan")
        predicted = bool(nr >= st)
        rec = {"path": path, "layer": i if path in self.stacked else None,
               "nr": float(nr), "st": float(st),
               "predicted_ratio": float(pred_ratio), "predicted": predicted}
        for regime in self.regimes:
          f_gd, f_spec = _REGIME_FIELDS[regime]
          gd, spec = s[f_gd][i], s[f_spec][i]
          ok = (s["grad_fro_sq"][i] > 0 and np.isfinite(gd)
                and np.isfinite(spec))
          ratio = spec / gd if (ok and gd > 0) else float("nan")
          verdict = bool(spec >= gd) if ok else None
          rec[f"{regime}_gd"] = float(gd)
          rec[f"{regime}_spec"] = float(spec)
          rec[f"{regime}_ratio"] = float(ratio)
          rec[f"{regime}_verdict"] = verdict
          rec[f"{regime}_agrees"] = None if verdict is None else (
              verdict == predicted)
        out.append(rec)
    return out

  def agreement(self) -> dict[str, dict]:
    """Per regime: ``fraction`` of defined verdicts that agree, ``agree``, ``total``."""
    recs = self.records()
    out = {}
    for regime in self.regimes:
      flags = [r[f"{regime}_agrees"] for r in recs
               if r[f"{regime}_agrees"] is not None]
      out[regime] = {
          "fraction": (sum(flags) / len(flags)) if flags else float("nan"),
          "agree": int(sum(flags)), "total": len(flags)}
    return out

  def to_dict(self) -> dict:
    """JSON-ready: records (non-finite numbers as ``None``) and agreement."""
    recs = [{k: (_finite_or_none(v) if isinstance(v, float) else v)
             for k, v in r.items()} for r in self.records()]
    agree = {k: {**v, "fraction": _finite_or_none(v["fraction"])}
             for k, v in self.agreement().items()}
    return {"records": recs, "agreement": agree, "regimes": list(self.regimes),
            "curvature": self.curvature}

  def table(self) -> str:
    """A fixed-width text table: one row per (path, layer), ratios per regime."""
    recs = self.records()
    cols = ["nr", "st", "nr/st"] + [_SHORT[r] for r in self.regimes]
    name_w = max([len("parameter")] + [
        len(_row_name(r)) for r in recs])
    head = f"{'parameter':<{name_w}}" + "".join(f"{c:>10}" for c in cols) + \
        "  agree"
    lines = [head, "-" * len(head)]
    for r in recs:
      vals = [r["nr"], r["st"], r["predicted_ratio"]] + [
          r[f"{g}_ratio"] for g in self.regimes]
      marks = "".join(
          "?" if r[f"{g}_agrees"] is None else ("y" if r[f"{g}_agrees"]
                                                else "n")
          for g in self.regimes)
      lines.append(f"{_row_name(r):<{name_w}}"
                   + "".join(f"{v:>10.3g}" for v in vals) + f"  {marks}")
    agree = self.agreement()
    lines.append("-" * len(head))
    lines.append("ratio = Δ_spec/Δ_GD; pred = nr/st; agree = verdict "
                 "(ratio ≥ 1) matches nr ≥ st, per regime")
    lines.append("agreement: " + ", ".join(
        f"{g} {v['agree']}/{v['total']}" for g, v in agree.items()))
    return "\n".join(lines)

  def __str__(self) -> str:
    return self.table()


_SHORT = {"guaranteed": "guarant.", "paper": "paper", "best": "best",
          "line_search": "line"}


def _row_name(rec) -> str:
  return rec["path"] if rec["layer"] is None else (
      f"{rec['path']}[{rec['layer']}]")


jax.tree_util.register_dataclass(
    ProbeReport, data_fields=["entries"],
    meta_fields=["stacked", "regimes", "curvature"])


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------
def _key_str(k) -> str | None:
  if isinstance(k, jax.tree_util.DictKey):
    return str(k.key)
  if isinstance(k, jax.tree_util.SequenceKey):
    return str(k.idx)
  if isinstance(k, jax.tree_util.GetAttrKey):
    return k.name
  if isinstance(k, jax.tree_util.FlattenedIndexKey):
    return str(k.key)
  return str(k)


def path_to_str(path) -> str:
  """``'a.0.kernel'`` from a string, a tuple of keys or a JAX key path.

  A trailing ``.value`` (how an ``nnx.Variable`` appears in a key path) is
  dropped, so ``nnx.State`` paths read like ``nnx.to_flat_state`` ones.
  """
  if isinstance(path, str):
    return path
  keys = list(path)
  if keys and isinstance(keys[-1], jax.tree_util.GetAttrKey) and \
      keys[-1].name == "value":
    keys = keys[:-1]
  return ".".join(
      _key_str(k) if not isinstance(k, (str, int)) else str(k) for k in keys)


# --------------------------------------------------------------------------
# The probe
# --------------------------------------------------------------------------
def _safe_div(num, den):
  ok = den > 0
  return jnp.where(ok, num / jnp.where(ok, den, 1), jnp.zeros_like(num))


def _map(fn, xs, batch_size):
  """``vmap(fn)(*xs)``, or ``lax.map`` in chunks when memory matters."""
  if batch_size is None:
    return jax.vmap(fn)(*xs)
  return jax.lax.map(lambda a: fn(*a), xs, batch_size=batch_size)


def _tree_vdot(a, b):
  return sum(jnp.vdot(x, y).real for x, y in zip(jax.tree.leaves(a),
                                                   jax.tree.leaves(b)))


def _probe_leaf(loss_fn, leaves, treedef, idx, grad_leaf, acts, c,
                curvature, gauss_newton, line_search, factors, polar_method,
                batch_size, base):
  leaf = leaves[idx]
  *layer_shape, rows, cols = leaf.shape
  num = int(np.prod(layer_shape, dtype=np.int64))
  dtype = leaf.dtype

  def with_leaf(w):
    return jax.tree_util.tree_unflatten(
        treedef, leaves[:idx] + [w] + leaves[idx + 1:])

  def moved(layer, delta):
    # W with layer `layer` replaced by W_layer + delta (others fixed).
    flat = leaf.reshape(num, rows, cols)
    return flat.at[layer].add(delta.astype(dtype)).reshape(leaf.shape)

  g = grad_leaf.reshape(num, rows, cols)
  a = acts.reshape(num, -1, acts.shape[-1])
  n = a.shape[-2]
  # st and the constants from the small features × features Gram matrix.
  gram = linalg.gram(jnp.swapaxes(a, -1, -2))
  fro_sq = jnp.trace(gram, axis1=-2, axis2=-1)
  op_sq = jnp.linalg.eigvalsh(gram)[..., -1]
  st = _safe_div(fro_sq, op_sq).astype(dtype)
  lip_f = (c * op_sq / n).astype(dtype)
  lip_op = (c * fro_sq / n).astype(dtype)

  s = linalg.singular_values(g)
  nuc = jnp.sum(s, -1)
  g_fro_sq = jnp.sum(s * s, -1)
  nr = _safe_div(nuc**2, g_fro_sq)
  p = linalg.polar(g, method=polar_method)
  g_dot_p = jnp.sum(g * p, axis=(-2, -1))

  # Both directions in one batch of 2·layers: rows [0, num) are GD, the rest
  # spectral.
  layer_ids = jnp.concatenate([jnp.arange(num), jnp.arange(num)])
  dirs = jnp.concatenate([g, p])
  g_dot_d = jnp.concatenate([g_fro_sq, g_dot_p])
  step_paper = jnp.concatenate([_safe_div(jnp.ones_like(lip_f), lip_f),
                                _safe_div(nuc, lip_op)])

  def loss_at(layer, delta):
    return loss_fn(with_leaf(moved(layer, delta)))

  # Paper rule: realized decrease of W − t_paper D.
  paper = base - _map(lambda l, d, t: loss_at(l, -t * d),
                      (layer_ids, dirs, step_paper), batch_size)

  # Best step along D from the block curvature ⟨D, H D⟩.
  if curvature == "hessian":
    def curv(layer, d):
      f = lambda w: loss_fn(with_leaf(w))
      tangent = jnp.zeros_like(leaf).reshape(num, rows, cols).at[layer].set(
          d.astype(dtype)).reshape(leaf.shape)
      hd = jax.jvp(jax.grad(f), (leaf,), (tangent,))[1]
      return jnp.vdot(tangent, hd).real
  else:
    outputs_fn, output_loss = gauss_newton
    out0 = outputs_fn(with_leaf(leaf))

    def curv(layer, d):
      tangent = jnp.zeros_like(leaf).reshape(num, rows, cols).at[layer].set(
          d.astype(dtype)).reshape(leaf.shape)
      ju = jax.jvp(lambda w: outputs_fn(with_leaf(w)), (leaf,), (tangent,))[1]
      hju = jax.jvp(jax.grad(output_loss), (out0,), (ju,))[1]
      return _tree_vdot(ju, hju)

  dhd = _map(curv, (layer_ids, dirs), batch_size)
  pos = dhd > 0
  best = jnp.where(pos, g_dot_d**2 / (2 * jnp.where(pos, dhd, 1)), jnp.nan)

  if line_search:
    t_ref = jnp.where(pos, g_dot_d / jnp.where(pos, dhd, 1), step_paper)
    steps = jnp.concatenate(
        [t_ref[:, None] * jnp.asarray(factors, t_ref.dtype)[None],
         step_paper[:, None]], axis=1)                       # (2·num, grid)
    grid = steps.shape[1]
    flat_ids = jnp.repeat(layer_ids, grid)
    flat_dirs = jnp.repeat(dirs, grid, axis=0)
    flat_t = steps.reshape(-1)
    losses = _map(lambda l, d, t: loss_at(l, -t * d),
                  (flat_ids, flat_dirs, flat_t), batch_size)
    line = base - jnp.min(losses.reshape(2 * num, grid), axis=1)
  else:
    line = jnp.full((2 * num,), jnp.nan, dtype)

  def split(x):
    return x[:num].astype(dtype), x[num:].astype(dtype)

  paper_gd, paper_spec = split(paper)
  curv_gd, curv_spec = split(dhd)
  best_gd, best_spec = split(best)
  line_gd, line_spec = split(line)
  return ProbeStats(
      nr=nr.astype(dtype), st=st, grad_fro_sq=g_fro_sq.astype(dtype),
      grad_nuclear=nuc.astype(dtype), lipschitz_f=lip_f, lipschitz_op=lip_op,
      guaranteed_gd=_safe_div(g_fro_sq, 2 * lip_f).astype(dtype),
      guaranteed_spec=_safe_div(nuc**2, 2 * lip_op).astype(dtype),
      paper_gd=paper_gd, paper_spec=paper_spec,
      curvature_gd=curv_gd, curvature_spec=curv_spec,
      best_gd=best_gd, best_spec=best_spec,
      line_gd=line_gd, line_spec=line_spec)


def probe_step(
    loss_fn: Callable[[PyTree], jax.Array],
    params: PyTree,
    activations: Mapping[Any, jax.Array],
    *,
    paths: Sequence[Any] | None = None,
    curvature_scale: float | Mapping[Any, float] = 1.0,
    line_search: bool = False,
    line_search_factors: Sequence[float] = DEFAULT_LINE_SEARCH_FACTORS,
    gauss_newton: tuple[Callable, Callable] | None = None,
    polar_method: str = "svd",
    layer_batch_size: int | None = None,
) -> ProbeReport:
  r"""Probes GD's and SpecGD's one-step decrease on every matrix, layer by layer.

  For each probed matrix ``W`` (each layer of a stacked leaf), all other
  parameters fixed, with ``G = ∇_W L``, ``P = polar(G)``,
  ``L^F = c‖A‖_op²/n`` and ``L^op = c‖A‖_F²/n``:

  .. math::
    \text{guaranteed: } \frac{\|G\|_F^2}{2L^F},\ \frac{\|G\|_*^2}{2L^{op}};
    \quad \text{paper: } L(W) - L(W - G/L^F),\
    L(W) - L(W - \tfrac{\|G\|_*}{L^{op}} P);
    \quad \text{best: } \frac{\langle G, D\rangle^2}{2\langle D, H D\rangle}
    \ (D = G, P).

  For ``L = (1/2n)‖WA − Y‖²`` and ``c = 1`` the model is exact, so every
  realized decrease is at least its guaranteed one.

  Cost per probed matrix of a leaf with ``ℓ`` layers: one gradient of the whole
  loss (shared by all leaves), ``ℓ`` SVDs of ``G`` (nr and the polar factor),
  ``ℓ`` eigensolves of the ``fan_in × fan_in`` activation Gram matrix,
  ``2ℓ`` loss evaluations (paper steps), ``2ℓ`` Hessian-vector products (one per
  direction; forward-over-reverse, ≈ 3–5 loss evaluations each; with
  ``gauss_newton`` one JVP of the outputs plus one HVP of the output loss) and,
  with ``line_search``, ``2ℓ·(len(line_search_factors) + 1)`` loss evaluations.
  The ``2ℓ`` evaluations of each kind run as one ``vmap`` (or ``lax.map`` in
  chunks of ``layer_batch_size``). Jit-compatible: call it inside ``jax.jit``
  with ``loss_fn`` and the options closed over.

  Args:
    loss_fn: ``params -> scalar`` (the batch closed over).
    params: pytree of parameters (a dict, an ``nnx.State``, ...).
    activations: mapping path → incoming activation of that parameter,
      *samples × features* (``(n, fan_in)`` for a Flax kernel ``(fan_in,
      fan_out)``; ``A.T`` for the paper's ``W (m×k)``, ``A (k×n)``); for a
      stacked leaf ``(*layers, *samples, features)``. Paths are strings
      ``'a.0.kernel'`` (the names of
      :mod:`spectral_jax.diagnostics`) or tuples of keys (see :func:`path_to_str`).
    paths: the parameters to probe; default every key of ``activations``.
    curvature_scale: ``c`` in ``L^F``, ``L^op`` (> 0): one float, or a mapping
      path → float (missing paths get 1.0). ``c = 1`` is exact for
      ``(1/2n)‖WA − Y‖²``.
    line_search: also measure the ``"line_search"`` regime.
    line_search_factors: multiples of the reference step (the quadratic best
      step, or the paper's step where the curvature is not positive).
    gauss_newton: ``(outputs_fn, output_loss)`` with ``loss_fn(p) ==
      output_loss(outputs_fn(p))`` to use the Gauss–Newton curvature
      ``⟨JD, ∇²ℓ JD⟩`` instead of the Hessian in the ``"best"`` regime.
    polar_method: passed to :func:`spectral_jax.linalg.polar` (default exact
      ``"svd"``; ``"newton_schulz"`` probes Muon's approximate direction).
    layer_batch_size: evaluate the batched losses/HVPs with ``lax.map`` in
      chunks of this size instead of one ``vmap`` (less memory).

  Returns:
    A :class:`ProbeReport`.

  Raises:
    ValueError: a path not in ``params`` or without an activation, an
      activation whose feature axis matches neither matrix axis, a non-matrix
      leaf, a non-positive ``curvature_scale`` or ``line_search_factors``.
  """
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  names = [path_to_str(p) for p, _ in flat]
  leaves = [jnp.asarray(x) for _, x in flat]
  index = {name: i for i, name in enumerate(names)}
  acts = {path_to_str(k): v for k, v in activations.items()}
  wanted = list(acts) if paths is None else [path_to_str(p) for p in paths]
  if not wanted:
    raise ValueError("activations is empty: nothing to probe (pass at least "
                     "one path → activation).")
  for name in wanted:
    if name not in index:
      raise ValueError(f"path {name!r} is not a parameter; parameters: "
                       f"{names}.")
    if name not in acts:
      raise ValueError(f"path {name!r} has no activation; activations given "
                       f"for: {sorted(acts)}.")
  if isinstance(curvature_scale, Mapping):
    scales = {path_to_str(k): float(v) for k, v in curvature_scale.items()}
  else:
    scales = {name: float(curvature_scale) for name in wanted}
  for name, c in scales.items():
    if not c > 0:
      raise ValueError(f"curvature_scale must be > 0, got {c} for {name!r}.")
  factors = tuple(float(f) for f in line_search_factors)
  if line_search and (not factors or min(factors) <= 0):
    raise ValueError(f"line_search_factors must be positive, got {factors}.")
  if gauss_newton is not None and (
      len(gauss_newton) != 2 or not all(map(callable, gauss_newton))):
    raise ValueError("gauss_newton must be (outputs_fn, output_loss), got "
                     f"{gauss_newton!r}.")

  stacked = []
  for name in wanted:
    w, a = leaves[index[name]], jnp.asarray(acts[name])
    if w.ndim < 2:
      raise ValueError(f"parameter {name!r} has shape {w.shape}; the probe "
                       "needs a matrix (or stacked matrices).")
    layers = w.shape[:-2]
    if a.ndim < len(layers) + 2 or a.shape[:len(layers)] != layers:
      raise ValueError(
          f"activation for {name!r} has shape {a.shape}; for a parameter of "
          f"shape {w.shape} it must be (*{layers}, *samples, features).")
    if a.shape[-1] not in w.shape[-2:]:
      raise ValueError(
          f"activation for {name!r} has {a.shape[-1]} features (last axis) "
          f"but the matrix is {w.shape[-2:]}: pass samples × features "
          "(the paper's A (k×n) transposed).")
    if layers:
      stacked.append(name)

  def impl(leaves_, acts_):
    def flat_loss(ls):
      return loss_fn(jax.tree_util.tree_unflatten(treedef, ls))

    base, grads = jax.value_and_grad(flat_loss)(leaves_)
    entries = {}
    for name in wanted:
      i = index[name]
      entries[name] = _probe_leaf(
          loss_fn, leaves_, treedef, i, grads[i], acts_[name],
          scales.get(name, 1.0), "hessian" if gauss_newton is None else
          "gauss_newton", gauss_newton, line_search, factors, polar_method,
          layer_batch_size, base)
    return entries

  # One compiled program per call: far cheaper than dispatching the vmapped
  # losses and HVPs op by op; inside a caller's jit this is simply inlined.
  entries = jax.jit(impl)(leaves, {name: jnp.asarray(acts[name])
                                   for name in wanted})
  regimes = REGIMES if line_search else REGIMES[:3]
  return ProbeReport(entries=entries, stacked=tuple(stacked), regimes=regimes,
                     curvature="hessian" if gauss_newton is None
                     else "gauss_newton")


def probe_model(model, batch, loss_fn: Callable, *, inputs=None,
                gauss_newton_loss: Callable | None = None,
                **kwargs) -> ProbeReport:
  """:func:`probe_step` on an NNX model, activations captured from the model.

  The incoming activations come from
  :func:`spectral_jax.diagnostics.capture_activations` (every matrix whose
  module sows its input; token tables get their one-hot indicator, the
  Table 1 pairing of the paper).

  Args:
    model: an ``nnx.Module`` following the capture convention of
      :mod:`spectral_jax.models.layers`. Not modified.
    batch: passed to ``loss_fn``.
    loss_fn: ``(model, batch) -> scalar``.
    inputs: what the model is called on to capture activations; default
      ``batch[0]`` for a tuple/list batch, ``batch["x"]`` / ``batch["inputs"]``
      for a dict, else ``batch`` itself.
    gauss_newton_loss: ``(outputs, batch) -> scalar`` with ``loss_fn(model,
      batch) == gauss_newton_loss(model(inputs), batch)``; if given, the
      ``"best"`` regime uses the Gauss–Newton curvature (never negative for a
      convex output loss, where the Hessian of e.g. a transformer at init
      often is).
    **kwargs: forwarded to :func:`probe_step` (``paths``,
      ``curvature_scale``, ``line_search``, ...).

  Returns:
    A :class:`ProbeReport` keyed by parameter paths such as
    ``'layers.0.kernel'``.
  """
  from flax import nnx  # Local: the functional probe needs no Flax.
  from spectral_jax import diagnostics

  if inputs is None:
    if isinstance(batch, (tuple, list)):
      inputs = batch[0]
    elif isinstance(batch, Mapping):
      inputs = batch.get("x", batch.get("inputs"))
      if inputs is None:
        raise ValueError("batch is a mapping without 'x' or 'inputs'; pass "
                         "inputs= explicitly.")
    else:
      inputs = batch
  acts = diagnostics.capture_activations(model, inputs)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss_of_params(p):
    return loss_fn(nnx.merge(graphdef, p, rest), batch)

  if gauss_newton_loss is not None:
    kwargs["gauss_newton"] = (
        lambda p: nnx.merge(graphdef, p, rest)(inputs),
        lambda out: gauss_newton_loss(out, batch))
  return probe_step(loss_of_params, params, acts, **kwargs)
