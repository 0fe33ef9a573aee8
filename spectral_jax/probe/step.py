"""The probe's entry points: :func:`probe_step` on a loss and a parameter
tree, :func:`probe_model` on an NNX model; the argument checks."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from spectral_jax import labels
from spectral_jax.probe.leaf import Leaf
from spectral_jax.probe.leaf import Options
from spectral_jax.probe.leaf import probe_leaf
from spectral_jax.probe.report import REGIMES
from spectral_jax.probe.report import ProbeReport

PyTree = Any

# Multiples of the reference step tried by the line search (the reference is
# the quadratic model's best step where the curvature is positive, else the
# paper's step); the paper's step itself is always tried too.
DEFAULT_LINE_SEARCH_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)


def path_key(path) -> str:
  """The name the probe keys a parameter by: a string as given, else
  :func:`spectral_jax.labels.path_name` of the path, an ``nnx.Variable``'s
  trailing ``.value`` key dropped (so ``nnx.State`` leaves read like the
  paths :func:`spectral_jax.diagnostics.capture_activations` returns)."""
  if isinstance(path, str):
    return path
  keys = tuple(path)
  if keys and isinstance(keys[-1], jax.tree_util.GetAttrKey) and \
      keys[-1].name == "value":
    keys = keys[:-1]
  return labels.path_name(keys)


def _wanted(names, acts, paths) -> list[str]:
  """The probed names, each a parameter with an activation."""
  wanted = list(acts) if paths is None else [path_key(p) for p in paths]
  if not wanted:
    raise ValueError("activations is empty: nothing to probe (pass at least "
                     "one path → activation).")
  for name in wanted:
    if name not in names:
      raise ValueError(f"path {name!r} is not a parameter; parameters: "
                       f"{names}.")
    if name not in acts:
      raise ValueError(f"path {name!r} has no activation; activations given "
                       f"for: {sorted(acts)}.")
  return wanted


def _scales(curvature_scale, wanted) -> dict[str, float]:
  if isinstance(curvature_scale, Mapping):
    scales = {path_key(k): float(v) for k, v in curvature_scale.items()}
  else:
    scales = {name: float(curvature_scale) for name in wanted}
  for name, c in scales.items():
    if not c > 0:
      raise ValueError(f"curvature_scale must be > 0, got {c} for {name!r}.")
  return scales


def _check_options(line_search, factors, gauss_newton) -> None:
  if line_search and (not factors or min(factors) <= 0):
    raise ValueError(f"line_search_factors must be positive, got {factors}.")
  if gauss_newton is not None and (
      len(gauss_newton) != 2 or not all(map(callable, gauss_newton))):
    raise ValueError("gauss_newton must be (outputs_fn, output_loss), got "
                     f"{gauss_newton!r}.")


def _check_shapes(name, w, a) -> bool:
  """Raises unless ``a`` fits the matrix (stack) ``w``; True if stacked."""
  if w.ndim < 2:
    raise ValueError(f"parameter {name!r} has shape {w.shape}; the probe "
                     "needs a matrix (or stacked matrices).")
  layers = w.shape[:-2]
  if a.ndim < len(layers) + 2 or a.shape[:len(layers)] != layers:
    raise ValueError(
        f"activation for {name!r} has shape {a.shape}; for a parameter of "
        f"shape {w.shape} it must be (*{layers}, *samples, features).")
  if a.shape[-1] not in w.shape[-2:]:
    raise ValueError(
        f"activation for {name!r} has {a.shape[-1]} features (last axis) "
        f"but the matrix is {w.shape[-2:]}: pass samples × features "
        "(the paper's A (k×n) transposed).")
  return bool(layers)


def probe_step(
    loss_fn: Callable[[PyTree], jax.Array],
    params: PyTree,
    activations: Mapping[Any, jax.Array],
    *,
    paths: Sequence[Any] | None = None,
    curvature_scale: float | Mapping[Any, float] = 1.0,
    line_search: bool = False,
    line_search_factors: Sequence[float] = DEFAULT_LINE_SEARCH_FACTORS,
    gauss_newton: tuple[Callable, Callable] | None = None,
    polar_method: str = "svd",
    layer_batch_size: int | None = None,
) -> ProbeReport:
  r"""Probes GD's and SpecGD's one-step decrease on every matrix, per layer.

  For each probed matrix ``W`` (each layer of a stacked leaf), all other
  parameters fixed, with ``G = ∇_W L``, ``P = polar(G)``,
  ``L^F = c‖A‖_op²/n`` and ``L^op = c‖A‖_F²/n``:

  .. math::
    \text{guaranteed: } \frac{\|G\|_F^2}{2L^F},\ \frac{\|G\|_*^2}{2L^{op}};
    \quad \text{paper: } L(W) - L(W - G/L^F),\
    L(W) - L(W - \tfrac{\|G\|_*}{L^{op}} P);
    \quad \text{best: } \frac{\langle G, D\rangle^2}{2\langle D, H D\rangle}
    \ (D = G, P).

  For ``L = (1/2n)‖WA − Y‖²`` and ``c = 1`` the model is exact, so every
  realized decrease is at least its guaranteed one.

  Cost per probed matrix of a leaf with ``ℓ`` layers: one gradient of the whole
  loss (shared by all leaves), ``ℓ`` SVDs of ``G`` (nr and the polar factor),
  ``ℓ`` eigensolves of the ``fan_in × fan_in`` activation Gram matrix,
  ``2ℓ`` loss evaluations (paper steps), ``2ℓ`` Hessian-vector products (one per
  direction; forward-over-reverse, ≈ 3–5 loss evaluations each; with
  ``gauss_newton`` one JVP of the outputs plus one HVP of the output loss) and,
  with ``line_search``, ``2ℓ·(len(line_search_factors) + 1)`` loss evaluations.
  The ``2ℓ`` evaluations of each kind run as one ``vmap`` (or ``lax.map`` in
  chunks of ``layer_batch_size``). Jit-compatible: call it inside ``jax.jit``
  with ``loss_fn`` and the options closed over.

  Args:
    loss_fn: ``params -> scalar`` (the batch closed over).
    params: pytree of parameters (a dict, an ``nnx.State``, ...).
    activations: mapping path → incoming activation of that parameter,
      *samples × features* (``(n, fan_in)`` for a Flax kernel ``(fan_in,
      fan_out)``; ``A.T`` for the paper's ``W (m×k)``, ``A (k×n)``); for a
      stacked leaf ``(*layers, *samples, features)``. Paths are tuples of
      keys or JAX key paths (as :mod:`spectral_jax.diagnostics` returns
      them), named by :func:`spectral_jax.labels.path_name`
      (``'layers/0/kernel'``; an ``nnx.Variable``'s trailing ``value`` key
      dropped), or such names as strings.
    paths: the parameters to probe; default every key of ``activations``.
    curvature_scale: ``c`` in ``L^F``, ``L^op`` (> 0): one float, or a mapping
      path → float (missing paths get 1.0). ``c = 1`` is exact for
      ``(1/2n)‖WA − Y‖²``.
    line_search: also measure the ``"line_search"`` regime.
    line_search_factors: multiples of the reference step (the quadratic best
      step, or the paper's step where the curvature is not positive).
    gauss_newton: ``(outputs_fn, output_loss)`` with ``loss_fn(p) ==
      output_loss(outputs_fn(p))`` to use the Gauss–Newton curvature
      ``⟨JD, ∇²ℓ JD⟩`` instead of the Hessian in the ``"best"`` regime.
    polar_method: passed to :func:`spectral_jax.linalg.polar` (default exact
      ``"svd"``; ``"newton_schulz"`` probes Muon's approximate direction).
    layer_batch_size: evaluate the batched losses/HVPs with ``lax.map`` in
      chunks of this size instead of one ``vmap`` (less memory).

  Returns:
    A :class:`ProbeReport`.

  Raises:
    ValueError: a path not in ``params`` or without an activation, an
      activation whose feature axis matches neither matrix axis, a non-matrix
      leaf, a non-positive ``curvature_scale`` or ``line_search_factors``.
  """
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  names = [path_key(p) for p, _ in flat]
  leaves = [jnp.asarray(x) for _, x in flat]
  index = {name: i for i, name in enumerate(names)}
  acts = {path_key(k): jnp.asarray(v) for k, v in activations.items()}
  wanted = _wanted(names, acts, paths)
  scales = _scales(curvature_scale, wanted)
  factors = tuple(float(f) for f in line_search_factors)
  _check_options(line_search, factors, gauss_newton)
  stacked = tuple(name for name in wanted if _check_shapes(
      name, leaves[index[name]], acts[name]))
  opts = Options(loss_fn=loss_fn, gauss_newton=gauss_newton,
                 line_search=line_search, factors=factors,
                 polar_method=polar_method, batch_size=layer_batch_size)

  def impl(leaves_, acts_):
    base, grads = jax.value_and_grad(
        lambda ls: loss_fn(jax.tree_util.tree_unflatten(treedef, ls)))(leaves_)

    def params_with(i):
      return lambda w: jax.tree_util.tree_unflatten(
          treedef, leaves_[:i] + [w] + leaves_[i + 1:])

    return {name: probe_leaf(Leaf(
        value=leaves_[index[name]], params_with=params_with(index[name]),
        grad=grads[index[name]], acts=acts_[name],
        scale=scales.get(name, 1.0), base=base), opts) for name in wanted}

  # One compiled program per call: far cheaper than dispatching the vmapped
  # losses and HVPs op by op; inside a caller's jit this is simply inlined.
  entries = jax.jit(impl)(leaves, {name: acts[name] for name in wanted})
  return ProbeReport(entries=entries, stacked=stacked,
                     regimes=REGIMES if line_search else REGIMES[:3],
                     curvature="hessian" if gauss_newton is None
                     else "gauss_newton")


def probe_model(model, batch, loss_fn: Callable, *, inputs=None,
                gauss_newton_loss: Callable | None = None,
                **kwargs) -> ProbeReport:
  """:func:`probe_step` on an NNX model, activations captured from the model.

  The incoming activations come from
  :func:`spectral_jax.diagnostics.capture_activations` (every matrix whose
  module sows its input; token tables get their one-hot indicator, the
  Table 1 pairing of the paper).

  Args:
    model: an ``nnx.Module`` following the capture convention of
      :mod:`spectral_jax.models.layers`. Not modified.
    batch: passed to ``loss_fn``.
    loss_fn: ``(model, batch) -> scalar``.
    inputs: what the model is called on to capture activations; default
      ``batch[0]`` for a tuple/list batch, ``batch["x"]`` / ``batch["inputs"]``
      for a dict, else ``batch`` itself.
    gauss_newton_loss: ``(outputs, batch) -> scalar`` with ``loss_fn(model,
      batch) == gauss_newton_loss(model(inputs), batch)``; if given, the
      ``"best"`` regime uses the Gauss–Newton curvature (never negative for a
      convex output loss, where the Hessian of e.g. a transformer at init
      often is).
    **kwargs: forwarded to :func:`probe_step` (``paths``,
      ``curvature_scale``, ``line_search``, ...).

  Returns:
    A :class:`ProbeReport` keyed by parameter paths such as
    ``'layers/0/kernel'``.
  """
  from flax import nnx  # Local: the functional probe needs no Flax.
  from spectral_jax import diagnostics

  if inputs is None:
    if isinstance(batch, (tuple, list)):
      inputs = batch[0]
    elif isinstance(batch, Mapping):
      inputs = batch.get("x", batch.get("inputs"))
      if inputs is None:
        raise ValueError("batch is a mapping without 'x' or 'inputs'; pass "
                         "inputs= explicitly.")
    else:
      inputs = batch
  acts = diagnostics.capture_activations(model, inputs)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss_of_params(p):
    return loss_fn(nnx.merge(graphdef, p, rest), batch)

  if gauss_newton_loss is not None:
    kwargs["gauss_newton"] = (
        lambda p: nnx.merge(graphdef, p, rest)(inputs),
        lambda out: gauss_newton_loss(out, batch))
  return probe_step(loss_of_params, params, acts, **kwargs)
