"""A small decoder-only transformer in the style of nanoGPT / modded-nanogpt.

    x_0 = E[tokens]
    x ← x + Attn(RMSNorm(x))           (causal, RoPE, separate W_Q, W_K, W_V, W_O)
    x ← x + W_2 relu²(W_1 RMSNorm(x))
    logits = RMSNorm(x) W_lm

Choices (documented because the paper's Table 1 pairs each matrix with an
activation through them):

* Positions: rotary (RoPE, base 10000) on queries and keys, as in
  modded-nanogpt. No learned position table, so the only embedding matrix is
  the token table and its incoming "activation" is the token indicator.
* RMSNorm: no learned gain by default (γ = 1, modded-nanogpt); ``norm_gain``
  adds one (1-D parameters, left out of the matrix report).
* Init: the paper's Assumption A — W_Q, W_K, W_V, W_O, W_1 ~ N(0, 1/d),
  W_2 ~ N(0, 1/(4d)), W_lm ~ N(0, 1/d); embeddings N(0, 1).
  ``zero_init_out`` zero-initialises W_O, W_2 and W_lm (modded-nanogpt).
* The ``n_layer`` blocks are created with ``nnx.vmap`` and run with
  ``nnx.scan``: each kind of matrix is one parameter of shape
  (n_layer, fan_in, fan_out).

Captured activations (only inside ``nnx.capture``; Table 1 of the paper):

============================  ==========================================
parameter                     sown ``'inputs'`` (rows = tokens)
============================  ==========================================
``wte.embedding``             token ids (the one-hot indicators)
``blocks.attn.{q,k,v}``       A_rms = RMSNorm(x)
``blocks.attn.o``             A_rms as well (H = W_V A_rms P); H is sown
                              as ``'heads'``
``blocks.mlp.fc``             A_rms_mlp = RMSNorm(x + Attn(·)); its output
                              is sown as ``'preactivation'``
``blocks.mlp.proj``           B = relu²(W_1 A_rms_mlp)
``lm_head``                   the final RMSNorm(x)
============================  ==========================================

With ``tie_embeddings`` there is no ``lm_head``; the shared table is paired
with the token indicators only.

Attention logit maxima (for QK-clip, :mod:`spectral_jax.attention_clip`): every
attention module sows ``S_max``, the largest logit ``q·k/√d_head`` of each
head over the batch and the causal pairs, shape ``(n_head,)`` per layer
(``(n_layer, n_head)`` once stacked), as ``layers.AttentionLogitMax`` under
the name ``'logit_max'``. Only ``nnx.capture(model, AttentionLogitMax)``
collects it; the activation captures above do not see it.

References:
  Karpathy, nanoGPT (github.com/karpathy/nanoGPT).
  Jordan et al., modded-nanogpt (github.com/KellerJordan/modded-nanogpt).
  Su et al., *RoFormer*, arXiv:2104.09864.
  Davis & Drusvyatskiy, arXiv:2512.04299, §2.3 (Assumption A) and Table 1.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax.models import layers


@dataclasses.dataclass(frozen=True)
class GPTConfig:
  """Sizes and options of :class:`GPT` (defaults: a CPU-sized byte-level model)."""
  vocab_size: int = 256
  context: int = 256
  n_layer: int = 4
  n_head: int = 4
  d_model: int = 256
  mlp_ratio: int = 4
  param_dtype: Any = jnp.float32
  dtype: Any = None            # matmul compute dtype (e.g. jnp.bfloat16); None = param dtype
  qk_norm: bool = False        # RMSNorm of queries and keys per head
  tie_embeddings: bool = False  # logits = RMSNorm(x) Eᵀ
  zero_init_out: bool = False  # W_O, W_2, W_lm start at zero (modded-nanogpt)
  norm_gain: bool = False      # learned RMSNorm gains
  rope_base: float = 10000.0

  def __post_init__(self):
    for name in ("vocab_size", "context", "n_layer", "n_head", "d_model",
                 "mlp_ratio"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    if self.d_model % self.n_head or (self.d_model // self.n_head) % 2:
      raise ValueError(
          f"d_model must be a multiple of 2·n_head (even head size for RoPE), "
          f"got d_model={self.d_model}, n_head={self.n_head}.")


def _at_least_f32(x: jax.Array) -> jax.Array:
  # Norms, rotations and softmax in ≥ float32 even when matmuls run in bf16.
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def rms_norm(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """x / rms(x) over the last axis, computed in at least float32."""
  y = _at_least_f32(x)
  y = y * jax.lax.rsqrt(jnp.mean(jnp.square(y), -1, keepdims=True) + eps)
  return y.astype(x.dtype)


class RMSNorm(nnx.Module):
  """RMSNorm with an optional learned gain γ (default none: γ = 1)."""

  def __init__(self, d: int, *, gain: bool, param_dtype=jnp.float32):
    self.scale = nnx.Param(jnp.ones((d,), param_dtype)) if gain else None

  def __call__(self, x):
    y = rms_norm(x)
    return y if self.scale is None else y * self.scale[...].astype(y.dtype)


def rope(x: jax.Array, base: float) -> jax.Array:
  """Rotary position embedding of x with shape (..., T, heads, head_dim)."""
  t, hd = x.shape[-3], x.shape[-1]
  y = _at_least_f32(x)
  freqs = base ** (-jnp.arange(0, hd // 2, dtype=y.dtype) / (hd // 2))
  angle = jnp.arange(t, dtype=y.dtype)[:, None] * freqs[None, :]
  cos, sin = jnp.cos(angle)[:, None, :], jnp.sin(angle)[:, None, :]
  x1, x2 = jnp.split(y, 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
  return out.astype(x.dtype)


def _linear(cfg: GPTConfig, fan_in, fan_out, rngs, *, zero=False, **kw):
  init = layers.zeros if zero else layers.normal_fan_in
  return layers.Linear(fan_in, fan_out, kernel_init=init, rngs=rngs,
                       param_dtype=cfg.param_dtype, dtype=cfg.dtype, **kw)


class CausalSelfAttention(nnx.Module):

  def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs):
    d = cfg.d_model
    self.cfg = cfg
    self.q = _linear(cfg, d, d, rngs)
    self.k = _linear(cfg, d, d, rngs)
    self.v = _linear(cfg, d, d, rngs)
    # W_O is paired with A_rms (Table 1), so it does not sow its own input H.
    self.o = _linear(cfg, d, d, rngs, zero=cfg.zero_init_out, sow_input=False)

  def __call__(self, a: jax.Array) -> jax.Array:
    """a: normalized input (B, T, d) → (B, T, d)."""
    cfg = self.cfg
    b, t, d = a.shape
    hd = d // cfg.n_head
    split = lambda y: y.reshape(b, t, cfg.n_head, hd)
    q, k, v = split(self.q(a)), split(self.k(a)), split(self.v(a))
    if cfg.qk_norm:
      q, k = rms_norm(q), rms_norm(k)
    q, k = rope(q, cfg.rope_base), rope(k, cfg.rope_base)
    scores = _at_least_f32(jnp.einsum("bqhc,bkhc->bhqk", q, k)) / jnp.sqrt(hd)
    causal = jnp.tril(jnp.ones((t, t), bool))
    scores = jnp.where(causal, scores, -jnp.inf)
    layers.sow(self, "logit_max", jax.lax.stop_gradient(
        jnp.max(scores, axis=(0, 2, 3))), kind=layers.AttentionLogitMax)
    p = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    h = jnp.einsum("bhqk,bkhc->bqhc", p, v).reshape(b, t, d)
    layers.sow(self.o, "inputs", a)
    layers.sow(self.o, "heads", h)
    return self.o(h)


class FeedForward(nnx.Module):
  """W_2 relu²(W_1 a): d → mlp_ratio·d → d."""

  def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs):
    d, k = cfg.d_model, cfg.mlp_ratio * cfg.d_model
    self.fc = _linear(cfg, d, k, rngs)
    self.proj = _linear(cfg, k, d, rngs, zero=cfg.zero_init_out)

  def __call__(self, a: jax.Array) -> jax.Array:
    z = self.fc(a)
    layers.sow(self.fc, "preactivation", z)
    return self.proj(jnp.square(jax.nn.relu(z)))


class Block(nnx.Module):

  def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs):
    self.norm_attn = RMSNorm(cfg.d_model, gain=cfg.norm_gain,
                             param_dtype=cfg.param_dtype)
    self.attn = CausalSelfAttention(cfg, rngs=rngs)
    self.norm_mlp = RMSNorm(cfg.d_model, gain=cfg.norm_gain,
                            param_dtype=cfg.param_dtype)
    self.mlp = FeedForward(cfg, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + self.attn(self.norm_attn(x))
    return x + self.mlp(self.norm_mlp(x))


class Embed(nnx.Module):
  """Token table E of shape (vocab, d); sows the token ids as ``'inputs'``."""

  def __init__(self, vocab: int, d: int, *, rngs: nnx.Rngs, param_dtype):
    self.embedding = nnx.Param(
        jax.random.normal(rngs.params(), (vocab, d), param_dtype))

  def __call__(self, tokens: jax.Array) -> jax.Array:
    layers.sow(self, "inputs", tokens)
    return self.embedding[...][tokens]


class GPT(nnx.Module):
  """Decoder-only transformer; ``GPT(config, rngs=...)(tokens) -> logits``.

  Args:
    config: a :class:`GPTConfig`.
    rngs: ``nnx.Rngs`` with a ``params`` stream.
  """

  def __init__(self, config: GPTConfig, *, rngs: nnx.Rngs):
    cfg = self.config = config
    self.wte = Embed(cfg.vocab_size, cfg.d_model, rngs=rngs,
                     param_dtype=cfg.param_dtype)

    # One Block whose every parameter has a leading n_layer axis.
    @nnx.split_rngs(splits=cfg.n_layer)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make_blocks(rngs: nnx.Rngs) -> Block:
      return Block(cfg, rngs=rngs)

    self.blocks = make_blocks(rngs)
    self.norm_f = RMSNorm(cfg.d_model, gain=cfg.norm_gain,
                          param_dtype=cfg.param_dtype)
    if cfg.tie_embeddings:
      self.lm_head = None
    else:
      self.lm_head = _linear(cfg, cfg.d_model, cfg.vocab_size, rngs,
                             zero=cfg.zero_init_out)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """tokens: int (B, T) with T ≤ context → float32 logits (B, T, vocab)."""
    if tokens.ndim != 2 or tokens.shape[1] > self.config.context:
      raise ValueError(
          f"tokens must have shape (batch, T) with T <= context="
          f"{self.config.context}, got {tokens.shape}.")
    x = self.wte(tokens)
    if self.config.dtype is not None:
      x = x.astype(self.config.dtype)

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def run_blocks(x, block: Block):
      return block(x)

    x = self.norm_f(run_blocks(x, self.blocks))
    if self.lm_head is None:
      return (x @ self.wte.embedding[...].astype(x.dtype).T).astype(jnp.float32)
    return self.lm_head(x).astype(jnp.float32)
