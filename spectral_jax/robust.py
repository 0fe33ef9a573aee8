"""Guards that keep one bad step from corrupting a run.

``skip_nonfinite(inner)`` drops a whole optimizer step (zero updates, the inner
state kept as it was) when any gradient leaf holds a NaN or an Inf, and counts
the skipped steps, so a single overflowing batch neither poisons the momentum
of every matrix nor passes unnoticed.

References:
  Optax, ``optax.apply_if_finite`` (the same idea with a give-up threshold).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["SkipNonFiniteState", "all_finite", "skip_nonfinite"]


class SkipNonFiniteState(NamedTuple):
  """State of :func:`skip_nonfinite`."""

  inner_state: optax.OptState
  skipped: jax.Array  # shape=(), dtype=jnp.int32: steps dropped so far.
  total: jax.Array  # shape=(), dtype=jnp.int32: update calls so far.


def all_finite(tree) -> jax.Array:
  """A scalar bool: every entry of every leaf of ``tree`` is finite.

  ``True`` for an empty tree and for leaves with a zero-size axis (nothing
  there can be non-finite). Integer and boolean leaves are always finite.
  """
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return functools.reduce(jnp.logical_and, leaves, jnp.asarray(True))


def skip_nonfinite(
    inner: optax.GradientTransformation,
    *,
    check_updates: bool = True,
) -> optax.GradientTransformationExtraArgs:
  r"""Skip every step whose gradients (or resulting updates) are not finite.

  .. math::
    (u_t, s_t) = \begin{cases}
      \operatorname{inner.update}(g_t, s_{t-1}) & g_t \text{ (and } u_t)
        \text{ finite} \\
      (0, s_{t-1}) & \text{otherwise}
    \end{cases}

  The check is global: one NaN or Inf anywhere in the gradient tree drops the
  step for *every* leaf, because the leaves of one step share a loss (a NaN
  in one layer's gradient means the forward pass overflowed, and the other
  leaves' gradients of that pass are not to be trusted either). The inner
  update is still computed and then discarded with ``jnp.where`` (a select,
  so a NaN on the discarded branch cannot leak through, and the cost is the
  same under ``jit`` and ``vmap``).

  Compared with ``optax.apply_if_finite(inner, max_consecutive_errors)``:

  * ``apply_if_finite`` *gives up* after ``max_consecutive_errors``
    consecutive bad steps and applies the non-finite update, so a run that
    stays broken ends in NaN parameters (loud). ``skip_nonfinite`` never
    applies a non-finite step: parameters and optimizer state stay finite
    forever and the failure shows only in ``state.skipped`` — watch it (or
    ``skipped / total``) in the training loop.
  * ``apply_if_finite`` checks the incoming gradients only.
    With ``check_updates=True`` (default) ``skip_nonfinite`` also drops a step
    whose gradients are finite but whose *updates or new inner state* are not
    (an inner transform that overflows, e.g. a momentum buffer or Adam's
    second moment reaching ``inf``).
  * ``apply_if_finite`` branches with ``lax.cond`` (under ``jit`` the inner
    update is not run on a bad step; under ``vmap`` the cond becomes a select
    anyway); ``skip_nonfinite`` always runs it and selects.
  * State: ``apply_if_finite`` keeps ``notfinite_count`` (consecutive),
    ``last_finite`` and ``total_notfinite``; ``skip_nonfinite`` keeps
    ``skipped`` and ``total`` (update calls), both saturating ``int32``.

  Args:
    inner: the transformation to guard (e.g. :func:`spectral_jax.muon`).
    check_updates: also skip when ``inner``'s updates or new state are
      non-finite.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with state
    :class:`SkipNonFiniteState`.

  Raises:
    ValueError: if ``inner`` is not an ``optax.GradientTransformation``.
  """
  if not isinstance(inner, optax.GradientTransformation):
    raise ValueError(
        f"inner={inner!r} is not allowed; inner must be an "
        "optax.GradientTransformation (e.g. spectral_jax.muon(0.02)).")
  if not isinstance(check_updates, bool):
    raise ValueError(f"check_updates={check_updates!r} is not allowed; "
                     "check_updates must be True or False.")
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    return SkipNonFiniteState(
        inner_state=inner.init(params),
        skipped=jnp.zeros([], jnp.int32),
        total=jnp.zeros([], jnp.int32),
    )

  def update_fn(updates, state, params=None, **extra_args):
    ok = all_finite(updates)
    new_updates, new_inner = inner.update(updates, state.inner_state, params,
                                          **extra_args)
    if check_updates:
      # The new state too: an overflow there (AdamW's ν = β₂ν + (1−β₂)g² for
      # |g| ≳ 1e19 in float32) gives finite zero updates but an inf that
      # would freeze the leaf for good.
      ok = jnp.logical_and(ok, jnp.logical_and(all_finite(new_updates),
                                               all_finite(new_inner)))
    # Select, never multiply: 0 · NaN would be NaN.
    new_updates = jax.tree.map(
        lambda u: jnp.where(ok, u, jnp.zeros_like(u)), new_updates)
    new_inner = jax.tree.map(
        lambda new, old: jnp.where(ok, new, old), new_inner, state.inner_state)
    return new_updates, SkipNonFiniteState(
        inner_state=new_inner,
        skipped=jnp.where(ok, state.skipped,
                          optax.safe_increment(state.skipped)),
        total=optax.safe_increment(state.total),
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
