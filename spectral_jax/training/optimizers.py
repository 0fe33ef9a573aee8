"""The optimizer of a training run, built by name from a small registry.

Every builder takes ``(config, mult, placement)`` (``mult``: the
learning-rate multiplier of
:func:`~spectral_jax.training.schedules.lr_multiplier`; ``placement``: the
``mesh`` / ``partition_specs`` keywords of the spectral arms, empty on one
device) and returns an ``optax.GradientTransformation``; :data:`OPTIMIZERS` lists the
names. Adding an optimizer is one builder and one entry of ``_BUILDERS``.

  * ``adamw``: AdamW, β = (0.9, 0.95), decoupled weight decay on matrices.
  * ``muon``: Muon on the hidden (block) matrices, AdamW on the embedding,
    the LM head and gains, as in modded-nanogpt: Nesterov momentum warmed up
    0.85 → 0.95.
  * ``specgd``: the spectral step ``‖G‖_* polar(G)`` on the hidden matrices,
    AdamW elsewhere.
  * ``normuon``: ``muon`` with NorMuon's neuron-wise normalisation after the
    orthogonalisation (:mod:`spectral_jax.neuron_norm`, arXiv:2510.05491).

References:
  Davis & Drusvyatskiy, arXiv:2512.04299, §1.2.1 (Muon on interior matrices,
  Adam on embeddings and head). Jordan et al., modded-nanogpt.
  Loshchilov & Hutter, AdamW, arXiv:1711.05101.
"""

from __future__ import annotations

from typing import Any, Callable, TYPE_CHECKING

import jax
import optax

from spectral_jax import alias
from spectral_jax import labels
from spectral_jax import neuron_norm
from spectral_jax.training import schedules
from spectral_jax.training import sharding

if TYPE_CHECKING:
  from spectral_jax.training.config import TrainConfig

__all__ = [
    "OPTIMIZERS",
    "hidden_dimension_numbers",
    "hidden_matrix_labels",
    "make_optimizer",
]

Builder = Callable[["TrainConfig", Callable, Any], optax.GradientTransformation]

# Parameters whose path contains one of these are never "hidden" matrices:
# they meet one-hot or vocabulary-sized activations (paper §1.2.1: Muon on
# interior matrices, Adam on embeddings and head).
_NOT_HIDDEN = ("wte", "wpe", "embed", "lm_head", "head", "unembed")


def hidden_dimension_numbers(params) -> Any:
  """Muon/SpecGD specs: the last two axes of every block matrix, else ``None``.

  Leading axes (the stacked layer axis) are batch: each layer is its own
  matrix. Embedding and head (``_NOT_HIDDEN``) and 1-D gains get ``None``.
  """
  return labels.stacked_dimension_numbers(params, exclude=_NOT_HIDDEN)


def hidden_matrix_labels(params) -> Any:
  """``"hidden"`` for block matrices, ``"other"`` for the rest."""
  return labels.matrix_labels(hidden_dimension_numbers, "hidden",
                              "other")[0](params)


def _adamw(lr, weight_decay):
  # Decay matrices only (nanoGPT): gains and biases are not decayed.
  return optax.adamw(lr, b1=0.9, b2=0.95, eps=1e-8, weight_decay=weight_decay,
                     mask=lambda p: jax.tree.map(lambda x: x.ndim >= 2, p))


# Specs as a function of the (partition-masked) tree the hidden branch sees:
# every leaf there is a (stack of) matrices in its last two axes.
_last_two_axes = lambda p: jax.tree.map(
    lambda x: labels.MuonDimensionNumbers(x.ndim - 2, x.ndim - 1), p)


def _hidden_and_adamw(config, mult, hidden) -> optax.GradientTransformation:
  # AdamW (no decay) on the embedding, head and gains, as modded-nanogpt.
  other = _adamw(lambda t: config.embed_lr * mult(t), 0.0)
  return labels.matrix_partition(hidden_dimension_numbers, hidden, other,
                                 matrix_label="hidden", other_label="other")


def _build_adamw(config, mult, placement):
  del placement  # Elementwise: XLA keeps it on each parameter's shards.
  return _adamw(lambda t: config.adamw_lr * mult(t), config.weight_decay)


def _muon_like(optimizer, config, mult, placement
               ) -> optax.GradientTransformation:
  # inject_hyperparams turns the momentum into a per-step schedule without
  # touching the Muon implementation (modded-nanogpt's momentum warmup).
  hidden = optax.inject_hyperparams(optimizer, static_args=(
      "muon_weight_dimension_numbers", "ns_steps", "nesterov", "mesh",
      "partition_specs"))(
          learning_rate=lambda t: config.muon_lr * mult(t),
          beta=schedules.momentum_schedule(config), ns_steps=config.ns_steps,
          muon_weight_dimension_numbers=_last_two_axes, **placement)
  return _hidden_and_adamw(config, mult, hidden)


def _build_muon(config, mult, placement):
  return _muon_like(alias.muon, config, mult, placement)


def _build_normuon(config, mult, placement):
  """The ``muon`` arm's learning rate and momentum schedule, NorMuon's
  β2 = 0.95 (arXiv:2510.05491)."""
  return _muon_like(neuron_norm.normuon, config, mult, placement)


def _build_specgd(config, mult, placement):
  hidden = alias.specgd(lambda t: config.specgd_lr * mult(t),
                        weight_dimension_numbers=_last_two_axes, **placement)
  return _hidden_and_adamw(config, mult, hidden)


_BUILDERS: dict[str, Builder] = {
    "adamw": _build_adamw,
    "muon": _build_muon,
    "specgd": _build_specgd,
    "normuon": _build_normuon,
}
OPTIMIZERS = tuple(_BUILDERS)


def make_optimizer(config: TrainConfig, params, mesh=None
                   ) -> optax.GradientTransformation:
  """The optimizer named by ``config.optimizer`` for this parameter tree.

  ``mesh``: the mesh the parameters live on (``None``: one device), laid
  out by :func:`~spectral_jax.training.sharding.param_shardings`; the
  spectral arms then orthogonalise each matrix whole on one device, spread
  over the mesh, moved by explicit collectives (``mesh=`` and
  ``partition_specs=`` of :func:`spectral_jax.muon`).

  ``adamw``: AdamW on everything. ``muon`` / ``specgd``:
  :func:`spectral_jax.labels.matrix_partition` of the spectral method on the
  hidden matrices (labelled ``"hidden"``) and AdamW (β = (0.9, 0.95), no
  decay) on the embedding, head and gains (``"other"``), as modded-nanogpt
  splits them. Every learning rate follows :func:`schedules.lr_multiplier`.
  """
  if config.optimizer not in _BUILDERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got "
                     f"{config.optimizer!r}.")
  # The labels are read from the tree the optimizer is given; the params
  # give the layout.
  placement = {} if mesh is None else {
      "mesh": mesh,
      "partition_specs": sharding.param_shardings(params, mesh)}
  return _BUILDERS[config.optimizer](config, schedules.lr_multiplier(config),
                                     placement)
