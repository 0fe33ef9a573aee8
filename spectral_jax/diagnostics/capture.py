"""Capture: what each matrix of an NNX model multiplies, read from ``nnx.sow``.

The capture convention is described in :mod:`spectral_jax.diagnostics`. This
module runs a model under ``nnx.capture``, flattens what it sowed and pairs
each matrix parameter with its sown activations.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from spectral_jax import labels
from spectral_jax.models import layers

__all__ = [
    "Path",
    "capture_activations",
    "distinct_sows",
    "first_value",
    "flat_state",
    "is_token_ids",
    "join_sown",
    "matrix_owners",
    "pair_activations",
    "sowing_flax_layers",
]

Path = tuple[Any, ...]

_PATCH_DEPTH = [0]


@contextlib.contextmanager
def sowing_flax_layers(enabled: bool = True):
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


@contextlib.contextmanager
def distinct_sows(enabled: bool = True):
  """While active, a value already sown in this capture is not sown again.

  Several matrices often multiply one array (attention's W_Q, W_K, W_V read
  the same normalised input): each module sows that very array object, and
  the measurement would be repeated. Identity is exact and model-agnostic: a
  value counts as repeated only if it *is* an array sown before (inside
  ``nnx.scan`` / ``nnx.vmap`` bodies, the tracer of that trace), never by
  equal contents. The first sow (in call order) keeps its name.
  """
  if not enabled:
    yield
    return
  original = nnx.Module.sow
  seen: list[Any] = []  # The objects themselves, so no id is ever reused.

  def sow(self, variable_type, name, value, *args, **kwargs):
    if any(value is v for v in seen):
      return False
    seen.append(value)
    return original(self, variable_type, name, value, *args, **kwargs)

  nnx.Module.sow = sow
  try:
    yield
  finally:
    nnx.Module.sow = original


def flat_state(state) -> dict[Path, Any]:
  """``{path: value}`` of an NNX state (sown values: a tuple, one per call)."""
  return {tuple(p): v.get_value() for p, v in nnx.to_flat_state(state)}


def join_sown(values, lead: tuple[int, ...], features: int | None
              ) -> jax.Array:
  """Sown values (a tuple, one per call) → ``(*lead, rows[, features])``."""
  if not isinstance(values, (tuple, list)):
    values = (values,)
  tail = (-1,) if features is None else (-1, features)
  parts = [jnp.reshape(v, lead + tail) for v in values]
  return parts[0] if len(parts) == 1 else jnp.concatenate(parts, len(lead))


def first_value(values):
  """The first of sown values (one per call), or the value itself."""
  return values[0] if isinstance(values, (tuple, list)) else values


def is_token_ids(values) -> bool:
  """Whether sown values are integer token ids (a token table's input)."""
  return bool(jnp.issubdtype(jnp.asarray(first_value(values)).dtype, jnp.integer))


def matrix_owners(params: dict[Path, Any]) -> dict[Path, Any]:
  """``{module path: its first matrix parameter}`` (``ndim >= 2``)."""
  owners = {}
  for path, p in params.items():
    if jnp.ndim(p) >= 2:
      owners.setdefault(path[:-1], p)
  return owners


def _activation(path: Path, p, raw):
  """A matrix's sown input as ``(*layers, rows, fan_in)``, checked."""
  lead, fan_in = tuple(p.shape[:-2]), p.shape[-2]
  first = first_value(raw)
  if first.shape[-1] != fan_in or tuple(first.shape[:len(lead)]) != lead:
    raise ValueError(
        f"activation sown for {labels.path_name(path)} has shape "
        f"{first.shape}, but a parameter of shape {p.shape} needs (*{lead}, "
        f"..., {fan_in}): sow the input of y = x W with W of shape "
        "(fan_in, fan_out).")
  return join_sown(raw, lead, fan_in)


def pair_activations(params: dict[Path, Any], inter: dict[Path, Any]):
  """Matches matrix parameters with their sown activations.

  Returns ``{path: (param, inputs | None, preactivation | None, is_tokens)}``
  with activations as ``(*layers, rows, fan_in)`` (token ids:
  ``(*layers, rows)``).
  """
  out = {}
  for path, p in params.items():
    if jnp.ndim(p) < 2:
      continue
    lead = tuple(p.shape[:-2])
    raw = inter.get(path[:-1] + ("inputs",))
    pre = inter.get(path[:-1] + ("preactivation",))
    a, tokens = None, False
    if raw is not None:
      tokens = is_token_ids(raw)
      a = join_sown(raw, lead, None) if tokens else _activation(path, p, raw)
    if pre is not None:
      pre = join_sown(pre, lead, first_value(pre).shape[-1])
    out[path] = (p, a, pre, tokens)
  return out


def capture_activations(model: nnx.Module, *args, one_hot: bool = True,
                        flax_layers: bool = True, jit: bool = True,
                        **kwargs) -> dict[Path, jax.Array]:
  """Runs ``model(*args, **kwargs)`` and returns each matrix's incoming activation.

  Args:
    model: an ``nnx.Module`` following the capture convention of
      :mod:`spectral_jax.diagnostics`.
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

  with sowing_flax_layers(flax_layers):
    inter = (nnx.jit(run) if jit else run)(model, *args)
  pairs = pair_activations(flat_state(nnx.state(model, nnx.Param)),
                           flat_state(inter))
  out = {}
  for path, (p, a, _, tokens) in pairs.items():
    if a is None:
      continue
    if tokens and one_hot:
      a = jax.nn.one_hot(a, p.shape[-2], dtype=p.dtype)
    out[path] = a
  return out
