"""Per-step schedules of a training run: learning-rate multiplier, momentum.

Both are functions of the step count ``t`` (a traced int inside optax), as
``optax.inject_hyperparams`` and optax's schedule arguments expect.

References:
  Jordan et al., modded-nanogpt (warmup / constant / linear cooldown, Muon
  momentum warmup 0.85 → 0.95).
"""

from __future__ import annotations

from typing import Callable, TYPE_CHECKING

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
  from spectral_jax.training.config import TrainConfig

__all__ = ["lr_multiplier", "momentum_schedule"]


def lr_multiplier(config: TrainConfig) -> Callable[[jax.Array], jax.Array]:
  """Warmup → constant → linear cooldown to ``final_lr_frac``.

  m(t) = (t+1)/w for t < w; 1 until the last ``cooldown_frac·steps`` steps;
  then linear down to ``final_lr_frac`` at ``t = steps``.
  """
  w, total = config.warmup_steps, max(config.steps, 1)
  cool_start = total * (1.0 - config.cooldown_frac)
  floor = config.final_lr_frac

  def mult(t):
    t = jnp.asarray(t, jnp.float32)
    warm = jnp.minimum((t + 1.0) / max(w, 1), 1.0) if w else 1.0
    frac = jnp.clip((t - cool_start) / max(total - cool_start, 1e-9), 0.0, 1.0)
    return warm * (1.0 - (1.0 - floor) * frac)

  return mult


def momentum_schedule(config: TrainConfig) -> Callable[[jax.Array], jax.Array]:
  """Muon momentum: linear from ``momentum_start`` to ``momentum``."""
  n = config.momentum_warmup_steps

  def beta(t):
    if n == 0:
      return jnp.asarray(config.momentum, jnp.float32)
    frac = jnp.minimum(jnp.asarray(t, jnp.float32) / n, 1.0)
    return (1 - frac) * config.momentum_start + frac * config.momentum

  return beta
