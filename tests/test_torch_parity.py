"""sj.muon against independent NumPy float64 implementations of the PyTorch
Muons: torch.optim.Muon (PyTorch 2.9) and KellerJordan's Muon.

The rules, as those implementations write them (per out × in weight W):
  buf ← μ·buf + (1 − μ)·g                      (buf.lerp_(g, 1 − μ))
  u   ← (1 − μ)·g + μ·buf  if nesterov else buf  (g.lerp_(buf, μ))
  O   ← Newton–Schulz(u): X = u (transposed if tall) / (‖u‖_F + 1e-7), five
        steps X ← aX + (bA + cA²)X, A = XXᵀ, (a, b, c) = (3.4445, −4.775,
        2.0315)
  W   ← W·(1 − lr·wd) − lr·adjust(A, B)·O, A × B = W's shape, with adjust
        'original' √max(1, A/B), 'match_rms_adamw' 0.2·√max(A, B),
        'spectral_unclamped' √(A/B)  (KellerJordan's: 'original').
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import spectral_jax as sj
from references import torch_newton_schulz

_ADJUST = {
    "original": lambda a, b: np.sqrt(max(1.0, a / b)),
    "match_rms_adamw": lambda a, b: 0.2 * np.sqrt(max(a, b)),
    "spectral_unclamped": lambda a, b: np.sqrt(a / b),
}


def _torch_muon(ws, grads, lr, mu, wd, nesterov, adjust):
  """Ten steps of the rule above on float64 NumPy arrays."""
  ws = [w.copy() for w in ws]
  bufs = [np.zeros_like(w) for w in ws]
  for g_step in grads:
    for i, g in enumerate(g_step):
      bufs[i] = mu * bufs[i] + (1 - mu) * g
      u = (1 - mu) * g + mu * bufs[i] if nesterov else bufs[i]
      o = torch_newton_schulz(u)
      a, b = ws[i].shape
      ws[i] = ws[i] * (1 - lr * wd) - lr * _ADJUST[adjust](a, b) * o
  return ws


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-6),
                                        (np.float32, 1e-5)])
@pytest.mark.parametrize("adjust", sorted(_ADJUST))
@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_matches_torch_rule(rng, dtype, tol, adjust, nesterov):
  shapes = [(12, 20), (20, 12), (16, 16)]  # out × in: wide, tall, square
  ws = [rng.standard_normal(s) for s in shapes]
  grads = [[rng.standard_normal(s) for s in shapes] for _ in range(10)]
  lr, mu, wd = 0.02, 0.95, 0.1
  want = _torch_muon(ws, grads, lr, mu, wd, nesterov, adjust)
  tx = sj.muon(lr, beta=mu, eps=1e-7, weight_decay=wd, nesterov=nesterov,
               momentum_style="torch", adjust_lr=adjust,
               weight_layout="torch")
  params = {f"w{i}": jnp.asarray(w, dtype) for i, w in enumerate(ws)}
  state = tx.init(params)
  step = jax.jit(tx.update)
  for g_step in grads:
    g = {f"w{i}": jnp.asarray(x, dtype) for i, x in enumerate(g_step)}
    updates, state = step(g, state, params)
    params = optax.apply_updates(params, updates)
  for i, w in enumerate(want):
    got = np.asarray(params[f"w{i}"], np.float64)
    err = np.max(np.abs(got - w)) / np.max(np.abs(w))
    assert err <= tol, (i, err)


def test_torch_options_are_checked():
  with pytest.raises(ValueError, match="momentum_style='sgd'"):
    sj.muon(0.02, momentum_style="sgd")
  with pytest.raises(ValueError, match="adjust_lr='rms'"):
    sj.muon(0.02, adjust_lr="rms")
  with pytest.raises(ValueError, match="weight_layout='jax'"):
    sj.muon(0.02, weight_layout="jax")
  with pytest.raises(ValueError, match="adjust_lr.*consistent_rms"):
    sj.muon(0.02, adjust_lr="original", consistent_rms=0.2)
  with pytest.raises(ValueError, match="weight_layout='torch'"):
    sj.muon(0.02, weight_layout="torch",
            muon_weight_dimension_numbers={"w": sj.MuonDimensionNumbers()})
