"""The model and the jit-able functions of a run: loss, training step, state.

``train_step(state, rest, x, y) -> (state, loss)`` is the whole update; the
loop jits it once with the state donated.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from spectral_jax import attention_clip

if TYPE_CHECKING:
  from spectral_jax.training.config import TrainConfig

__all__ = [
    "TrainState",
    "default_model_fn",
    "init_model",
    "make_loss_fn",
    "make_train_step",
    "padded_vocab",
]


class TrainState(NamedTuple):
  """What a checkpoint holds besides its JSON metadata."""
  params: Any     # pure dict of parameter arrays.
  opt_state: Any  # the optax state.
  rng: jax.Array  # key data (uint32), for stochastic extensions (dropout).


def default_model_fn(config: TrainConfig, vocab_size: int, rngs: nnx.Rngs):
  """:class:`spectral_jax.models.GPT` sized by ``config``."""
  from spectral_jax.models import gpt  # pylint: disable=g-import-not-at-top
  return gpt.GPT(gpt.GPTConfig(
      vocab_size=vocab_size, context=config.context, n_layer=config.n_layer,
      n_head=config.n_head, d_model=config.d_model,
      mlp_ratio=config.mlp_ratio, zero_init_out=config.zero_init_out,
      dtype=None if config.compute_dtype == "float32" else jnp.bfloat16),
                 rngs=rngs)


def padded_vocab(config: TrainConfig, vocab_size: int) -> int:
  """``vocab_size`` rounded up to a multiple of ``config.pad_vocab_to``."""
  m = config.pad_vocab_to
  return int(math.ceil(vocab_size / m) * m)


def init_model(config: TrainConfig, vocab_size: int, model_fn=None):
  """``(graphdef, params, rest)`` of a fresh model (params: pure dict)."""
  model_fn = model_fn or default_model_fn
  model = model_fn(config, padded_vocab(config, vocab_size),
                   nnx.Rngs(params=config.seed))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(rest)


def _loss(logits, y):
  return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), y).mean()


def make_loss_fn(graphdef):
  """``loss(params, rest, x, y)``: mean next-token cross-entropy (nats)."""
  def loss_fn(params, rest, x, y):
    return _loss(nnx.merge(graphdef, params, rest)(x), y)
  return loss_fn


def make_train_step(graphdef, tx, qk_clip: float = 0.0):
  """``step(state, rest, x, y) -> (state, loss)``, unjitted.

  ``qk_clip = τ > 0``: the forward pass also collects each head's largest
  attention logit, and the updated params go through
  :func:`spectral_jax.attention_clip.qk_clip` with those maxima (Kimi K2's
  QK-clip, after the optimizer step).
  """
  loss_fn = _with_logit_max(graphdef) if qk_clip else make_loss_fn(graphdef)

  def step(state: TrainState, rest, x, y):
    out, grads = jax.value_and_grad(loss_fn, has_aux=bool(qk_clip))(
        state.params, rest, x, y)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    loss = out
    if qk_clip:
      loss, maxima = out
      params = attention_clip.qk_clip(params, maxima, qk_clip)
    return state._replace(params=params, opt_state=opt_state), loss

  return step


def _with_logit_max(graphdef):
  """``(params, rest, x, y) -> (loss, per-head attention-logit maxima)``."""
  def loss_fn(params, rest, x, y):
    model = nnx.merge(graphdef, params, rest)
    logits, maxima = attention_clip.capture_logit_max(model, x)
    return _loss(logits, y), maxima
  return loss_fn
