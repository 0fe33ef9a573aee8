"""NanoGPT-style training in JAX with AdamW, Muon or SpecGD, and spectral tracking.

``train(config, out_dir)`` trains :class:`spectral_jax.models.GPT` (or any NNX
language model given by ``model_fn``) on a :class:`~spectral_jax.training.data.TokenData`
source and writes, under ``out_dir``:

  * ``metrics.jsonl``: one JSON object per logged step — ``train_loss`` (mean
    over the steps since the previous row), ``val_loss``, ``tokens_per_s``,
    and on tracked steps ``st`` (stable rank of every captured activation, per
    layer) and ``nr`` (nuclear rank of every raw gradient, per layer);
  * ``ckpt/<step>/``: orbax checkpoints (``--ckpt-every``), for ``resume``;
  * ``summary.json`` and figures (the analogues of the paper's Figures 2, 5–10).

Optimizers (same data order for all: batches are a function of (seed, step)):

  * ``adamw``: AdamW, β = (0.9, 0.95), decoupled weight decay on matrices.
  * ``muon``: Muon on the hidden (block) matrices, AdamW on the embedding,
    the LM head and gains, as in modded-nanogpt: Nesterov momentum warmed up
    0.85 → 0.95, learning rate warmup / constant / linear cooldown.
  * ``specgd``: the spectral step ``‖G‖_* polar(G)`` on the hidden matrices,
    AdamW elsewhere.
  * ``normuon``: ``muon`` with NorMuon's neuron-wise normalisation after the
    orthogonalisation (:mod:`spectral_jax.neuron_norm`, arXiv:2510.05491).

``qk_clip=τ > 0`` (any optimizer): after every update, the query and key
kernels of each head whose largest attention logit in that step's forward
pass exceeded τ are scaled by √(τ/S_max) (Kimi K2's QK-clip,
:mod:`spectral_jax.attention_clip`).

Tracking runs a separate jitted function on tracked steps only (one extra
forward/backward on the step's batch, with activations captured through
``nnx.capture``); the training step itself never changes, so with tracking
off it costs nothing. Its wall time is reported in ``summary.json``.

Sharding and multi-host use: see :mod:`spectral_jax.training.sharding`.

References:
  Davis & Drusvyatskiy, arXiv:2512.04299 (§1.2.1, Figures 2, 5–10).
  Jordan et al., modded-nanogpt; Loshchilov & Hutter, AdamW, arXiv:1711.05101.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import signal
import sys
import threading
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import spectral_jax
from spectral_jax import labels
from spectral_jax import linalg
from spectral_jax import neuron_norm as normuon_lib
from spectral_jax import attention_clip as qk_lib
from spectral_jax.training import checkpoint as ckpt_lib
from spectral_jax.training import data as data_lib
from spectral_jax.training import sharding as shard_lib
from spectral_jax import files

__all__ = [
    "OPTIMIZERS",
    "PRESETS",
    "TrainConfig",
    "TrainState",
    "hidden_matrix_labels",
    "lr_multiplier",
    "make_optimizer",
    "make_train_step",
    "momentum_schedule",
    "preset",
    "train",
]

OPTIMIZERS = ("adamw", "muon", "specgd", "normuon")

# Parameters whose path contains one of these are never "hidden" matrices:
# they meet one-hot or vocabulary-sized activations (paper §1.2.1: Muon on
# interior matrices, Adam on embeddings and head).
_NOT_HIDDEN = ("wte", "wpe", "embed", "lm_head", "head", "unembed")


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
  qk_clip: float = 0.0  # τ of QK-clip; 0 = off.
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


# --------------------------------------------------------------------------
# Schedules and optimizers.
# --------------------------------------------------------------------------
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


def hidden_dimension_numbers(params) -> Any:
  """Muon/SpecGD specs: the last two axes of every block matrix, else ``None``.

  Leading axes (the stacked layer axis) are batch: each layer is its own
  matrix. Embedding and head (``_NOT_HIDDEN``) and 1-D gains get ``None``.
  """
  return spectral_jax.stacked_dimension_numbers(params, exclude=_NOT_HIDDEN)


def hidden_matrix_labels(params) -> Any:
  """``"hidden"`` for block matrices, ``"other"`` for the rest."""
  return jax.tree.map(lambda d: "other" if d is None else "hidden",
                      hidden_dimension_numbers(params),
                      is_leaf=lambda d: d is None or isinstance(
                          d, spectral_jax.MuonDimensionNumbers))


def _adamw(lr, weight_decay):
  # Decay matrices only (nanoGPT): gains and biases are not decayed.
  return optax.adamw(lr, b1=0.9, b2=0.95, eps=1e-8, weight_decay=weight_decay,
                     mask=lambda p: jax.tree.map(lambda x: x.ndim >= 2, p))


def make_optimizer(config: TrainConfig, params) -> optax.GradientTransformation:
  """The optimizer named by ``config.optimizer`` for this parameter tree.

  ``adamw``: AdamW on everything. ``muon`` / ``specgd``: ``optax.partition``
  of the spectral method on the hidden matrices and AdamW (β = (0.9, 0.95),
  no decay) on the embedding, head and gains, as modded-nanogpt splits them.
  """
  mult = lr_multiplier(config)
  if config.optimizer == "adamw":
    return _adamw(lambda t: config.adamw_lr * mult(t), config.weight_decay)
  param_labels = hidden_matrix_labels(params)
  other = _adamw(lambda t: config.embed_lr * mult(t), 0.0)
  # Specs as a function of the (partition-masked) tree the inner transform
  # sees: the hidden leaves only.
  dims = lambda p: jax.tree.map(
      lambda x: spectral_jax.MuonDimensionNumbers(x.ndim - 2, x.ndim - 1), p)
  if config.optimizer == "muon":
    # inject_hyperparams turns the momentum into a per-step schedule without
    # touching the Muon implementation (modded-nanogpt's momentum warmup).
    hidden = optax.inject_hyperparams(spectral_jax.muon, static_args=(
        "muon_weight_dimension_numbers", "ns_steps", "nesterov"))(
            learning_rate=lambda t: config.muon_lr * mult(t),
            beta=momentum_schedule(config), ns_steps=config.ns_steps,
            muon_weight_dimension_numbers=dims)
  elif config.optimizer == "normuon":
    hidden = make_normuon(config, dims, mult)
  else:
    hidden = spectral_jax.specgd(
        lambda t: config.specgd_lr * mult(t), weight_dimension_numbers=dims)
  return optax.partition({"hidden": hidden, "other": other}, param_labels)


def make_normuon(config: TrainConfig, dims, mult) -> optax.GradientTransformation:
  """NorMuon on the hidden matrices: the ``muon`` arm's learning rate and
  momentum schedule, NorMuon's β2 = 0.95 (arXiv:2510.05491)."""
  return optax.inject_hyperparams(normuon_lib.normuon, static_args=(
      "muon_weight_dimension_numbers", "ns_steps", "nesterov"))(
          learning_rate=lambda t: config.muon_lr * mult(t),
          beta=momentum_schedule(config), ns_steps=config.ns_steps,
          muon_weight_dimension_numbers=dims)


# --------------------------------------------------------------------------
# Model, state, steps.
# --------------------------------------------------------------------------
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
  def loss_fn(params, rest, x, y):
    return _loss(nnx.merge(graphdef, params, rest)(x), y)
  return loss_fn


def make_train_step(graphdef, tx, qk_clip: float = 0.0):
  """``step(state, rest, x, y) -> (state, loss)``, unjitted.

  ``qk_clip = τ > 0``: the forward pass also collects each head's largest
  attention logit, and the updated params go through
  :func:`spectral_jax.attention_clip.qk_clip` with those maxima.
  """
  loss_fn = make_loss_fn(graphdef)
  if qk_clip:
    loss_fn = _with_logit_max(graphdef)

  def step(state: TrainState, rest, x, y):
    out, grads = jax.value_and_grad(loss_fn, has_aux=bool(qk_clip))(
        state.params, rest, x, y)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    loss = out
    if qk_clip:  # QK-clip after the optimizer step (Kimi K2, Algorithm 1).
      loss, maxima = out
      params = qk_lib.qk_clip(params, maxima, qk_clip)
    return state._replace(params=params, opt_state=opt_state), loss

  return step


def _with_logit_max(graphdef):
  """``(params, rest, x, y) -> (loss, per-head attention-logit maxima)``."""
  def loss_fn(params, rest, x, y):
    model = nnx.merge(graphdef, params, rest)
    logits, maxima = qk_lib.capture_logit_max(model, x)
    return _loss(logits, y), maxima
  return loss_fn


def make_track_fn(graphdef):
  """``track(params, rest, x, y) -> (loss, st, nr)`` for one tracked step.

  Not jitted as a whole (see the comment inside). ``st``: stable rank of
  every captured activation (features = last axis,
  tokens = the (B, T) axes, any leading axis = layer), via the Gram matrix
  accumulated in float32; integer activations (token ids) give the
  token-indicator stable rank n / max_count. ``nr``: nuclear rank of every raw
  gradient matrix (per layer for stacked ones), and the diagonal analogue
  ‖g‖₁²/‖g‖₂² for 1-D parameters (paper §4.5).
  """

  loss_fn = make_loss_fn(graphdef)

  def capture(params, rest, x):
    model = nnx.merge(graphdef, params, rest)
    _, inter = nnx.capture(model, nnx.Intermediate)(x)
    return nnx.to_pure_dict(inter)

  def collect(params, rest, x, y):
    # Gradients from the plain loss, activations from a second forward pass:
    # differentiating through ``nnx.capture`` hung XLA:CPU (flax 0.12.8).
    loss, grads = jax.value_and_grad(loss_fn)(params, rest, x, y)
    inter = capture(params, rest, x)
    n_tok = x.size
    grams, token_st = {}, {}
    for path, a in jax.tree_util.tree_flatten_with_path(inter)[0]:
      name = "/".join(p for p in labels.path_name(path).split("/") if not p.isdigit())
      if any(name.endswith(k) for k in _DUPLICATE_INPUTS):
        continue
      if jnp.issubdtype(a.dtype, jnp.integer):
        flat = a.reshape(-1)
        counts = jnp.bincount(flat, length=_vocab_guess(params))
        token_st[name] = flat.shape[0] / jnp.max(counts)
        continue
      mats = a.reshape(-1, n_tok, a.shape[-1])  # (layers or 1, tokens, d)
      grams[name] = linalg.gram(jnp.swapaxes(mats, -1, -2), dtype=jnp.float32)
    if "wte" in params and "embedding" in params["wte"]:
      emb = params["wte"]["embedding"][x].reshape(1, n_tok, -1)
      grams["wte/output"] = linalg.gram(
          jnp.swapaxes(emb, -1, -2).astype(jnp.float32), dtype=jnp.float32)
    return loss, grams, token_st, grads

  collect = jax.jit(collect)

  def track(params, rest, x, y):
    loss, grams, token_st, grads = collect(params, rest, x, y)
    # The eigen/singular-value solves run one per dispatch, outside the big
    # program: many LAPACK custom calls inside one XLA:CPU program next to
    # the captured forward pass stalled for minutes on a loaded machine.
    st = dict(token_st)
    for name, g in grams.items():
      val = linalg.stable_rank_from_gram(g)
      st[name] = val if val.shape[0] > 1 else val[0]
    nr = {}
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
      g = g.astype(jnp.float32)
      if g.ndim >= 2:
        nr[labels.path_name(path)] = linalg.nuclear_rank(g)
      elif g.ndim == 1:
        l1, l2 = jnp.sum(jnp.abs(g)), jnp.sum(g * g)
        nr[labels.path_name(path)] = jnp.where(l2 > 0, l1 * l1 / jnp.where(l2 > 0, l2, 1), 0.0)
    return loss, st, nr

  return track


# In GPT, W_Q, W_K, W_V and W_O all multiply the same A_rms (gpt.py's table);
# their sown inputs are one array, so only W_Q's is measured.
_DUPLICATE_INPUTS = ("attn/k/inputs", "attn/v/inputs", "attn/o/inputs")


def _vocab_guess(params) -> int:
  # Token ids index the embedding table; its first axis bounds them.
  if "wte" in params and "embedding" in params["wte"]:
    return params["wte"]["embedding"].shape[0]
  return 1 << 16


def _to_json(tree):
  return jax.tree.map(lambda v: np.asarray(v, np.float64).round(6).tolist(),
                      jax.device_get(tree))


# --------------------------------------------------------------------------
# Metrics file.
# --------------------------------------------------------------------------
def read_metrics(out_dir) -> list[dict]:
  """The rows of ``out_dir/metrics.jsonl``.

  A run killed inside :func:`_append_row` leaves a partial last line (not
  valid JSON): that row is dropped (a resumed run rewrites
  every row from its checkpoint's step on). A bad line elsewhere is an error.
  """
  path = pathlib.Path(out_dir) / "metrics.jsonl"
  if not path.exists():
    return []
  lines = [(i, line) for i, line in
           enumerate(path.read_bytes().split(b"\n"), 1) if line]
  rows = []
  for number, line in lines[:-1]:
    try:
      rows.append(json.loads(line))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
      raise ValueError(
          f"{path}, line {number}: not a JSON metrics row ({err}); fix or "
          "delete that line (a resumed run rewrites the rows from its "
          "checkpoint's step on).") from None
  lines = [line for _, line in lines]
  if lines:
    try:
      rows.append(json.loads(lines[-1]))
    except (json.JSONDecodeError, UnicodeDecodeError):
      pass  # The append was cut: resume rewrites rows from its step on.
  return rows


def _append_row(path: pathlib.Path, row: dict) -> None:
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")
    f.flush()


# --------------------------------------------------------------------------
# The loop.
# --------------------------------------------------------------------------
def train(config: TrainConfig, out_dir, *, resume: bool = False,
          model_fn=None, data: data_lib.TokenData | None = None,
          stop_after: int | None = None, progress: bool = True,
          plots: bool = True) -> dict:
  """Trains and returns the summary (also written to ``out_dir/summary.json``).

  Args:
    config: a :class:`TrainConfig`.
    out_dir: output folder (created; must be writable; locked for the run).
    resume: continue from the latest checkpoint in ``out_dir/ckpt``; the
      metrics then equal those of an uninterrupted run.
    model_fn: ``(config, vocab_size, rngs) -> nnx.Module`` mapping (B, T)
      token ids to logits; default :class:`spectral_jax.models.GPT`.
    data: a token source; default ``load_data(config.data)``.
    stop_after: stop (as if interrupted) once this many steps are done,
      after checkpointing; for tests of ``resume``.
    progress: show a tqdm bar.
    plots: write figures at the end.

  Returns:
    dict with final losses, timing (``tokens_per_s``, ``track_overhead``),
    and paths.
  """
  out = ckpt_lib.check_writable(out_dir)
  with ckpt_lib.RunLock(out), _deferred_interrupt() as interrupted:
    return _train_locked(config, out, resume, model_fn, data, stop_after,
                         progress, plots, interrupted)


@contextlib.contextmanager
def _deferred_interrupt():
  """Ctrl-C stops the run between steps, after a checkpoint.

  A KeyboardInterrupt raised while XLA's threads run a step (or compile)
  could end in a segmentation fault at interpreter exit (issue 18: 5 of 10
  tries, 0.3–1 s after the first metrics row). The first SIGINT only sets
  the returned event; the loop checkpoints at the next step boundary and
  raises KeyboardInterrupt there. A second SIGINT interrupts at once. Only
  in the main thread (signal handlers can be set nowhere else).
  """
  event = threading.Event()
  if threading.current_thread() is not threading.main_thread():
    yield event
    return

  def handler(signum, frame):
    del signum, frame
    if event.is_set():
      raise KeyboardInterrupt
    event.set()
    print("\ninterrupt: stopping after this step with a checkpoint (Ctrl-C "
          "again to abort now)", file=sys.stderr, flush=True)

  previous = signal.signal(signal.SIGINT, handler)
  try:
    yield event
  finally:
    signal.signal(signal.SIGINT, previous)


def _train_locked(config, out, resume, model_fn, data, stop_after, progress,
                  plots, interrupted):
  t_start = time.perf_counter()
  metrics_path = out / "metrics.jsonl"
  ckpt_dir = out / "ckpt"
  if not resume and (metrics_path.exists() or (ckpt_dir.exists() and any(ckpt_dir.iterdir()))):
    raise ValueError(f"--out {out} already holds a run (metrics.jsonl or "
                     "ckpt/); pass --resume to continue it or choose a new folder.")
  data = data if data is not None else data_lib.load_data(config.data)
  graphdef, params, rest = init_model(config, data.vocab_size, model_fn)
  tx = make_optimizer(config, params)

  mesh = shard_lib.make_mesh(config.mesh) if config.mesh else None
  if mesh is not None:
    params = jax.device_put(params, shard_lib.param_shardings(params, mesh))
    x_sharding = shard_lib.batch_sharding(mesh, config.batch_size)
  else:
    x_sharding = None
  opt_state = jax.jit(tx.init)(params)
  state = TrainState(params, opt_state,
                     jax.random.key_data(jax.random.key(config.seed)))
  state_shardings = jax.tree.map(lambda a: a.sharding, state)

  step_fn = jax.jit(make_train_step(graphdef, tx, config.qk_clip),
                    donate_argnums=(0,),
                    out_shardings=(state_shardings, None))
  eval_fn = jax.jit(make_loss_fn(graphdef))
  track_fn = make_track_fn(graphdef)

  checkpointer = ckpt_lib.Checkpointer(ckpt_dir) if (
      config.ckpt_every or resume or stop_after is not None) else None
  # The data by content, not by path only: a file rewritten between a kill
  # and --resume is refused.
  expect = {"config": _jsonable(config.fingerprint()), "data": data.name,
            "data_content": data.fingerprint()}
  start, pending = 0, []
  if resume and checkpointer.latest_step() is None and (
      out / "summary.json").exists():
    # Finished without checkpoints (--ckpt-every 0): nothing left to do.
    print(f"--resume: the run in {out} has finished; nothing to do.",
          file=sys.stderr)
    checkpointer.close()
    return json.loads((out / "summary.json").read_text())
  if resume and checkpointer.latest_step() is None:
    # Interrupted before its first checkpoint (or stopped by a NaN or a full
    # disk with --ckpt-every 0): nothing to continue, so start it over here
    # rather than leave the folder stuck between "already holds a run" and
    # "no checkpoint".
    print(f"--resume: no checkpoint in {ckpt_dir}; starting the run over.",
          file=sys.stderr)
    resume = False
    files.atomic_write_text(metrics_path, "")
  if resume:
    state, meta = checkpointer.restore(state, expect)
    start, pending = int(meta["step"]), list(meta["pending_losses"])
    rows = [r for r in read_metrics(out) if r["step"] < start]
    files.atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

  def put(a):
    return jax.device_put(a, x_sharding) if x_sharding is not None else a

  val = [(put(x), put(y)) for x, y in data.val_batches(
      config.val_batches, config.batch_size, config.context)]
  tokens_per_step = config.batch_size * config.context
  timing = {"train_s": 0.0, "track_s": 0.0, "eval_s": 0.0, "compile_s": 0.0}
  timed_steps = 0  # steps in train_s (the first call compiles: not counted)
  steps_since, time_since = 0, 0.0
  last_val = None
  bar = _progress(progress, config.steps, start, config.optimizer)

  def ckpt_save(step):
    meta = dict(expect, data_seed=config.seed, pending_losses=pending)
    checkpointer.save(step, state, meta)

  step = start
  first_call = True
  while True:
    done = step >= config.steps
    if stop_after is not None and step >= stop_after and not done:
      # Checkpoint before this step's row consumes the pending losses, as the
      # periodic checkpoints do (they are saved right after the update).
      ckpt_save(step)
      checkpointer.close()
      return {"stopped_at": step}
    if interrupted.is_set() and not done:
      if checkpointer is None:  # --ckpt-every 0: one checkpoint, now.
        checkpointer = ckpt_lib.Checkpointer(ckpt_dir)
      ckpt_save(step)
      checkpointer.close()
      if bar is not None:
        bar.close()
      print(f"stopped at step {step}; continue with --resume.",
            file=sys.stderr)
      raise KeyboardInterrupt
    # --- the row for `step` (state after `step` updates) ---------------------
    row = {"step": step}
    if pending and (step % config.log_every == 0 or done):
      row["train_loss"] = float(np.mean(np.asarray(pending, np.float64)))
      pending = []
      if time_since > 0:
        row["tokens_per_s"] = round(steps_since * tokens_per_step / time_since, 1)
      steps_since, time_since = 0, 0.0
    if (config.eval_every and step % config.eval_every == 0) or done:
      t0 = time.perf_counter()
      last_val = float(np.mean([float(eval_fn(state.params, rest, x, y))
                                for x, y in val]))
      timing["eval_s"] += time.perf_counter() - t0
      row["val_loss"] = last_val
    x_np, y_np = data.train_batch(config.seed, step, config.batch_size,
                                  config.context)
    x, y = put(x_np), put(y_np)
    if config.track_every and (step % config.track_every == 0 or done):
      t0 = time.perf_counter()
      loss, st, nr = track_fn(state.params, rest, x, y)
      row["st"], row["nr"] = _to_json(st), _to_json(nr)
      timing["track_s"] += time.perf_counter() - t0
    if len(row) > 1:
      _append_row(metrics_path, row)
    if done:
      break
    # --- one update -----------------------------------------------------------
    t0 = time.perf_counter()
    state, loss = step_fn(state, rest, x, y)
    loss = float(loss)  # syncs, so the timing is honest.
    dt = time.perf_counter() - t0
    if first_call:
      timing["compile_s"] += dt
      first_call = False
    else:
      timing["train_s"] += dt
      timed_steps += 1
      steps_since += 1
      time_since += dt
    if not math.isfinite(loss):
      raise FloatingPointError(f"{config.optimizer}: loss is {loss} at step "
                               f"{step}; lower the learning rate.")
    pending.append(loss)
    step += 1
    if bar is not None:
      bar.update(1)
      bar.set_postfix(loss=f"{loss:.3f}")
    periodic = config.ckpt_every and step % config.ckpt_every == 0
    final = step == config.steps and (config.ckpt_every or resume)
    if checkpointer is not None and (periodic or final):
      # Saved before this step's row consumes the pending losses (the final
      # checkpoint included), so a resume from here rewrites that row whole.
      ckpt_save(step)
  if bar is not None:
    bar.close()
  if checkpointer is not None:
    checkpointer.close()

  rows = read_metrics(out)
  train_steps = timed_steps
  summary = {
      "optimizer": config.optimizer,
      "config": _jsonable(dataclasses.asdict(config)),
      "data": data.name,
      "n_params": int(sum(np.size(p) for p in jax.tree.leaves(state.params))),
      "final_val_loss": last_val,
      "final_train_loss": next((r["train_loss"] for r in reversed(rows)
                                if "train_loss" in r), None),
      # None when nothing was trained (e.g. --steps 0): no rate to report.
      "tokens_per_s": (round(train_steps * tokens_per_step /
                             timing["train_s"], 1)
                       if train_steps > 0 and timing["train_s"] > 0 else None),
      "track_overhead": (round(timing["track_s"] / timing["train_s"], 4)
                         if timing["train_s"] > 0 else None),
      "timing_s": {k: round(v, 2) for k, v in timing.items()},
      "wall_s": round(time.perf_counter() - t_start, 2),
      "resumed_from": start if resume else None,
      # st(W) of every hidden matrix at the end (paper 3: Muon keeps it higher).
      "weight_stable_rank": _weight_stable_ranks(state.params),
  }
  if plots:
    summary["figures"] = write_figures(rows, out, title=config.optimizer)
  files.atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
  return summary


def _weight_stable_ranks(params) -> dict[str, list[float]]:
  param_labels = hidden_matrix_labels(params)
  out = {}
  for (path, w), lab in zip(jax.tree_util.tree_flatten_with_path(params)[0],
                            jax.tree.leaves(param_labels)):
    if lab == "hidden":
      val = np.atleast_1d(np.asarray(linalg.stable_rank(w.astype(jnp.float32))))
      out[labels.path_name(path)] = [round(float(v), 4) for v in val]
  return out


def _jsonable(d):
  return json.loads(json.dumps(d, default=str))


def _progress(enabled, total, start, desc):
  if not enabled:
    return None
  try:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return tqdm(total=total, initial=start, desc=desc, leave=False)


# --------------------------------------------------------------------------
# Figures: the analogues of the paper's Figures 2 and 5–10.
# --------------------------------------------------------------------------
# (file, title, "st" | "nr", name substrings, y label)
FIGURES = (
    ("fig2_mlp_activation_st.png",
     "MLP hidden activation: before (pre) and after (post) ReLU²", "st",
     ("mlp/fc/preactivation", "mlp/proj/inputs"), "stable rank"),
    ("fig5_mlp_grad_nr.png", "MLP gradients (W_1 = fc, W_2 = proj)", "nr",
     ("mlp/fc/kernel", "mlp/proj/kernel"), "nuclear rank"),
    ("fig6_rmsnorm_st.png", "RMS-normalised inputs (pre-attn, pre-MLP, pre-head)",
     "st", ("attn/q/inputs", "mlp/fc/inputs", "lm_head/inputs"), "stable rank"),
    ("fig7_embed_head_grad_nr.png", "Embedding and LM-head gradients", "nr",
     ("wte/embedding", "lm_head/kernel"), "nuclear rank"),
    ("fig8_qk_grad_nr.png", "W_Q and W_K gradients", "nr",
     ("attn/q/kernel", "attn/k/kernel"), "nuclear rank"),
    ("fig9_ov_grad_nr.png", "W_O and W_V gradients", "nr",
     ("attn/o/kernel", "attn/v/kernel"), "nuclear rank"),
    ("fig10_embedding_st.png", "Embedding output and token indicators", "st",
     ("wte/output", "wte/inputs"), "stable rank"),
)


def _series(rows, kind):
  """{name: (steps, values (n_steps, n_layers))} from tracked rows."""
  out = {}
  for r in rows:
    for name, v in r.get(kind, {}).items():
      out.setdefault(name, ([], []))
      out[name][0].append(r["step"])
      out[name][1].append(np.atleast_1d(np.asarray(v, np.float64)))
  return {k: (np.array(s), np.stack(v)) for k, (s, v) in out.items()}


def write_figures(rows, out_dir, title: str = "") -> list[str]:
  """Loss curves and the tracked-rank figures; returns the written paths."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  out_dir = pathlib.Path(out_dir)
  written = []

  def save(fig, name):
    path = out_dir / name
    try:
      files.atomic_write(path, lambda f: fig.savefig(
          f, dpi=110, bbox_inches="tight", format="png"), "wb")
    finally:
      plt.close(fig)
    written.append(str(path))

  fig, ax = plt.subplots(figsize=(6, 4))
  for key, style in (("train_loss", "-"), ("val_loss", "o-")):
    pts = [(r["step"], r[key]) for r in rows if key in r]
    if pts:
      ax.plot(*zip(*pts), style, label=key.replace("_", " "), ms=3)
  ax.set(xlabel="step", ylabel="cross-entropy (nats/token)", title=f"loss {title}")
  ax.legend()
  save(fig, "loss.png")

  for kind in ("st", "nr"):
    series = _series(rows, kind)
    for fname, ftitle, fkind, keys, ylabel in FIGURES:
      if fkind != kind:
        continue
      names = [n for n in series if any(n.endswith(k) or k in n for k in keys)]
      if not names:
        continue
      fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4),
                               squeeze=False)
      for ax, name in zip(axes[0], names):
        steps, vals = series[name]
        for layer in range(vals.shape[1]):
          ax.plot(steps, vals[:, layer], "o-", ms=2,
                  label=f"layer {layer}" if vals.shape[1] > 1 else None)
        ax.set(xlabel="step", ylabel=ylabel, title=name, ylim=(0, None))
        if vals.shape[1] > 1:
          ax.legend(fontsize=6)
      fig.suptitle(f"{ftitle} ({title})", y=1.04)
      save(fig, fname)
  return written
