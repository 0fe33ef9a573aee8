"""The train-gpt figures: analogues of Davis & Drusvyatskiy's Figures 2, 5–10.

Read from a run's tracked rows (``st`` and ``nr`` keyed by the GPT's
parameter and activation names, see :mod:`spectral_jax.models.gpt`); the loss
curve comes from the library (:func:`spectral_jax.training.metrics.write_loss_figure`).

References:
  Davis & Drusvyatskiy, arXiv:2512.04299, Figures 2, 5–10.
"""

from __future__ import annotations

import pathlib

import numpy as np

__all__ = ["FIGURES", "write_figures"]

# (file, title, "st" | "nr", name substrings, y label)
FIGURES = (
    ("fig2_mlp_activation_st.png",
     "MLP hidden activation: before (pre) and after (post) ReLU²", "st",
     ("mlp/fc/preactivation", "mlp/proj/inputs"), "stable rank"),
    ("fig5_mlp_grad_nr.png", "MLP gradients (W_1 = fc, W_2 = proj)", "nr",
     ("mlp/fc/kernel", "mlp/proj/kernel"), "nuclear rank"),
    ("fig6_rmsnorm_st.png", "RMS-normalised inputs (pre-attn, pre-MLP, pre-head)",
     "st", ("attn/q/inputs", "mlp/fc/inputs", "lm_head/inputs"), "stable rank"),
    ("fig7_embed_head_grad_nr.png", "Embedding and LM-head gradients", "nr",
     ("wte/embedding", "lm_head/kernel"), "nuclear rank"),
    ("fig8_qk_grad_nr.png", "W_Q and W_K gradients", "nr",
     ("attn/q/kernel", "attn/k/kernel"), "nuclear rank"),
    ("fig9_ov_grad_nr.png", "W_O and W_V gradients", "nr",
     ("attn/o/kernel", "attn/v/kernel"), "nuclear rank"),
    ("fig10_embedding_st.png", "Embedding output and token indicators", "st",
     ("wte/output", "wte/inputs"), "stable rank"),
)


def _series(rows, kind):
  """{name: (steps, values (n_steps, n_layers))} from tracked rows."""
  out = {}
  for r in rows:
    for name, v in r.get(kind, {}).items():
      out.setdefault(name, ([], []))
      out[name][0].append(r["step"])
      out[name][1].append(np.atleast_1d(np.asarray(v, np.float64)))
  return {k: (np.array(s), np.stack(v)) for k, (s, v) in out.items()}


def _figure(series, names, ftitle, ylabel, title):
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4),
                           squeeze=False)
  for ax, name in zip(axes[0], names):
    steps, vals = series[name]
    for layer in range(vals.shape[1]):
      ax.plot(steps, vals[:, layer], "o-", ms=2,
              label=f"layer {layer}" if vals.shape[1] > 1 else None)
    ax.set(xlabel="step", ylabel=ylabel, title=name, ylim=(0, None))
    if vals.shape[1] > 1:
      ax.legend(fontsize=6)
  fig.suptitle(f"{ftitle} ({title})", y=1.04)
  return fig


def write_figures(rows, out_dir, title: str = "") -> list[str]:
  """Loss curves and the tracked-rank figures; returns the written paths."""
  from spectral_jax.training import metrics  # pylint: disable=g-import-not-at-top
  out_dir = pathlib.Path(out_dir)
  written = metrics.write_loss_figure(rows, out_dir, title)
  for kind in ("st", "nr"):
    series = _series(rows, kind)
    for fname, ftitle, fkind, keys, ylabel in FIGURES:
      if fkind != kind:
        continue
      names = [n for n in series if any(n.endswith(k) or k in n for k in keys)]
      if names:
        fig = _figure(series, names, ftitle, ylabel, title)
        written.append(metrics.save_figure(fig, out_dir / fname))
  return written
