"""Several processes, one program: multi-host set-up on JAX's own engine.

Every process runs the same command; ``initialize`` connects them through
``jax.distributed.initialize`` before anything else touches JAX. After it,
``jax.devices()`` lists every process's devices, one ``Mesh`` spans them, and
a jitted step runs as one SPMD program: XLA moves the data (on CPU through
gloo, on GPU through NCCL, on TPU through ICI/DCN). Batches here are a pure
function of (seed, step), so every process builds the same global batch and
``jax.device_put`` keeps each device's slice; only process 0 writes metrics
and figures; orbax writes checkpoints from all processes (each its shards).

Where the settings come from, first match wins:

  ===============  ===========================  ==========================
  setting          flag (``train-gpt``)          environment
  ===============  ===========================  ==========================
  coordinator      ``--coordinator HOST:PORT``   ``JAX_COORDINATOR_ADDRESS``
  process count    ``--num-processes N``         ``JAX_NUM_PROCESSES``
  this process     ``--process-id I``            ``JAX_PROCESS_ID``
  ===============  ===========================  ==========================

With none of them set the run is single-process, as before.
"""

from __future__ import annotations

import dataclasses
import os

__all__ = ["Cluster", "barrier", "cluster_from", "initialize", "is_primary",
           "to_host"]

_ENV = {"coordinator": "JAX_COORDINATOR_ADDRESS",
        "num_processes": "JAX_NUM_PROCESSES",
        "process_id": "JAX_PROCESS_ID"}


@dataclasses.dataclass(frozen=True)
class Cluster:
  """Where this process sits: ``num_processes == 1`` means no set-up."""
  coordinator: str | None = None
  num_processes: int = 1
  process_id: int = 0


def _int(name: str, text, low: int, high: int | None = None) -> int:
  try:
    value = int(text)
  except (TypeError, ValueError):
    value = None
  if value is None or value < low or (high is not None and value > high):
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"{name} must be a whole number {allowed}, got {text!r}")
  return value


def cluster_from(coordinator: str | None = None,
                 num_processes: int | str | None = None,
                 process_id: int | str | None = None,
                 environ=None) -> Cluster:
  """Checks the settings (flags first, then environment) before any work."""
  environ = os.environ if environ is None else environ
  coordinator = coordinator or environ.get(_ENV["coordinator"]) or None
  if num_processes is None:
    num_processes = environ.get(_ENV["num_processes"])
  if process_id is None:
    process_id = environ.get(_ENV["process_id"])
  if coordinator is None and num_processes is None and process_id is None:
    return Cluster()
  n = _int("--num-processes / JAX_NUM_PROCESSES", num_processes, 1)
  if n == 1 and coordinator is None:
    return Cluster()
  i = _int("--process-id / JAX_PROCESS_ID", process_id, 0, n - 1)
  host, sep, port = (coordinator or "").rpartition(":")
  if not sep or not host or not port.isdigit():
    raise ValueError(
        "--coordinator / JAX_COORDINATOR_ADDRESS must be HOST:PORT (the "
        f"address of process 0, the same in every process), got "
        f"{coordinator!r}")
  return Cluster(coordinator, n, i)


def initialize(cluster: Cluster) -> None:
  """Connects this process to the others; a no-op for one process.

  Call before the first JAX computation. On CPU the cross-process
  collectives go through gloo (XLA's CPU default has none across processes).
  """
  if cluster.num_processes == 1:
    return
  import jax  # pylint: disable=g-import-not-at-top
  if jax.distributed.is_initialized():
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(cluster.coordinator,
                             num_processes=cluster.num_processes,
                             process_id=cluster.process_id)


def is_primary() -> bool:
  """True in the process that writes metrics, figures and summaries."""
  import jax  # pylint: disable=g-import-not-at-top
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches ``name`` (no-op for one process)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def to_host(tree):
  """``tree`` as NumPy arrays, whole, in every process (a collective when
  its arrays span several processes: every process must call it)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return multihost_utils.process_allgather(tree, tiled=True)
