"""Statistics of captured activations and gradients: Gram matrices and ranks.

The traceable part (:func:`layerwise_stats`, :func:`sown_statistics`) forms
Gram matrices only, so it jits into one cheap program beside the model; the
decompositions (eigenvalues, singular values) run as small jitted programs of
their own (:func:`stable_rank_from_gram`, :func:`nuclear_rank`).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax import labels
from spectral_jax import linalg
from spectral_jax.diagnostics import capture

__all__ = [
    "activation_gram",
    "gradient_nuclear_ranks",
    "layerwise_stats",
    "nuclear_rank",
    "sown_statistics",
    "stable_rank_from_gram",
    "token_stable_rank",
]


def token_stable_rank(tokens: jax.Array, vocab_size: int) -> jax.Array:
  """st of the one-hot matrix of ``tokens``: ``1/p_max = n / max_count`` (2.15).

  Args:
    tokens: integer ids, shape ``(*batch, n)``; the last axis is counted.
    vocab_size: number of rows of the indicator matrix (ids in [0, vocab)).

  Returns:
    Array of shape ``batch``; 0 for an empty token axis.
  """
  def one(t):
    counts = jnp.zeros((vocab_size,), jnp.int32).at[t].add(1, mode="drop")
    # Exact ratio of two integers, one rounding.
    n = jnp.asarray(t.shape[-1], jnp.float32)
    top = jnp.max(counts).astype(jnp.float32)
    return jnp.where(top > 0, n / jnp.where(top > 0, top, 1.0), 0.0)
  flat = jnp.reshape(tokens, (-1, tokens.shape[-1]))
  return jnp.reshape(jax.vmap(one)(flat), tokens.shape[:-1])


def activation_gram(a: jax.Array, chunk_size=None, dtype=None) -> jax.Array:
  """The Gram matrix of A of shape (*layers, rows, features), on its cheaper side.

  Either side has the same nonzero eigenvalues, hence the same stable rank.
  """
  rows, feats = a.shape[-2:]
  if chunk_size is None and rows < feats:
    return linalg.gram(a, dtype=dtype)
  # Features × features, accumulated over token chunks.
  return linalg.gram(jnp.swapaxes(a, -1, -2), chunk_size=chunk_size,
                     dtype=dtype)


# Matrix decompositions run as small programs of their own, one per call:
# on XLA CPU (jax 0.10.2) one program holding many LAPACK calls (SVD, eigh)
# beside a model's backward pass was seen to hang; the same work split up runs.
nuclear_rank = jax.jit(
    lambda g: linalg.nuclear_rank(g.astype(jnp.promote_types(g.dtype,
                                                             jnp.float32))))
nuclear_rank.__doc__ = "nr(G) of every matrix of ``G`` (at least float32)."
stable_rank_from_gram = jax.jit(linalg.stable_rank_from_gram)
stable_rank_from_gram.__doc__ = "st(A) from the Gram matrix of ``A``."


def _diagonal_nuclear_rank(g: jax.Array) -> jax.Array:
  # nr(diag(g)) = ‖g‖₁² / ‖g‖₂², without forming diag(g).
  g = g.astype(jnp.promote_types(g.dtype, jnp.float32))
  l1 = jnp.sum(jnp.abs(g))
  return linalg.safe_div(l1 * l1, jnp.sum(g * g))


def gradient_nuclear_ranks(grads) -> dict[str, jax.Array]:
  """``{path name: nr}`` for every leaf of ``grads`` with ``ndim >= 1``.

  Matrices (any leading axes = stacked layers): nr(G) = ‖G‖_*² / ‖G‖_F², one
  per layer. Vectors (gains, biases): the diagonal analogue
  ‖g‖₁² / ‖g‖₂² = nr(diag(g)) (arXiv:2512.04299, §4.5). 0 for a zero leaf.
  """
  out = {}
  for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
    if g.ndim >= 2:
      # Op by op (not the jitted ``nuclear_rank``): the values training has
      # always logged, to the last bit (jit fuses the sums: ~1 ulp apart).
      g = g.astype(jnp.promote_types(g.dtype, jnp.float32))
      out[labels.path_name(path)] = linalg.nuclear_rank(g)
    elif g.ndim == 1:
      out[labels.path_name(path)] = _diagonal_nuclear_rank(g)
  return out


def layerwise_stats(model: nnx.Module, batch, loss_fn: Callable, *,
                    chunk_size: int | None = None, gram_dtype=None,
                    flax_layers: bool = True):
  """Gradients and activation Gram matrices of every matrix (traceable).

  One forward/backward pass of ``loss_fn(model, batch)`` under
  ``nnx.capture``; no matrix decompositions, so it jits into one cheap
  program. :func:`~spectral_jax.diagnostics.layerwise_report` turns the
  result into nr(G) and st(A).

  Args:
    model: an ``nnx.Module`` following the capture convention.
    batch: anything ``loss_fn`` takes.
    loss_fn: ``(model, batch) -> scalar``.
    chunk_size: tokens per Gram chunk (None: one shot, on the smaller side).
    gram_dtype: Gram accumulation dtype (default float64 with x64, else
      float32), so the activations themselves never need high precision.
    flax_layers: make plain ``nnx.Linear`` / ``nnx.Embed`` sow their inputs.

  Returns:
    ``(loss, stats)`` with ``stats = {path: dict(grad=G, gram=AᵀA or None,
    gram_preactivation=… or None, st_tokens=1/p_max or None)}``; a token table
    has ``st_tokens`` and no ``gram``.
  """
  def captured_loss(m, b):
    loss, inter = nnx.capture(loss_fn, nnx.Intermediate)(m, b)
    return loss, inter

  with capture.sowing_flax_layers(flax_layers):
    (loss, inter), grads = nnx.value_and_grad(captured_loss, has_aux=True)(
        model, batch)
  pairs = capture.pair_activations(
      capture.flat_state(nnx.state(model, nnx.Param)),
      capture.flat_state(inter))
  grads = capture.flat_state(grads)
  gram = lambda a: activation_gram(a, chunk_size, gram_dtype)
  stats = {}
  for path, (p, a, pre, tokens) in pairs.items():
    stats[path] = dict(
        grad=grads[path],
        gram=None if a is None or tokens else gram(a),
        gram_preactivation=None if pre is None else gram(pre),
        st_tokens=token_stable_rank(a, p.shape[-2]) if tokens else None)
  return loss, stats


def sown_statistics(model: nnx.Module, *args, distinct: bool = True,
                    gram_dtype=None, flax_layers: bool = True, **kwargs
                    ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """Gram matrices of everything ``model(*args)`` sows (traceable, forward only).

  Unlike :func:`layerwise_stats` every sown activation counts, not only a
  matrix's ``'inputs'`` and ``'preactivation'`` (e.g. GPT's attention heads
  ``H``), and no gradient is taken. The layer axes of a value are those of
  the matrix parameter of the module that sowed it (none without one).

  Args:
    model: an ``nnx.Module`` following the capture convention.
    *args, **kwargs: the model's inputs.
    distinct: sow an array once even if several modules sow it (see
      :func:`~spectral_jax.diagnostics.capture.distinct_sows`): the first
      sower's name is kept.
    gram_dtype: Gram accumulation dtype (default float64 with x64, else
      float32).
    flax_layers: make plain ``nnx.Linear`` / ``nnx.Embed`` sow their inputs.

  Returns:
    ``(grams, token_st)`` keyed by ``path_name`` of the sown value
    (``"blocks/attn/q/inputs"``): ``grams[name]`` of shape
    ``(*layers, d, d)`` (on the cheaper side), ``token_st[name]`` for integer
    ids sown into a token table (1/p_max, (2.15)); an unstacked token table
    also gets ``grams[".../output"]``, the Gram of the rows it looks up.
    Integer values sown where no matrix parameter bounds them are left out.
  """
  with capture.sowing_flax_layers(flax_layers), capture.distinct_sows(
      distinct):
    _, inter = nnx.capture(model, nnx.Intermediate)(*args, **kwargs)
  owners = capture.matrix_owners(
      capture.flat_state(nnx.state(model, nnx.Param)))
  gram = lambda a: activation_gram(a, None, gram_dtype)
  grams, token_st = {}, {}
  for path, raw in capture.flat_state(inter).items():
    p = owners.get(path[:-1])
    lead = () if p is None else tuple(p.shape[:-2])
    name = labels.path_name(path)
    if not capture.is_token_ids(raw):
      feats = jnp.shape(capture.first_value(raw))[-1]
      grams[name] = gram(capture.join_sown(raw, lead, feats))
    elif p is not None:  # Ids index the table: its rows bound them.
      ids = capture.join_sown(raw, lead, None)
      token_st[name] = token_stable_rank(ids, p.shape[-2])
      if not lead:  # The looked-up rows: the table's output activation.
        grams[labels.path_name(path[:-1] + ("output",))] = gram(p[ids])
  return grams, token_st
