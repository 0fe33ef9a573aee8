"""Spectral tracking during training, on :mod:`spectral_jax.diagnostics`.

On a tracked step the loop calls ``track(params, rest, x, y)``: one extra
forward/backward pass on the step's batch. The training step itself never
changes, so with tracking off it costs nothing.

References:
  Davis & Drusvyatskiy, arXiv:2512.04299, §1.2.1, §4.5 (what the paper's
  NanoGPT tracker records).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax import diagnostics
from spectral_jax.diagnostics import stats as stats_lib
from spectral_jax.training import steps

__all__ = ["make_track_fn"]


def make_track_fn(graphdef, loss_fn=None):
  """``track(params, rest, x, y) -> (loss, st, nr)`` for one tracked step.

  ``st``: stable rank of every activation the model sows (features = last
  axis, rows = tokens, the leading axes of the sowing module's matrix =
  layers), each array once (:func:`diagnostics.sown_statistics`), from the
  Gram matrix accumulated in float32; token ids give the token-indicator
  stable rank n / max_count, and a token table's looked-up rows its
  ``".../output"`` entry. One value per layer, a bare number for one layer.
  ``nr``: :func:`diagnostics.gradient_nuclear_ranks` of the raw gradients.
  Keys are ``labels.path_name``s (``"blocks/attn/q/inputs"``).

  Args:
    graphdef: the model's ``nnx.GraphDef``.
    loss_fn: ``(params, rest, x, y) -> loss``; default the training loss.
  """
  loss_fn = loss_fn or steps.make_loss_fn(graphdef)

  @jax.jit
  def collect(params, rest, x, y):
    # Gradients from the plain loss, activations from a second forward pass:
    # differentiating through ``nnx.capture`` hung XLA:CPU (flax 0.12.8).
    loss, grads = jax.value_and_grad(loss_fn)(params, rest, x, y)
    grams, token_st = diagnostics.sown_statistics(
        nnx.merge(graphdef, params, rest), x, gram_dtype=jnp.float32)
    return loss, grams, token_st, grads

  def track(params, rest, x, y):
    loss, grams, token_st, grads = collect(params, rest, x, y)
    # The eigen/singular-value solves run one per dispatch, outside the big
    # program: many LAPACK custom calls inside one XLA:CPU program next to
    # the captured forward pass stalled for minutes on a loaded machine.
    st = dict(token_st)
    for name, g in grams.items():
      val = stats_lib.stable_rank_from_gram(g).reshape(-1)
      st[name] = val if val.shape[0] > 1 else val[0]
    return loss, st, diagnostics.gradient_nuclear_ranks(grads)

  return track
