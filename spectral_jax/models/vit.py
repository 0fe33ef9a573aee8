"""A small Vision Transformer (pre-LayerNorm, mean-pooled) in Flax NNX.

    patches (p×p×C, flattened) → Linear → + learned positions
      → [x + Attn(LN(x)); x + MLP(LN(x))] × depth → LN → mean over patches
      → head Linear → logits

Blocks are created with ``nnx.vmap`` and run with ``nnx.scan``, so each kind of
block matrix is one parameter of shape (depth, in, out) — a stacked matrix for
``spectral_jax.labels.nnx_dimension_numbers``. The patch embedding and the head
are named ``embed`` and ``head`` so the labelling helpers leave them to the
non-spectral optimizer. Dense layers are ``layers.Linear`` and sow their
inputs for the layerwise diagnostics.

References:
  Dosovitskiy et al., *An image is worth 16x16 words*, arXiv:2010.11929.
  Beneventano et al., arXiv:2606.08388 (the small-ViT control of paper 3;
  its sizes are not public).
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax.models import layers


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  image_size: int = 8
  patch_size: int = 2
  in_channels: int = 1
  num_classes: int = 10
  d_model: int = 64
  depth: int = 2
  n_head: int = 4
  mlp_ratio: int = 2
  param_dtype: jnp.dtype = jnp.float32

  def __post_init__(self):
    if self.image_size % self.patch_size:
      raise ValueError(
          f"patch_size must divide image_size, got patch_size="
          f"{self.patch_size}, image_size={self.image_size}.")
    if self.d_model % self.n_head:
      raise ValueError(f"n_head must divide d_model, got n_head={self.n_head}"
                       f", d_model={self.d_model}.")
    for name in ("image_size", "patch_size", "in_channels", "num_classes",
                 "d_model", "depth", "n_head", "mlp_ratio"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")

  @property
  def num_patches(self) -> int:
    return (self.image_size // self.patch_size) ** 2


def _linear(cfg, fan_in, fan_out, rngs):
  return layers.Linear(fan_in, fan_out, use_bias=True,
                       kernel_init=layers.normal_fan_in, rngs=rngs,
                       param_dtype=cfg.param_dtype)


class Attention(nnx.Module):
  """Bidirectional multi-head self-attention."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    d = cfg.d_model
    self.n_head = cfg.n_head
    self.q = _linear(cfg, d, d, rngs)
    self.k = _linear(cfg, d, d, rngs)
    self.v = _linear(cfg, d, d, rngs)
    self.o = _linear(cfg, d, d, rngs)

  def __call__(self, a: jax.Array) -> jax.Array:
    b, t, d = a.shape
    hd = d // self.n_head
    split = lambda y: y.reshape(b, t, self.n_head, hd)
    q, k, v = split(self.q(a)), split(self.k(a)), split(self.v(a))
    p = jax.nn.softmax(jnp.einsum("bqhc,bkhc->bhqk", q, k) / jnp.sqrt(hd), -1)
    return self.o(jnp.einsum("bhqk,bkhc->bqhc", p, v).reshape(b, t, d))


class Block(nnx.Module):

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    d = cfg.d_model
    self.norm_attn = nnx.LayerNorm(d, param_dtype=cfg.param_dtype, rngs=rngs)
    self.attn = Attention(cfg, rngs=rngs)
    self.norm_mlp = nnx.LayerNorm(d, param_dtype=cfg.param_dtype, rngs=rngs)
    self.fc = _linear(cfg, d, cfg.mlp_ratio * d, rngs)
    self.proj = _linear(cfg, cfg.mlp_ratio * d, d, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + self.attn(self.norm_attn(x))
    return x + self.proj(jax.nn.gelu(self.fc(self.norm_mlp(x))))


class ViT(nnx.Module):
  """``ViT(config, rngs=...)(images) -> logits``.

  Args:
    config: a :class:`ViTConfig`.
    rngs: ``nnx.Rngs`` with a ``params`` stream.
  """

  def __init__(self, config: ViTConfig, *, rngs: nnx.Rngs):
    cfg = self.config = config
    p = cfg.patch_size
    self.embed = _linear(cfg, p * p * cfg.in_channels, cfg.d_model, rngs)
    self.pos = nnx.Param(0.02 * jax.random.normal(
        rngs.params(), (cfg.num_patches, cfg.d_model), cfg.param_dtype))

    @nnx.split_rngs(splits=cfg.depth)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make_blocks(rngs: nnx.Rngs) -> Block:
      return Block(cfg, rngs=rngs)

    self.blocks = make_blocks(rngs)
    self.norm_f = nnx.LayerNorm(cfg.d_model, param_dtype=cfg.param_dtype,
                                rngs=rngs)
    self.head = _linear(cfg, cfg.d_model, cfg.num_classes, rngs)

  def patchify(self, x: jax.Array) -> jax.Array:
    """(B, H, W, C) → (B, patches, p·p·C), patches in row-major order."""
    cfg = self.config
    b, h, w, c = x.shape
    if (h, w, c) != (cfg.image_size, cfg.image_size, cfg.in_channels):
      raise ValueError(
          f"x must have shape (B, {cfg.image_size}, {cfg.image_size}, "
          f"{cfg.in_channels}), got {x.shape}.")
    p = cfg.patch_size
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: (B, H, W, C) images → (B, num_classes) logits."""
    x = self.embed(self.patchify(x)) + self.pos[...]

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def run_blocks(x, block: Block):
      return block(x)

    x = self.norm_f(run_blocks(x, self.blocks))
    return self.head(jnp.mean(x, axis=1))
