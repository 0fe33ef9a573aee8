r"""Layer by layer: would a spectral update beat a Euclidean one here?

For a weight matrix ``W_ℓ`` with gradient ``G_ℓ`` acting on the incoming
activation ``A_{ℓ−1}`` (rows = samples or tokens), the one-step guarantee of
the spectral step ``W − (‖G‖_*/L^op) polar(G)`` is at least that of the
Euclidean step ``W − G/L^F`` exactly when

.. math::
  nr(G_ℓ) = \frac{\|G_ℓ\|_*^2}{\|G_ℓ\|_F^2} \;\ge\;
  st(A_{ℓ-1}) = \frac{\|A_{ℓ-1}\|_F^2}{\|A_{ℓ-1}\|_{op}^2},

and the realized loss is guaranteed lower once ``nr ≥ 2 st`` (arXiv:2512.04299,
(4.18), §1.2). For a token embedding ``A`` is the one-hot token matrix, and
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

Modules: :mod:`~spectral_jax.diagnostics.capture` (running a model under
``nnx.capture``, pairing matrices with what they multiply, sowing each array
once), :mod:`~spectral_jax.diagnostics.stats` (Gram matrices, token stable
rank, nuclear ranks of gradients: what training's tracking records),
:mod:`~spectral_jax.diagnostics.report` (the layerwise report) and
:mod:`~spectral_jax.diagnostics.monitor` (the optimizer-side monitor).

References:
  Davis & Drusvyatskiy, *When do spectral gradient updates help in deep
  learning?*, arXiv:2512.04299, §1.2, §2.3 (2.15), §4 (4.18), Table 1.
"""

from spectral_jax.diagnostics.capture import capture_activations
from spectral_jax.diagnostics.monitor import NuclearRankMonitorState
from spectral_jax.diagnostics.monitor import monitor_nuclear_rank
from spectral_jax.diagnostics.report import LayerStat
from spectral_jax.diagnostics.report import LayerwiseReport
from spectral_jax.diagnostics.report import layerwise_report
from spectral_jax.diagnostics.stats import gradient_nuclear_ranks
from spectral_jax.diagnostics.stats import layerwise_stats
from spectral_jax.diagnostics.stats import sown_statistics
from spectral_jax.diagnostics.stats import token_stable_rank

__all__ = [
    "LayerStat",
    "LayerwiseReport",
    "NuclearRankMonitorState",
    "capture_activations",
    "gradient_nuclear_ranks",
    "layerwise_report",
    "layerwise_stats",
    "monitor_nuclear_rank",
    "sown_statistics",
    "token_stable_rank",
]
