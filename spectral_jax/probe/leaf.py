"""The probe's measurements on one parameter, every other one held fixed.

A leaf of shape ``(*layers, rows, cols)`` is read as ``num`` matrices. The two
directions of every layer (``G`` and ``polar(G)``) form one batch of
``2·num`` rows — rows ``[0, num)`` Euclidean, ``[num, 2·num)`` spectral — and
each kind of evaluation (losses at the paper's steps, curvatures, the line
search) runs over that batch as one ``vmap`` (or ``lax.map`` in chunks).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from spectral_jax import curvature
from spectral_jax import linalg
from spectral_jax.linalg.base import exact_dtype
from spectral_jax.linalg.base import frobenius
from spectral_jax.linalg.base import mT
from spectral_jax.linalg.base import safe_div
from spectral_jax.probe.report import ProbeStats

PyTree = Any


class Options(NamedTuple):
  """How every leaf is probed (static: closed over, never traced)."""
  loss_fn: Callable[[PyTree], jax.Array]    # params -> scalar loss.
  gauss_newton: tuple[Callable, Callable] | None  # (outputs_fn, output_loss).
  line_search: bool
  factors: tuple[float, ...]                # line search: × reference step.
  polar_method: str                         # for linalg.polar.
  batch_size: int | None                    # lax.map chunk; None: one vmap.


class Leaf(NamedTuple):
  """One probed parameter and what its measurements start from."""
  value: jax.Array                          # (*layers, rows, cols).
  params_with: Callable[[jax.Array], PyTree]  # w -> params, this leaf = w.
  grad: jax.Array                           # ∇_W L, shape of value.
  acts: jax.Array                           # (*layers, *samples, features).
  scale: float                              # c of L^F = c‖A‖_op²/n.
  base: jax.Array                           # L at params, shape ().


class Directions(NamedTuple):
  """The batch of ``2·num`` directions: GD's rows, then the spectral ones."""
  layer: jax.Array    # (2·num,) int: the layer each row moves.
  d: jax.Array        # (2·num, rows, cols): G, then P = polar(G).
  slope: jax.Array    # (2·num,): ⟨G, D⟩.
  t_paper: jax.Array  # (2·num,): 1/L^F, then ‖G‖_*/L^op.


def _map(fn, xs, batch_size):
  """``vmap(fn)(*xs)``, or ``lax.map`` in chunks when memory matters."""
  if batch_size is None:
    return jax.vmap(fn)(*xs)
  return jax.lax.map(lambda a: fn(*a), xs, batch_size=batch_size)


def _add_on_layer(x, layer, delta):
  """``x`` plus ``delta`` on layer ``layer`` of its stack, the rest as is."""
  *layers, rows, cols = x.shape
  flat = x.reshape(math.prod(layers), rows, cols)
  return flat.at[layer].add(delta.astype(x.dtype)).reshape(x.shape)


def activation_terms(acts, num, c, dtype):
  """``st(A)``, ``L^F = c‖A‖_op²/n`` and ``L^op = c‖A‖_F²/n`` per layer.

  All three from the small features × features Gram matrix ``AᵀA`` and one
  eigensolve: ``st = tr/λ_max`` by :func:`linalg.stable_rank_from_gram`, and
  ``‖A‖_op² = ‖A‖_F²/st`` (both 0 for A = 0).
  """
  a = acts.reshape(num, -1, acts.shape[-1])
  n = a.shape[-2]
  gram = linalg.gram(mT(a))
  fro_sq = jnp.trace(gram, axis1=-2, axis2=-1)
  st = linalg.stable_rank_from_gram(gram)
  op_sq = safe_div(fro_sq, st)
  return (st.astype(dtype), (c * op_sq / n).astype(dtype),
          (c * fro_sq / n).astype(dtype))


def gradient_terms(g, polar_method):
  """``nr(G)``, ``‖G‖_F²``, ``‖G‖_* = √nr·‖G‖_F`` and ``polar(G)`` per layer
  (one SVD for ``nr``, one polar factor)."""
  nr = linalg.nuclear_rank(g)
  fro = frobenius(g.astype(exact_dtype(g.dtype)))[..., 0, 0]
  p = linalg.polar(g, method=polar_method)
  return nr, fro * fro, jnp.sqrt(nr) * fro, p


def directions(g, p, fro_sq, nuc, lip_f, lip_op) -> Directions:
  """GD's and SpecGD's directions with their slopes and paper steps."""
  num = g.shape[0]
  return Directions(
      layer=jnp.concatenate([jnp.arange(num), jnp.arange(num)]),
      d=jnp.concatenate([g, p]),
      slope=jnp.concatenate([fro_sq, jnp.sum(g * p, axis=(-2, -1))]),
      t_paper=jnp.concatenate([safe_div(jnp.ones_like(lip_f), lip_f),
                               safe_div(nuc, lip_op)]))


def losses_along(leaf: Leaf, opts: Options, layer, d, t):
  """``L(W − t·D)`` per row, the step on layer ``layer`` only."""
  def one(l, d_, t_):
    w = _add_on_layer(leaf.value, l, -t_ * d_)
    return opts.loss_fn(leaf.params_with(w))
  return _map(one, (layer, d, t), opts.batch_size)


def curvatures(leaf: Leaf, opts: Options, dirs: Directions):
  """``⟨D, H D⟩`` per row, ``H`` the block Hessian of the layer (by
  :func:`spectral_jax.curvature.hvp`) or its Gauss–Newton part
  ``⟨JD, ∇²ℓ JD⟩``."""
  if opts.gauss_newton is None:
    loss = lambda w: opts.loss_fn(leaf.params_with(w))

    def curv(layer, d):
      v = _add_on_layer(jnp.zeros_like(leaf.value), layer, d)
      return jnp.real(optax.tree.vdot(v, curvature.hvp(loss, leaf.value, v)))
  else:
    outputs_fn, output_loss = opts.gauss_newton
    outputs = lambda w: outputs_fn(leaf.params_with(w))
    out0 = outputs(leaf.value)

    def curv(layer, d):
      v = _add_on_layer(jnp.zeros_like(leaf.value), layer, d)
      ju = jax.jvp(outputs, (leaf.value,), (v,))[1]
      return jnp.real(optax.tree.vdot(ju,
                                      curvature.hvp(output_loss, out0, ju)))
  return _map(curv, (dirs.layer, dirs.d), opts.batch_size)


def line_search(leaf: Leaf, opts: Options, dirs: Directions, dhd):
  """The largest realized decrease over ``factors`` × the reference step
  (the quadratic model's best where ``⟨D, H D⟩ > 0``, else the paper's) and
  the paper's step itself."""
  t_ref = jnp.where(dhd > 0, safe_div(dirs.slope, dhd), dirs.t_paper)
  steps = jnp.concatenate(
      [t_ref[:, None] * jnp.asarray(opts.factors, t_ref.dtype)[None],
       dirs.t_paper[:, None]], axis=1)                      # (2·num, grid)
  grid = steps.shape[1]
  losses = losses_along(leaf, opts, jnp.repeat(dirs.layer, grid),
                        jnp.repeat(dirs.d, grid, axis=0), steps.reshape(-1))
  return leaf.base - jnp.min(losses.reshape(-1, grid), axis=1)


def probe_leaf(leaf: Leaf, opts: Options) -> ProbeStats:
  """Every :class:`ProbeStats` field of one leaf, per layer."""
  dtype = leaf.value.dtype
  *layers, rows, cols = leaf.value.shape
  num = math.prod(layers)
  st, lip_f, lip_op = activation_terms(leaf.acts, num, leaf.scale, dtype)
  g = leaf.grad.reshape(num, rows, cols)
  nr, g_fro_sq, nuc, p = gradient_terms(g, opts.polar_method)
  dirs = directions(g, p, g_fro_sq, nuc, lip_f, lip_op)
  paper = leaf.base - losses_along(leaf, opts, dirs.layer, dirs.d,
                                   dirs.t_paper)
  dhd = curvatures(leaf, opts, dirs)
  # The best step along D exists only where the curvature along D is > 0.
  best = jnp.where(dhd > 0, safe_div(dirs.slope**2, 2 * dhd), jnp.nan)
  line = (line_search(leaf, opts, dirs, dhd) if opts.line_search
          else jnp.full((2 * num,), jnp.nan, dtype))

  def split(x):
    return x[:num].astype(dtype), x[num:].astype(dtype)

  (paper_gd, paper_spec), (curv_gd, curv_spec) = split(paper), split(dhd)
  (best_gd, best_spec), (line_gd, line_spec) = split(best), split(line)
  return ProbeStats(
      nr=nr.astype(dtype), st=st, grad_fro_sq=g_fro_sq.astype(dtype),
      grad_nuclear=nuc.astype(dtype), lipschitz_f=lip_f, lipschitz_op=lip_op,
      guaranteed_gd=safe_div(g_fro_sq, 2 * lip_f).astype(dtype),
      guaranteed_spec=safe_div(nuc**2, 2 * lip_op).astype(dtype),
      paper_gd=paper_gd, paper_spec=paper_spec,
      curvature_gd=curv_gd, curvature_spec=curv_spec,
      best_gd=best_gd, best_spec=best_spec,
      line_gd=line_gd, line_spec=line_spec)
