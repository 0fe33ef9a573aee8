"""GPT training: data sources, the loop with spectral tracking, checkpoints, sharding.

Modules: ``config`` (TrainConfig, presets), ``optimizers`` (by name),
``schedules``, ``steps`` (model, loss, step), ``tracking`` (on
:mod:`spectral_jax.diagnostics`), ``metrics``, ``summary``, ``train`` (the
loop), ``data``, ``checkpoint``, ``sharding``.

Library code, usable from a notebook::

  from spectral_jax.training import preset, train_gpt
  summary = train_gpt(preset("cpu-small", steps=100), "/tmp/run")

(``train_gpt`` is ``spectral_jax.training.train.train``; the package does not
re-export it as ``train`` so that the name keeps meaning the module.)
"""

from spectral_jax.training.checkpoint import CheckpointError
from spectral_jax.training.checkpoint import Checkpointer
from spectral_jax.training.checkpoint import RunLock
from spectral_jax.training.data import TokenData
from spectral_jax.training.data import load_data
from spectral_jax.training.data import read_shard
from spectral_jax.training.data import stdlib_corpus
from spectral_jax.training.data import text_file
from spectral_jax.training.data import token_shards
from spectral_jax.training.data import write_shard
from spectral_jax.training.sharding import make_mesh
from spectral_jax.training.sharding import param_shardings
from spectral_jax.training.config import PRESETS
from spectral_jax.training.config import TrainConfig
from spectral_jax.training.config import preset
from spectral_jax.training.metrics import read_metrics
from spectral_jax.training.optimizers import OPTIMIZERS
from spectral_jax.training.optimizers import make_optimizer
from spectral_jax.training.train import train as train_gpt

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "OPTIMIZERS",
    "PRESETS",
    "RunLock",
    "TokenData",
    "TrainConfig",
    "load_data",
    "make_mesh",
    "make_optimizer",
    "param_shardings",
    "preset",
    "read_metrics",
    "read_shard",
    "stdlib_corpus",
    "text_file",
    "token_shards",
    "train_gpt",
    "write_shard",
]
