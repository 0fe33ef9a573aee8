"""The optimizer-side monitor: nr of every matrix update, inside an optax chain."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from spectral_jax import linalg

__all__ = ["NuclearRankMonitorState", "monitor_nuclear_rank"]


class NuclearRankMonitorState(NamedTuple):
  """State of :func:`monitor_nuclear_rank`."""
  count: jax.Array  # shape=(), dtype=jnp.int32; updates seen so far.
  nuclear_rank: Any  # per matrix leaf: nr(G), shape = the leaf's leading axes,
  #                    float32 (last recorded value); None for other leaves.


def monitor_nuclear_rank(every: int = 1) -> optax.GradientTransformation:
  """Records nr(u) = ‖u‖_*²/‖u‖_F² of every matrix update; updates unchanged.

  Put it first in a chain to record the raw gradients' nuclear ranks (what the
  paper logs), e.g. ``optax.chain(monitor_nuclear_rank(), sj.muon(...))``, and
  read ``state[0].nuclear_rank``. Leaves with ``ndim ≥ 2`` are matrices, any
  leading axes are stacked layers.

  Args:
    every: record on steps ``0, every, 2·every, …`` (one SVD per matrix), keep
      the last value in between.

  Returns:
    An identity ``optax.GradientTransformation`` with a
    :class:`NuclearRankMonitorState`.
  """
  if not isinstance(every, int) or every < 1:
    raise ValueError(f"every must be a positive int, got {every!r}.")

  def nr_tree(updates):
    return jax.tree.map(
        lambda u: (linalg.nuclear_rank(u).astype(jnp.float32)
                   if jnp.ndim(u) >= 2 else None), updates)

  def init_fn(params):
    return NuclearRankMonitorState(
        count=jnp.zeros([], jnp.int32),
        nuclear_rank=jax.tree.map(
            lambda p: (jnp.zeros(jnp.shape(p)[:-2], jnp.float32)
                       if jnp.ndim(p) >= 2 else None), params))

  def update_fn(updates, state, params=None):
    del params
    if every == 1:
      nr = nr_tree(updates)
    else:
      nr = jax.lax.cond(state.count % every == 0, nr_tree,
                        lambda _: state.nuclear_rank, updates)
    return updates, NuclearRankMonitorState(
        count=optax.safe_increment(state.count), nuclear_rank=nr)

  return optax.GradientTransformation(init_fn, update_fn)
