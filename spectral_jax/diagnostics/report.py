"""The layerwise report: nr(G), st(A) and the condition nr ≥ st per matrix."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Callable, NamedTuple

import numpy as np
from flax import nnx

from spectral_jax import labels
from spectral_jax.diagnostics import capture
from spectral_jax.diagnostics import stats as stats_lib
from spectral_jax.diagnostics.capture import Path

__all__ = ["LayerStat", "LayerwiseReport", "layerwise_report"]


class LayerStat(NamedTuple):
  """One matrix (one layer of a stacked parameter) of a layerwise report."""
  path: Path                 # parameter path, e.g. ('blocks', 'attn', 'q', 'kernel')
  layer: int | tuple | None  # index along the stacked axes; None if not stacked
  shape: tuple[int, int]     # the matrix shape (fan_in, fan_out)
  kind: str                  # 'matrix' or 'embedding' (st from token counts)
  nr: float                  # nr(G) = ‖G‖_*² / ‖G‖_F²
  st: float | None           # st(A) of the incoming activation; None: not captured
  st_preactivation: float | None  # st of the module's sown pre-activation
  ratio: float | None        # nr / st
  condition: bool | None     # nr ≥ st: spectral step's guarantee is the larger
  strong: bool | None        # nr ≥ 2 st: spectral step's loss is guaranteed lower

  @property
  def name(self) -> str:
    base = labels.path_name(self.path)
    if self.layer is None:
      return base
    idx = self.layer if isinstance(self.layer, tuple) else (self.layer,)
    return base + "[" + ",".join(str(i) for i in idx) + "]"


def _finite(x) -> float | None:
  if x is None:
    return None
  x = float(x)
  return x if math.isfinite(x) else None


@dataclasses.dataclass(frozen=True)
class LayerwiseReport:
  """Per-matrix nr(G), st(A) and the layerwise condition, ready to print."""
  entries: tuple[LayerStat, ...]
  loss: float

  def __len__(self):
    return len(self.entries)

  def __iter__(self):
    return iter(self.entries)

  def spectral_layers(self, strong: bool = False) -> list[str]:
    """Names of the matrices where the condition (or ``nr ≥ 2 st``) holds."""
    key = "strong" if strong else "condition"
    return [e.name for e in self.entries if getattr(e, key)]

  def table(self) -> str:
    """A fixed-width table, one row per matrix and layer."""
    fmt = lambda x: "—" if x is None else f"{x:.3g}"
    rows = [("parameter", "shape", "nr(G)", "st(A)", "nr/st", "st(pre)",
             "spectral?")]
    for e in self.entries:
      verdict = ("?" if e.condition is None else
                 "yes, strong" if e.strong else "yes" if e.condition else "no")
      rows.append((e.name, f"{e.shape[0]}×{e.shape[1]}", fmt(e.nr), fmt(e.st),
                   fmt(e.ratio), fmt(e.st_preactivation), verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    n_yes = sum(bool(e.condition) for e in self.entries)
    lines.append(f"loss {self.loss:.4g}; nr(G) ≥ st(A) on {n_yes} of "
                 f"{len(self.entries)} matrices (Davis & Drusvyatskiy, "
                 "arXiv:2512.04299, (4.18)).")
    return "\n".join(lines)

  __str__ = table

  def to_dict(self) -> dict:
    """JSON-ready: non-finite numbers become None."""
    return {
        "loss": _finite(self.loss),
        "entries": [
            {"name": e.name, "path": [str(k) for k in e.path],
             "layer": (list(e.layer) if isinstance(e.layer, tuple)
                       else e.layer),
             "shape": list(e.shape), "kind": e.kind, "nr": _finite(e.nr),
             "st": _finite(e.st),
             "st_preactivation": _finite(e.st_preactivation),
             "ratio": _finite(e.ratio), "condition": e.condition,
             "strong": e.strong}
            for e in self.entries],
    }

  def to_json(self, **kwargs) -> str:
    return json.dumps(self.to_dict(), **kwargs)


def _entries(path: Path, shape, s) -> list[LayerStat]:
  nr = np.asarray(s["nr"], np.float64)
  st = None if s["st"] is None else np.asarray(s["st"], np.float64)
  pre = (None if s["st_preactivation"] is None
         else np.asarray(s["st_preactivation"], np.float64))
  lead = tuple(shape[:-2])
  out = []
  for idx in np.ndindex(*lead) if lead else [()]:
    r = float(nr[idx])
    a = None if st is None else float(st[idx])
    ratio = cond = strong = None
    if a is not None:
      # A zero activation has a zero gradient: 0/0 reads as "no advantage".
      ratio = r / a if a > 0 else 0.0
      cond = bool(r > 0 and r >= a)
      strong = bool(r > 0 and r >= 2 * a)
    layer = None if not lead else (idx[0] if len(idx) == 1 else tuple(idx))
    out.append(LayerStat(
        path=path, layer=layer, shape=tuple(int(d) for d in shape[-2:]),
        kind="embedding" if s["tokens"] else "matrix", nr=r, st=a,
        st_preactivation=None if pre is None else float(pre[idx]),
        ratio=ratio, condition=cond, strong=strong))
  return out


def layerwise_report(model: nnx.Module, batch, loss_fn: Callable, *,
                     chunk_size: int | None = None, gram_dtype=None,
                     jit: bool = True,
                     flax_layers: bool = True) -> LayerwiseReport:
  """nr(G), st(A) and the condition nr ≥ st for every matrix of ``model``.

  Args:
    model: an ``nnx.Module`` whose matrices' modules sow their inputs (see
      :mod:`spectral_jax.diagnostics`; all of :mod:`spectral_jax.models` do).
    batch: passed to ``loss_fn``.
    loss_fn: ``(model, batch) -> scalar`` loss.
    chunk_size: tokens per chunk of the Gram accumulation ``Σ a aᵀ``.
    gram_dtype: accumulation dtype (default float64 with x64, else float32).
    jit: compile the forward/backward pass and the Gram matrices into one
      program (the SVD/eigh of each matrix always run as small jitted
      programs of their own).
    flax_layers: make plain ``nnx.Linear`` / ``nnx.Embed`` sow their inputs.

  Returns:
    A :class:`LayerwiseReport`: one :class:`LayerStat` per matrix parameter,
    one per layer for stacked parameters (leading axes), in path order.
  """
  if chunk_size is not None and (not isinstance(chunk_size, int)
                                 or chunk_size < 1):
    raise ValueError(f"chunk_size must be a positive int or None, got "
                     f"{chunk_size!r}.")

  def stats_fn(m, b):
    loss, stats = stats_lib.layerwise_stats(
        m, b, loss_fn, chunk_size=chunk_size, gram_dtype=gram_dtype,
        flax_layers=flax_layers)
    return loss, {labels.path_name(p): s for p, s in stats.items()}

  loss, arrays = (nnx.jit(stats_fn) if jit else stats_fn)(model, batch)
  st_of = lambda g: None if g is None else stats_lib.stable_rank_from_gram(g)
  entries = []
  for path, p in capture.flat_state(nnx.state(model, nnx.Param)).items():
    s = arrays.get(labels.path_name(path))
    if s is None:
      continue
    tokens = s["st_tokens"] is not None
    s = {"nr": stats_lib.nuclear_rank(s["grad"]),
         "st": s["st_tokens"] if tokens else st_of(s["gram"]),
         "st_preactivation": st_of(s["gram_preactivation"]), "tokens": tokens}
    entries.extend(_entries(path, p.shape, s))
  return LayerwiseReport(entries=tuple(entries), loss=float(loss))


