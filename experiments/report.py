"""Shared helpers for experiment scripts and the ``report.md`` writer.

An experiment module (see ``experiments/registry.py`` for the contract) uses:

  * ``claim(id, experiment, claim, paper, measured, holds, rule=...)``: one row
    of the claims table (a plain dict, JSON-ready);
  * ``write_jsonl(path, rows)``, ``atomic_write_json``:
    every file is written to a temporary file in the same folder and then
    ``os.replace``-d, so a run killed halfway never leaves a half-written file;
  * ``save_figure(fig, path)`` (atomic PNG, closes the figure), ``subplots``,
    ``plot_curves`` (log-scale losses etc.) and ``plot_nr_st`` (nuclear rank
    with the stable rank as a dashed line);
  * ``run_steps(step, carry, num_steps, desc=...)``: a jitted ``lax.scan`` run
    in chunks with a tqdm progress bar, returning the per-step outputs as NumPy;
  * ``enable_x64()``: the synthetic experiments run in float64 like the paper.

``write_report(out_dir, results)`` turns the experiments' results into
``report.md`` and ``claims.json``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Iterable, Mapping, Sequence

from spectral_jax import files

import jax
import numpy as np

__all__ = [
    "atomic_write_json",
    "claim",
    "claims_table",
    "enable_x64",
    "fmt",
    "headline",
    "plot_curves",
    "plot_nr_st",
    "read_jsonl",
    "run_steps",
    "save_figure",
    "status_counts",
    "status_of",
    "subplots",
    "to_jsonable",
    "write_jsonl",
    "write_report",
]


# --------------------------------------------------------------------------
# Numbers and claims
# --------------------------------------------------------------------------
def enable_x64() -> None:
  """float64 on, as the paper's synthetic experiments (call at run start)."""
  jax.config.update("jax_enable_x64", True)


def to_jsonable(x: Any) -> Any:
  """NumPy / JAX scalars and arrays → plain Python (NaN/inf → None)."""
  if isinstance(x, Mapping):
    return {str(k): to_jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [to_jsonable(v) for v in x]
  if isinstance(x, (jax.Array, np.ndarray)):
    return to_jsonable(np.asarray(x).tolist())
  if isinstance(x, (np.bool_, bool)):
    return bool(x)
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (float, np.floating)):
    x = float(x)
    return x if math.isfinite(x) else None
  return x


def fmt(x: Any, digits: int = 3) -> str:
  """Compact human formatting: 3 significant digits, scientific when tiny/huge."""
  if x is None:
    return "n/a"
  if isinstance(x, (bool, np.bool_)):
    return str(bool(x))
  if isinstance(x, (int, np.integer)):
    return str(int(x))
  if isinstance(x, (float, np.floating, jax.Array, np.ndarray)):
    x = float(x)
    if not math.isfinite(x):
      return str(x)
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4):
      return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"
  if isinstance(x, (list, tuple)):
    return "[" + ", ".join(fmt(v, digits) for v in x) + "]"
  return str(x)


HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
SUBSTITUTE = "not reproduced on substitute data"
FINDING = "finding"
NOT_CHECKED = "not checked"
STATUSES = (HOLDS, DOES_NOT_HOLD, SUBSTITUTE, FINDING, NOT_CHECKED)


def claim(id: str, experiment: str, claim: str, paper: str, measured: Any,
          holds: bool | None, rule: str = "", status: str | None = None,
          reason: str = "") -> dict:
  """One row of the claims table.

  Args:
    id: claim id, e.g. ``"C11a"`` (the claim's number in the reproduction
      plan plus a letter).
    experiment: the experiment's ``NAME``.
    claim: the statement checked, in words.
    paper: the paper's value or statement; calibration numbers from an
      independent NumPy implementation are labelled ``[M]`` in this text.
    measured: what this run measured (a number, list or string; formatted
      with :func:`fmt` when not a string).
    holds: whether the claim holds by ``rule``; ``None`` if not checkable.
    rule: how ``holds`` was decided (shown in the report).
    status: one of ``STATUSES``; by default ``holds`` / ``does not hold`` /
      ``not checked`` from ``holds``. ``FINDING`` marks an observation beyond
      the papers' claims (``holds`` is then whether it was observed);
      ``SUBSTITUTE`` a claim that does not reproduce on substitute data (the
      digits set in place of CIFAR-10), which needs ``reason``.
    reason: why the status is what it is (shown beside it in the report).

  Returns:
    A JSON-ready dict with keys id, experiment, claim, paper, measured, holds,
    rule, status, reason.
  """
  holds = None if holds is None else bool(holds)
  if status is None:
    status = {True: HOLDS, False: DOES_NOT_HOLD}.get(holds, NOT_CHECKED)
  if status not in STATUSES:
    raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
  if status == SUBSTITUTE and not reason:
    raise ValueError("a claim not reproduced on substitute data needs a "
                     "reason")
  if status in (HOLDS, DOES_NOT_HOLD) and holds is not (status == HOLDS):
    raise ValueError(f"status {status!r} contradicts holds={holds!r}")
  return {
      "id": str(id),
      "experiment": str(experiment),
      "claim": str(claim),
      "paper": str(paper),
      "measured": measured if isinstance(measured, str) else fmt(measured),
      "holds": holds,
      "rule": str(rule),
      "status": status,
      "reason": str(reason),
  }


# --------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------
def atomic_write_json(path: str | os.PathLike, obj: Any) -> str:
  """Writes ``obj`` as indented JSON, atomically."""
  return files.atomic_write_text(
      path, json.dumps(to_jsonable(obj), indent=1, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping]) -> str:
  """Writes one JSON object per line (e.g. one per step), atomically."""
  text = "".join(json.dumps(to_jsonable(r)) + "\n" for r in rows)
  return files.atomic_write_text(path, text)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------
def subplots(ncols: int = 1, nrows: int = 1, *, width: float = 5.2,
             height: float = 3.9, **kw):
  """``plt.subplots`` on the Agg backend with a per-panel size in inches."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                           squeeze=False, **kw)
  return fig, axes.ravel()


def plot_curves(ax, curves: Mapping[str, Sequence[float]], *, x=None,
                title: str = "", xlabel: str = "iteration", ylabel: str = "",
                logy: bool = True, styles: Mapping[str, Mapping] | None = None):
  """Line plot of named series (log y by default, for losses).

  Non-positive values are dropped on a log axis (an exact 0 loss is off the
  chart, not a crash). ``x`` is a shared x array or a ``{label: x}`` map.
  """
  styles = styles or {}
  for label, y in curves.items():
    y = np.asarray(y, dtype=float)
    xs = (x.get(label) if isinstance(x, Mapping) else x)
    xs = np.arange(len(y)) if xs is None else np.asarray(xs)
    if logy:
      y = np.where(y > 0, y, np.nan)
    ax.plot(xs, y, label=label, lw=1.6, **styles.get(label, {}))
  if logy:
    ax.set_yscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.grid(True, which="major", alpha=0.3)
  if curves:
    ax.legend(fontsize=8)


def plot_nr_st(ax, nr: Mapping[str, Sequence[float]],
               st: Mapping[str, float] | float | None = None, *, x=None,
               title: str = "", xlabel: str = "iteration",
               ylabel: str = "nuclear rank nr(∇L)", logy: bool = False,
               styles: Mapping[str, Mapping] | None = None):
  """Nuclear ranks as solid lines, stable ranks as dashed horizontal lines.

  ``st`` is one value (labelled ``st(A)``) or ``{label: value}``; a
  ``{label: series}`` value is drawn as a dashed curve instead.
  """
  plot_curves(ax, nr, x=x, title=title, xlabel=xlabel, ylabel=ylabel,
              logy=logy, styles=styles)
  if st is None:
    return
  if not isinstance(st, Mapping):
    st = {"st(A)": st}
  for i, (label, val) in enumerate(st.items()):
    color = "k" if len(st) == 1 else f"C{(i + len(nr)) % 10}"
    if np.ndim(val) == 0:
      ax.axhline(float(val), ls="--", color=color, lw=1.4,
                 label=f"{label} = {float(val):.3g}")
    else:
      xs = np.arange(len(val)) if x is None or isinstance(x, Mapping) else x
      ax.plot(xs, val, ls="--", color=color, lw=1.4, label=label)
  ax.legend(fontsize=8)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> str:
  """Saves ``fig`` as PNG atomically and closes it. Returns the path."""
  import matplotlib.pyplot as plt
  fig.tight_layout()
  out = files.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi),
                      "wb")
  plt.close(fig)
  return out


# --------------------------------------------------------------------------
# Loops
# --------------------------------------------------------------------------
def _scan_chunk(step, carry, length):
  return jax.lax.scan(lambda c, _: step(c), carry, None, length=length)


_scan_chunk_jit = jax.jit(_scan_chunk, static_argnums=(0, 2))


def run_steps(step: Callable, carry, num_steps: int, *, desc: str = "",
              chunk: int = 50, progress: bool = True):
  """Iterates ``carry, out = step(carry)`` ``num_steps`` times.

  The steps run as a jitted ``lax.scan`` over chunks of ``chunk`` steps, so
  the loop is compiled once and a tqdm bar advances per chunk. ``step`` must be
  a pure function; reuse the same function object across calls to reuse its
  compilation.

  Returns:
    ``(carry, outs)``, ``outs`` the per-step outputs stacked on a leading axis
    of length ``num_steps`` (NumPy).
  """
  from tqdm.auto import tqdm
  outs = []
  done = 0
  with tqdm(total=num_steps, desc=desc, leave=False,
            disable=not progress or num_steps < 2 * chunk) as bar:
    while done < num_steps:
      n = min(chunk, num_steps - done)
      carry, out = _scan_chunk_jit(step, carry, n)
      outs.append(jax.device_get(out))
      done += n
      bar.update(n)
  if not outs:
    return carry, None
  return carry, jax.tree.map(lambda *xs: np.concatenate(xs), *outs)


# --------------------------------------------------------------------------
# report.md and claims.json
# --------------------------------------------------------------------------
def _md_cell(text: str) -> str:
  return str(text).replace("|", "\\|").replace("\n", " ")


def status_of(c: Mapping) -> str:
  """A claim's status (rows without one: from ``holds``)."""
  return c.get("status") or {True: HOLDS, False: DOES_NOT_HOLD}.get(
      c["holds"], NOT_CHECKED)


def _status_cell(c: Mapping) -> str:
  status = status_of(c)
  cell = f"**{status}**"
  if status == FINDING and c["holds"] is not None:
    cell += " (observed)" if c["holds"] else " (not observed)"
  if c.get("reason"):
    cell += f": {c['reason']}"
  return cell


def status_counts(claims: Sequence[Mapping]) -> dict:
  """Number of claims per status (every status in ``STATUSES``)."""
  counts = {k: 0 for k in STATUSES}
  for c in claims:
    counts[status_of(c)] += 1
  return counts


def headline(claims: Sequence[Mapping]) -> str:
  """"N hold, M do not, K not reproduced on substitute data, F findings"."""
  n = status_counts(claims)
  text = (f"{n[HOLDS]} hold, {n[DOES_NOT_HOLD]} do not, {n[SUBSTITUTE]} not "
          f"reproduced on substitute data, {n[FINDING]} findings")
  if n[NOT_CHECKED]:
    text += f", {n[NOT_CHECKED]} not checked"
  return text


def claims_table(claims: Sequence[Mapping]) -> str:
  """Markdown table: id, claim, paper, measured, status, rule."""
  lines = ["| id | claim | paper | measured | status | rule |",
           "|---|---|---|---|---|---|"]
  for c in claims:
    lines.append("| " + " | ".join(_md_cell(x) for x in (
        c["id"], c["claim"], c["paper"], c["measured"],
        _status_cell(c), c.get("rule", ""))) + " |")
  return "\n".join(lines)


def write_report(out_dir: str | os.PathLike, results: Sequence[Mapping], *,
                 header: str = "") -> tuple[str, str]:
  """Writes ``out_dir/report.md`` and ``out_dir/claims.json``.

  Args:
    out_dir: the reproduction folder (figures are under ``figures/``).
    results: one mapping per experiment, in report order, with keys
      ``name``, ``title``, ``summary``, ``figures`` (paths relative to
      ``out_dir``), ``claims``, ``seconds``, ``mode``.
    header: markdown placed under the title.

  Returns:
    The two paths written.
  """
  out_dir = os.fspath(out_dir)
  all_claims = [c for r in results for c in r.get("claims", [])]
  parts = ["# spectral_jax: reproduction report", ""]
  if header:
    parts += [header, ""]
  parts += [
      f"**{headline(all_claims)}** ({len(all_claims)} rows).",
      "Each claim's 'paper' column quotes the paper; values tagged [M] are the "
      "spec's independent NumPy calibration numbers, not the paper's. "
      "A claim that does not hold is listed as such; 'not reproduced on "
      "substitute data' marks a claim about CIFAR-10 that does not reproduce "
      "on the offline digits set used in its place (rerun with `--cifar10 "
      "DIR`); a 'finding' is an observation beyond the papers' claims.",
      "",
      "| experiment | mode | wall time | claims |",
      "|---|---|---|---|",
  ]
  for r in results:
    cs = r.get("claims", [])
    parts.append(f"| [{r['title']}](#{r['name']}) | {r.get('mode', '')} | "
                 f"{r.get('seconds', 0):.0f} s | "
                 f"{headline(cs)} |")
  parts.append("")
  for r in results:
    parts += [f'<a id="{r["name"]}"></a>', "",
              f"## {r['title']}", "", r.get("summary", "").strip(), ""]
    for fig in r.get("figures", []):
      parts += [f"![{os.path.basename(fig)}]({fig})", ""]
    if r.get("claims"):
      parts += [claims_table(r["claims"]), ""]
    parts += [f"Raw per-step series: `{r['name']}/metrics.jsonl`.", ""]
  report = files.atomic_write_text(os.path.join(out_dir, "report.md"),
                             "\n".join(parts))
  claims_path = atomic_write_json(
      os.path.join(out_dir, "claims.json"),
      [dict({k: c[k] for k in ("id", "experiment", "claim", "paper",
                               "measured", "holds", "rule")},
            status=status_of(c), reason=c.get("reason", ""))
       for c in all_claims])
  return report, claims_path
