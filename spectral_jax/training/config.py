"""What a training run depends on: :class:`TrainConfig`, checked, and presets."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from spectral_jax.training import sharding as shard_lib
from spectral_jax.training.optimizers import OPTIMIZERS

__all__ = ["PRESETS", "TrainConfig", "preset"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run depends on (defaults = preset ``cpu-small``).

  Model: ``n_layer``, ``n_head``, ``d_model``, ``context`` (tokens per
  sequence), ``mlp_ratio``, ``zero_init_out``, ``compute_dtype``.
  Optimisation: ``optimizer`` in ``OPTIMIZERS``; ``adamw_lr`` (AdamW arm, all
  parameters), ``muon_lr`` / ``specgd_lr`` (hidden matrices), ``embed_lr``
  (AdamW part of the Muon and SpecGD arms), ``weight_decay`` (AdamW arm),
  ``warmup_steps``, ``cooldown_frac`` and ``final_lr_frac`` (the shared
  warmup / constant / linear-cooldown multiplier), Muon momentum warmed up
  from ``momentum_start`` to ``momentum`` over ``momentum_warmup_steps``.
  ``qk_clip``: QK-clip's logit threshold τ (0 = off; any optimizer).
  Bookkeeping: ``track_every``, ``eval_every``, ``log_every``,
  ``ckpt_every`` (0 = off), ``val_batches``.
  """

  preset: str = "cpu-small"
  # Model.
  n_layer: int = 4
  n_head: int = 4
  d_model: int = 128
  context: int = 128
  mlp_ratio: int = 4
  zero_init_out: bool = False
  compute_dtype: str = "float32"
  pad_vocab_to: int = 128
  # Data.
  data: str = "stdlib"
  batch_size: int = 16
  steps: int = 300
  seed: int = 0
  # Optimiser.
  optimizer: str = "muon"
  adamw_lr: float = 3e-3
  embed_lr: float = 3e-3
  muon_lr: float = 0.02
  specgd_lr: float = 0.02
  weight_decay: float = 0.0
  warmup_steps: int = 20
  cooldown_frac: float = 0.45
  final_lr_frac: float = 0.1
  momentum_start: float = 0.85
  momentum: float = 0.95
  momentum_warmup_steps: int = 100
  ns_steps: int = 5
  qk_clip: float = 0.0  # τ of QK-clip (Kimi K2); 0 = off; any optimizer.
  # Bookkeeping.
  log_every: int = 10
  eval_every: int = 50
  val_batches: int = 4
  track_every: int = 100
  ckpt_every: int = 0
  mesh: str = ""

  def __post_init__(self):
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got "
                       f"{self.optimizer!r}.")
    for name in ("n_layer", "n_head", "d_model", "context", "mlp_ratio",
                 "batch_size", "val_batches", "log_every", "pad_vocab_to",
                 "ns_steps"):
      if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
        raise ValueError(f"{name} must be a positive int, got "
                         f"{getattr(self, name)!r}.")
    for name in ("steps", "eval_every", "track_every", "ckpt_every",
                 "warmup_steps", "momentum_warmup_steps", "seed"):
      if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
        raise ValueError(f"{name} must be an int >= 0, got "
                         f"{getattr(self, name)!r}.")
    for name in ("cooldown_frac", "final_lr_frac"):
      value = getattr(self, name)
      # A negative final_lr_frac made the cooldown ascend the loss.
      if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")
    for name in ("momentum", "momentum_start"):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}.")
    for name in ("adamw_lr", "embed_lr", "muon_lr", "specgd_lr",
                 "weight_decay", "qk_clip"):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and math.isfinite(value)
              and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got "
                         f"{value!r}.")
    if self.d_model % self.n_head:
      raise ValueError(f"n_head={self.n_head} must divide d_model="
                       f"{self.d_model} (head size d_model / n_head).")
    if self.compute_dtype not in ("float32", "bfloat16"):
      raise ValueError("compute_dtype must be 'float32' or 'bfloat16', got "
                       f"{self.compute_dtype!r}.")
    shard_lib.parse_mesh(self.mesh)

  def fingerprint(self) -> dict[str, Any]:
    """Fields a resumed run must share with its checkpoint."""
    free = {"steps", "log_every", "eval_every", "val_batches", "track_every",
            "ckpt_every", "mesh", "preset"}
    return {k: v for k, v in dataclasses.asdict(self).items() if k not in free}


PRESETS: dict[str, dict[str, Any]] = {
    # Sized so the whole default run (compile, 300 steps, tracking, eval,
    # figures) fits in 10 minutes on 2 shared CPU cores (measured: see
    # experiments/train_gpt.py).
    "cpu-small": {},
    # GPT-2 small (124M) for an accelerator: 12 × 768, 12 heads, context 1024,
    # modded-nanogpt's optimiser settings. Expects --data DIR of FineWeb shards.
    "gpt2-small": dict(
        n_layer=12, n_head=12, d_model=768, context=1024, batch_size=64,
        steps=5000, compute_dtype="bfloat16", zero_init_out=True,
        adamw_lr=6e-4, embed_lr=8e-3, muon_lr=0.05, specgd_lr=0.05,
        weight_decay=0.1, warmup_steps=200, momentum_warmup_steps=300,
        log_every=25, eval_every=125, val_batches=20, track_every=250,
        ckpt_every=1000),
}


def preset(name: str = "cpu-small", **overrides) -> TrainConfig:
  """The named preset with ``overrides`` applied."""
  if name not in PRESETS:
    raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {name!r}.")
  return TrainConfig(**{"preset": name, **PRESETS[name], **overrides})

