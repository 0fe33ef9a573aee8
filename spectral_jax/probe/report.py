"""The probe's numbers and what is read from them: :class:`ProbeStats` per
parameter, :class:`ProbeReport` with its records, agreement and table."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import numpy as np

REGIMES = ("guaranteed", "paper", "best", "line_search")


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
