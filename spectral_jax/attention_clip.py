r"""QK-clip (MuonClip): rescale query and key projections whose attention
logits grew past a threshold.

After each optimizer step, every head ``h`` whose largest attention logit
``S_max^h`` of that step exceeded ``τ`` has its query and key projections
scaled down so that the same inputs would give logits of at most ``τ``
(Kimi K2 technical report, arXiv:2507.20534, §2.1, Algorithm 1):

.. math::
  \gamma_h = \min(1, \tau / S^h_{\max}),\qquad
  W_q^h \leftarrow \gamma_h^{\alpha} W_q^h,\qquad
  W_k^h \leftarrow \gamma_h^{1-\alpha} W_k^h,\qquad \alpha = 1/2.

``S_max^h = max_{X ∈ batch} max_{i, j} q_i^h · k_j^h / √d_head`` over the
pairs the (causal) mask lets through, measured in the step's forward pass.
The report's MLA variant scales the head-specific content parts by
``√γ``, the head-specific rotary query part by ``γ`` and leaves the shared
rotary key alone; a multi-head attention with RoPE on every query and key
(:class:`spectral_jax.models.GPT`) has only head-specific parts, each
scaled by ``√γ`` (RoPE rotates, so it commutes with the scaling). With
``qk_norm`` the logits do not depend on the kernels' scale and the clip has
no effect.

The model reports ``S_max`` through ``nnx.sow`` (type
``models.layers.AttentionLogitMax``, name ``'logit_max'``, shape
``(..., n_head)``) from the module that owns the ``q`` and ``k`` kernels of
shape ``(..., fan_in, n_head·d_head)`` (heads contiguous in the output
axis). A train step with Muon (or any optax optimizer)::

  def loss_fn(params, x, y):
    model = nnx.merge(graphdef, params, rest)
    logits, maxima = sj.capture_logit_max(model, x)
    return loss(logits, y), maxima

  (loss, maxima), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      params, x, y)
  updates, opt_state = tx.update(grads, opt_state, params)  # sj.muon(...)
  params = optax.apply_updates(params, updates)
  params = sj.qk_clip(params, maxima, tau=100.0)

References:
  Kimi Team, *Kimi K2: Open agentic intelligence*, arXiv:2507.20534, §2.1.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax import checks
from spectral_jax import labels
from spectral_jax.models import layers

__all__ = ["capture_logit_max", "qk_clip"]

_NAME = "logit_max"


def capture_logit_max(model: nnx.Module, *args, **kwargs):
  """``(model(*args, **kwargs), maxima)``: the output and the sown logit
  maxima as a pure dict mirroring the module tree (leading axes of stacked
  layers kept). Differentiable in the output; the maxima carry no gradient.
  """
  out, state = nnx.capture(model, layers.AttentionLogitMax)(*args, **kwargs)
  return out, nnx.to_pure_dict(state)


def _module_maxima(maxima) -> dict[tuple[str, ...], jax.Array]:
  """``{module path: S_max of shape (..., n_head)}`` from the sown tree; a
  module called several times sows several values: their maximum."""
  found: dict[tuple[str, ...], jax.Array] = {}
  for path, value in jax.tree_util.tree_flatten_with_path(maxima)[0]:
    keys = labels.path_keys(path)
    if _NAME not in keys:
      raise ValueError(f"maxima: leaf {labels.path_name(path)} is not a sown "
                       f"'{_NAME}'; pass capture_logit_max's second output.")
    prefix = keys[:keys.index(_NAME)]
    value = jnp.asarray(value)
    value = value.astype(jnp.promote_types(value.dtype, jnp.float32))
    found[prefix] = (value if prefix not in found
                     else jnp.maximum(found[prefix], value))
  if not found:
    raise ValueError("maxima holds no sown 'logit_max': the model sows none "
                     "(see spectral_jax.models.layers.AttentionLogitMax).")
  return found


def _scale_heads(kernel, factor, where):
  """``kernel`` (..., fan_in, n_head·d_head) times ``factor`` (..., n_head)
  per head."""
  n_head = factor.shape[-1]
  if (kernel.ndim != factor.ndim + 1 or kernel.shape[:-2] != factor.shape[:-1]
      or kernel.shape[-1] % n_head):
    raise ValueError(
        f"{where} has shape {kernel.shape}, which does not fit logit maxima of "
        f"shape {factor.shape}: expected (..., fan_in, n_head·d_head) with "
        f"leading axes {factor.shape[:-1]} and n_head={n_head}.")
  per_col = jnp.repeat(factor, kernel.shape[-1] // n_head, axis=-1)
  w = jnp.promote_types(kernel.dtype, factor.dtype)
  return (kernel.astype(w) * per_col[..., None, :]).astype(kernel.dtype)


def qk_clip(params: Any, maxima: Any, tau: float, *, alpha: float = 0.5,
            query: str = "q", key: str = "k") -> Any:
  """Clipped ``params``: the query/key kernels of every head over ``tau``.

  Args:
    params: the model's parameters as a nested dict (``nnx.to_pure_dict``);
      an attention module at path ``P`` holds ``P/{query}/kernel`` and
      ``P/{key}/kernel``.
    maxima: :func:`capture_logit_max`'s second output for the step's batch.
    tau: the logit threshold ``τ > 0`` (Kimi K2: 100).
    alpha: the share of the scaling taken by the query, in [0, 1].
    query, key: names of the query and key submodules.

  Returns:
    ``params`` with ``W_q^h ← γ_h^α W_q^h`` and ``W_k^h ← γ_h^{1-α} W_k^h``;
    heads with ``S_max ≤ τ`` (and every other leaf) unchanged, bit for bit.

  Raises:
    ValueError: for ``tau <= 0``, ``alpha`` outside [0, 1], maxima with no
      ``'logit_max'``, or an attention module without both kernels.
  """
  checks.check_range("tau", tau, 0.0, lo_open=True,
                     what="a finite number > 0 (the largest logit allowed)")
  checks.check_range("alpha", alpha, 0.0, 1.0, what="in [0, 1]")
  # γ = min(1, τ / S_max), exactly 1 (so the kernel is untouched) at or
  # below τ.
  gammas = {prefix: jnp.where(s > tau, tau / s, 1.0)
            for prefix, s in _module_maxima(maxima).items()}
  powers = {query: alpha, key: 1.0 - alpha}
  seen = set()

  def clip(path, w):
    keys = labels.path_keys(path)
    if len(keys) < 2 or keys[-1] != "kernel" or keys[-2] not in powers:
      return w
    prefix = keys[:-2]
    if prefix not in gammas:
      return w
    seen.add((prefix, keys[-2]))
    return _scale_heads(w, gammas[prefix] ** powers[keys[-2]],
                        labels.path_name(path))

  out = jax.tree_util.tree_map_with_path(clip, params)
  for prefix in gammas:
    for name in (query, key):
      if (prefix, name) not in seen:
        raise ValueError(
            f"params has no {'/'.join(prefix + (name, 'kernel'))} for the "
            f"logit maxima sown at {'/'.join(prefix + (_NAME,))}.")
  return out
