"""The metrics of a run: ``metrics.jsonl`` rows, JSON conversion, loss figure.

One JSON object per logged step (``step``, ``train_loss``, ``val_loss``,
``tokens_per_s``, and on tracked steps ``st`` and ``nr``), appended as the run
goes; a resumed run rewrites the rows from its checkpoint's step on.
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

from spectral_jax import files
from spectral_jax.training import distributed

__all__ = [
    "append_row",
    "jsonable",
    "read_metrics",
    "rewrite_rows",
    "save_figure",
    "to_json",
    "write_loss_figure",
]


def read_metrics(out_dir) -> list[dict]:
  """The rows of ``out_dir/metrics.jsonl``.

  A run killed inside :func:`append_row` leaves a partial last line (not
  valid JSON): that row is dropped (a resumed run rewrites
  every row from its checkpoint's step on). A bad line elsewhere is an error.
  """
  path = pathlib.Path(out_dir) / "metrics.jsonl"
  if not path.exists():
    return []
  lines = [(i, line) for i, line in
           enumerate(path.read_bytes().split(b"\n"), 1) if line]
  rows = []
  for number, line in lines[:-1]:
    try:
      rows.append(json.loads(line))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
      raise ValueError(
          f"{path}, line {number}: not a JSON metrics row ({err}); fix or "
          "delete that line (a resumed run rewrites the rows from its "
          "checkpoint's step on).") from None
  lines = [line for _, line in lines]
  if lines:
    try:
      rows.append(json.loads(lines[-1]))
    except (json.JSONDecodeError, UnicodeDecodeError):
      pass  # The append was cut: resume rewrites rows from its step on.
  return rows


def append_row(path: pathlib.Path, row: dict) -> None:
  """Appends one row to the metrics file and flushes it (process 0 only)."""
  if not distributed.is_primary():
    return
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")
    f.flush()


def rewrite_rows(path: pathlib.Path, rows: list[dict]) -> None:
  """Replaces the metrics file by ``rows``, atomically (process 0 only)."""
  if distributed.is_primary():
    files.atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def to_json(tree):
  """A tree of arrays as nested lists of floats rounded to 6 decimals."""
  return jax.tree.map(lambda v: np.asarray(v, np.float64).round(6).tolist(),
                      distributed.to_host(tree))


def jsonable(d):
  """``d`` through JSON and back (non-JSON values become strings)."""
  return json.loads(json.dumps(d, default=str))


def save_figure(fig, path) -> str:
  """Writes a matplotlib figure as PNG atomically, closes it, returns the path."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  try:
    files.atomic_write(path, lambda f: fig.savefig(
        f, dpi=110, bbox_inches="tight", format="png"), "wb")
  finally:
    plt.close(fig)
  return str(path)


def write_loss_figure(rows, out_dir, title: str = "") -> list[str]:
  """``out_dir/loss.png``: train and validation loss against step."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(6, 4))
  for key, style in (("train_loss", "-"), ("val_loss", "o-")):
    pts = [(r["step"], r[key]) for r in rows if key in r]
    if pts:
      ax.plot(*zip(*pts), style, label=key.replace("_", " "), ms=3)
  ax.set(xlabel="step", ylabel="cross-entropy (nats/token)", title=f"loss {title}")
  ax.legend()
  return [save_figure(fig, pathlib.Path(out_dir) / "loss.png")]
