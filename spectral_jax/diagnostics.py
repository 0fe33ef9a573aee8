r"""Layer by layer: would a spectral update beat a Euclidean one here?

For a weight matrix ``W_ℓ`` with gradient ``G_ℓ`` acting on the incoming
activation ``A_{ℓ−1}`` (rows = samples or tokens), the one-step guarantee of
the spectral step ``W − (‖G‖_*/L^op) polar(G)`` is at least that of the
Euclidean step ``W − G/L^F`` exactly when

.. math::
  nr(G_ℓ) = \frac{\|G_ℓ\|_*^2}{\|G_ℓ\|_F^2} \;\ge\;
  st(A_{ℓ-1}) = \frac{\|A_{ℓ-1}\|_F^2}{\|A_{ℓ-1}\|_{op}^2},

and the realized loss is guaranteed lower once ``nr ≥ 2 st`` (SPEC (4.18),
§1.2). For a token embedding ``A`` is the one-hot token matrix, and
``st = 1/p_max`` with ``p_max`` the frequency of the commonest token (2.15).

Ten lines from a model to the verdict::

  import jax, optax
  from flax import nnx
  import spectral_jax as sj
  from spectral_jax.models import GPT, GPTConfig

  model = GPT(GPTConfig(n_layer=2, d_model=32, context=32), rngs=nnx.Rngs(0))
  batch = jax.random.randint(jax.random.key(1), (8, 33), 0, 256)
  def loss_fn(model, batch):
    logits = model(batch[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()
  print(sj.layerwise_report(model, batch, loss_fn).table())

Capture convention (any NNX model): a module owning a matrix parameter of
shape ``(*layers, fan_in, fan_out)`` sows, as ``nnx.Intermediate`` named
``'inputs'`` on that same module, the activation the matrix multiplies:
shape ``(*layers, *samples, fan_in)`` (stacked ``nnx.vmap``/``nnx.scan``
blocks give the leading layer axes). A token table of shape ``(vocab, d)``
sows its integer token ids instead. :class:`spectral_jax.models.Linear` and
every model in :mod:`spectral_jax.models` follow it; plain ``nnx.Linear`` and
``nnx.Embed`` layers are made to follow it for the duration of a capture
(``flax_layers=True``). A module may also sow ``'preactivation'`` (its output
before the nonlinearity), reported as ``st_preactivation``.

References:
  Davis & Drusvyatskiy, *When do spectral gradient updates help in deep
  learning?*, arXiv:2512.04299, §1.2, §2.3 (2.15), §4 (4.18), Table 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from spectral_jax import linalg
from spectral_jax.models import layers

__all__ = [
    "LayerStat",
    "LayerwiseReport",
    "NuclearRankMonitorState",
    "capture_activations",
    "layerwise_report",
    "layerwise_stats",
    "monitor_nuclear_rank",
    "token_stable_rank",
]

Path = tuple[Any, ...]


# --------------------------------------------------------------------------
# Capture
# --------------------------------------------------------------------------
_PATCH_DEPTH = [0]


@contextlib.contextmanager
def _sowing_flax_layers(enabled: bool = True):
  """Makes ``nnx.Linear`` / ``nnx.Embed`` sow their input while active.

  The same temporary class patch ``nnx.capture(method_outputs=...)`` uses;
  sowing is still a no-op outside ``nnx.capture``.
  """
  if not enabled or _PATCH_DEPTH[0]:
    yield
    return
  originals = {cls: cls.__call__ for cls in (nnx.Linear, nnx.Embed)}

  def wrap(call):
    def sowing_call(self, inputs, *args, **kwargs):
      layers.sow(self, "inputs", inputs)
      return call(self, inputs, *args, **kwargs)
    return sowing_call

  _PATCH_DEPTH[0] += 1
  try:
    for cls, call in originals.items():
      cls.__call__ = wrap(call)
    yield
  finally:
    for cls, call in originals.items():
      cls.__call__ = call
    _PATCH_DEPTH[0] -= 1


def _flat(state) -> dict[Path, Any]:
  return {tuple(p): v.get_value() for p, v in nnx.to_flat_state(state)}


def _join(values, lead: tuple[int, ...], features: int | None) -> jax.Array:
  """Sown values (a tuple, one per call) → ``(*lead, rows[, features])``."""
  if not isinstance(values, (tuple, list)):
    values = (values,)
  tail = (-1,) if features is None else (-1, features)
  parts = [jnp.reshape(v, lead + tail) for v in values]
  return parts[0] if len(parts) == 1 else jnp.concatenate(parts, len(lead))


def _pair(params: dict[Path, Any], inter: dict[Path, Any]):
  """Matches matrix parameters with their sown activations.

  Returns ``{path: (param, inputs | None, preactivation | None, is_tokens)}``
  with activations as ``(*layers, rows, fan_in)`` (token ids:
  ``(*layers, rows)``).
  """
  out = {}
  for path, p in params.items():
    if jnp.ndim(p) < 2:
      continue
    lead, fan_in = tuple(p.shape[:-2]), p.shape[-2]
    owner = path[:-1]
    raw = inter.get(owner + ("inputs",))
    pre = inter.get(owner + ("preactivation",))
    a, tokens = None, False
    if raw is not None:
      first = raw[0] if isinstance(raw, (tuple, list)) else raw
      tokens = jnp.issubdtype(jnp.asarray(first).dtype, jnp.integer)
      if tokens:
        a = _join(raw, lead, None)
      else:
        if first.shape[-1] != fan_in or tuple(first.shape[:len(lead)]) != lead:
          raise ValueError(
              f"activation sown for {_name(path)} has shape {first.shape}, "
              f"but a parameter of shape {p.shape} needs (*{lead}, ..., "
              f"{fan_in}): sow the input of y = x W with W of shape "
              "(fan_in, fan_out).")
        a = _join(raw, lead, fan_in)
    if pre is not None:
      first = pre[0] if isinstance(pre, (tuple, list)) else pre
      pre = _join(pre, lead, first.shape[-1])
    out[path] = (p, a, pre, bool(tokens))
  return out


def capture_activations(model: nnx.Module, *args, one_hot: bool = True,
                        flax_layers: bool = True, jit: bool = True,
                        **kwargs) -> dict[Path, jax.Array]:
  """Runs ``model(*args, **kwargs)`` and returns each matrix's incoming activation.

  Args:
    model: an ``nnx.Module`` following the capture convention of this module.
    *args, **kwargs: the model's inputs.
    one_hot: give token tables their one-hot indicator matrix
      ``(rows, vocab)``; False gives the token ids ``(rows,)``.
    flax_layers: make plain ``nnx.Linear`` / ``nnx.Embed`` sow their inputs.
    jit: run the forward pass under ``nnx.jit`` (keyword inputs are static).

  Returns:
    ``{param_path: A}`` with ``A`` of shape ``(*layers, rows, fan_in)``: rows
    are samples/tokens (all sample axes flattened), ``layers`` the leading
    axes of a stacked parameter. Matrices whose module sowed nothing are left
    out.
  """
  def run(m, *a):
    return nnx.capture(m, nnx.Intermediate)(*a, **kwargs)[1]

  with _sowing_flax_layers(flax_layers):
    inter = (nnx.jit(run) if jit else run)(model, *args)
  pairs = _pair(_flat(nnx.state(model, nnx.Param)), _flat(inter))
  out = {}
  for path, (p, a, _, tokens) in pairs.items():
    if a is None:
      continue
    if tokens and one_hot:
      a = jax.nn.one_hot(a, p.shape[-2], dtype=p.dtype)
    out[path] = a
  return out


# --------------------------------------------------------------------------
# Statistics (jit-compatible core)
# --------------------------------------------------------------------------
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


def _gram(a: jax.Array, chunk_size, dtype) -> jax.Array:
  """The Gram matrix of A of shape (*layers, rows, features), on its cheaper side."""
  rows, feats = a.shape[-2:]
  if chunk_size is None and rows < feats:
    return linalg.gram(a, dtype=dtype)
  # Features × features, accumulated over token chunks.
  return linalg.gram(jnp.swapaxes(a, -1, -2), chunk_size=chunk_size,
                     dtype=dtype)


# Matrix decompositions run as small programs of their own, one per call:
# on XLA CPU (jax 0.10.2) one program holding many LAPACK calls (SVD, eigh)
# beside a model's backward pass was seen to hang; the same work split up runs.
_nuclear_rank_jit = jax.jit(
    lambda g: linalg.nuclear_rank(g.astype(jnp.promote_types(g.dtype,
                                                             jnp.float32))))
_stable_rank_from_gram_jit = jax.jit(linalg.stable_rank_from_gram)


def layerwise_stats(model: nnx.Module, batch, loss_fn: Callable, *,
                    chunk_size: int | None = None, gram_dtype=None,
                    flax_layers: bool = True):
  """Gradients and activation Gram matrices of every matrix (traceable).

  One forward/backward pass of ``loss_fn(model, batch)`` under
  ``nnx.capture``; no matrix decompositions, so it jits into one cheap
  program. :func:`layerwise_report` turns the result into nr(G) and st(A).

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

  with _sowing_flax_layers(flax_layers):
    (loss, inter), grads = nnx.value_and_grad(captured_loss, has_aux=True)(
        model, batch)
  pairs = _pair(_flat(nnx.state(model, nnx.Param)), _flat(inter))
  grads = _flat(grads)
  stats = {}
  for path, (p, a, pre, tokens) in pairs.items():
    stats[path] = dict(
        grad=grads[path],
        gram=None if a is None or tokens else _gram(a, chunk_size, gram_dtype),
        gram_preactivation=(None if pre is None
                            else _gram(pre, chunk_size, gram_dtype)),
        st_tokens=token_stable_rank(a, p.shape[-2]) if tokens else None)
  return loss, stats


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------
def _name(path: Path) -> str:
  return ".".join(str(k) for k in path)


class LayerStat(NamedTuple):
  """One matrix (one layer of a stacked parameter) of a layerwise report."""
  path: Path                 # parameter path, e.g. ('blocks', 'attn', 'q', 'kernel')
  layer: int | tuple | None  # index along the stacked axes; None if not stacked
  shape: tuple[int, int]     # the matrix shape (fan_in, fan_out)
  kind: str                  # 'matrix' or 'embedding' (st from token counts)
  nr: float                  # nr(G) = ‖G‖_*² / ‖G‖_F²
  st: float | None           # st(A) of the incoming activation; None: not captured
  st_preactivation: float | None  # st of the module's sown pre-activation
  ratio: float | None        # nr / st
  condition: bool | None     # nr ≥ st: spectral step's guarantee is the larger
  strong: bool | None        # nr ≥ 2 st: spectral step's loss is guaranteed lower

  @property
  def name(self) -> str:
    base = _name(self.path)
    if self.layer is None:
      return base
    idx = self.layer if isinstance(self.layer, tuple) else (self.layer,)
    return base + "[" + ",".join(str(i) for i in idx) + "]"


def _finite(x) -> float | None:
  if x is None:
    return None
  x = float(x)
  return x if math.isfinite(x) else None


@dataclasses.dataclass(frozen=True)
class LayerwiseReport:
  """Per-matrix nr(G), st(A) and the layerwise condition, ready to print."""
  entries: tuple[LayerStat, ...]
  loss: float

  def __len__(self):
    return len(self.entries)

  def __iter__(self):
    return iter(self.entries)

  def spectral_layers(self, strong: bool = False) -> list[str]:
    """Names of the matrices where the condition (or ``nr ≥ 2 st``) holds."""
    key = "strong" if strong else "condition"
    return [e.name for e in self.entries if getattr(e, key)]

  def table(self) -> str:
    """A fixed-width table, one row per matrix and layer."""
    fmt = lambda x: "—" if x is None else f"{x:.3g}"
    rows = [("parameter", "shape", "nr(G)", "st(A)", "nr/st", "st(pre)",
             "spectral?")]
    for e in self.entries:
      verdict = ("?" if e.condition is None else
                 "yes, strong" if e.strong else "yes" if e.condition else "no")
      rows.append((e.name, f"{e.shape[0]}×{e.shape[1]}", fmt(e.nr), fmt(e.st),
                   fmt(e.ratio), fmt(e.st_preactivation), verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    n_yes = sum(bool(e.condition) for e in self.entries)
    lines.append(f"loss {self.loss:.4g}; nr(G) ≥ st(A) on {n_yes} of "
                 f"{len(self.entries)} matrices (Davis & Drusvyatskiy, "
                 "arXiv:2512.04299, (4.18)).")
    return "\n".join(lines)

  __str__ = table

  def to_dict(self) -> dict:
    """JSON-ready: non-finite numbers become None."""
    return {
        "loss": _finite(self.loss),
        "entries": [
            {"name": e.name, "path": [str(k) for k in e.path],
             "layer": (list(e.layer) if isinstance(e.layer, tuple)
                       else e.layer),
             "shape": list(e.shape), "kind": e.kind, "nr": _finite(e.nr),
             "st": _finite(e.st),
             "st_preactivation": _finite(e.st_preactivation),
             "ratio": _finite(e.ratio), "condition": e.condition,
             "strong": e.strong}
            for e in self.entries],
    }

  def to_json(self, **kwargs) -> str:
    return json.dumps(self.to_dict(), **kwargs)


def _entries(path: Path, shape, s) -> list[LayerStat]:
  nr = np.asarray(s["nr"], np.float64)
  st = None if s["st"] is None else np.asarray(s["st"], np.float64)
  pre = (None if s["st_preactivation"] is None
         else np.asarray(s["st_preactivation"], np.float64))
  lead = tuple(shape[:-2])
  out = []
  for idx in np.ndindex(*lead) if lead else [()]:
    r = float(nr[idx])
    a = None if st is None else float(st[idx])
    ratio = cond = strong = None
    if a is not None:
      # A zero activation has a zero gradient: 0/0 reads as "no advantage".
      ratio = r / a if a > 0 else 0.0
      cond = bool(r > 0 and r >= a)
      strong = bool(r > 0 and r >= 2 * a)
    layer = None if not lead else (idx[0] if len(idx) == 1 else tuple(idx))
    out.append(LayerStat(
        path=path, layer=layer, shape=tuple(int(d) for d in shape[-2:]),
        kind="embedding" if s["tokens"] else "matrix", nr=r, st=a,
        st_preactivation=None if pre is None else float(pre[idx]),
        ratio=ratio, condition=cond, strong=strong))
  return out


def layerwise_report(model: nnx.Module, batch, loss_fn: Callable, *,
                     chunk_size: int | None = None, gram_dtype=None,
                     jit: bool = True,
                     flax_layers: bool = True) -> LayerwiseReport:
  """nr(G), st(A) and the condition nr ≥ st for every matrix of ``model``.

  Args:
    model: an ``nnx.Module`` whose matrices' modules sow their inputs (see the
      module docstring; all of :mod:`spectral_jax.models` do).
    batch: passed to ``loss_fn``.
    loss_fn: ``(model, batch) -> scalar`` loss.
    chunk_size: tokens per chunk of the Gram accumulation ``Σ a aᵀ``.
    gram_dtype: accumulation dtype (default float64 with x64, else float32).
    jit: compile the forward/backward pass and the Gram matrices into one
      program (the SVD/eigh of each matrix always run as small jitted
      programs of their own).
    flax_layers: make plain ``nnx.Linear`` / ``nnx.Embed`` sow their inputs.

  Returns:
    A :class:`LayerwiseReport`: one :class:`LayerStat` per matrix parameter,
    one per layer for stacked parameters (leading axes), in path order.
  """
  if chunk_size is not None and (not isinstance(chunk_size, int)
                                 or chunk_size < 1):
    raise ValueError(f"chunk_size must be a positive int or None, got "
                     f"{chunk_size!r}.")

  def stats_fn(m, b):
    loss, stats = layerwise_stats(m, b, loss_fn, chunk_size=chunk_size,
                                  gram_dtype=gram_dtype,
                                  flax_layers=flax_layers)
    return loss, {_name(p): s for p, s in stats.items()}

  loss, arrays = (nnx.jit(stats_fn) if jit else stats_fn)(model, batch)
  st_of = lambda g: None if g is None else _stable_rank_from_gram_jit(g)
  entries = []
  for path, p in _flat(nnx.state(model, nnx.Param)).items():
    s = arrays.get(_name(path))
    if s is None:
      continue
    tokens = s["st_tokens"] is not None
    s = {"nr": _nuclear_rank_jit(s["grad"]),
         "st": s["st_tokens"] if tokens else st_of(s["gram"]),
         "st_preactivation": st_of(s["gram_preactivation"]), "tokens": tokens}
    entries.extend(_entries(path, p.shape, s))
  return LayerwiseReport(entries=tuple(entries), loss=float(loss))


# --------------------------------------------------------------------------
# Optimizer-side monitor
# --------------------------------------------------------------------------
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
