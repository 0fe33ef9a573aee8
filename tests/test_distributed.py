"""Multi-process set-up: settings checked before any work."""

import pytest

from spectral_jax.training import distributed


def test_no_settings_is_single_process():
  assert distributed.cluster_from(environ={}) == distributed.Cluster()
  assert distributed.cluster_from(num_processes=1, environ={}) == (
      distributed.Cluster())


def test_flags_win_over_environment():
  env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1", "JAX_NUM_PROCESSES": "4",
         "JAX_PROCESS_ID": "3"}
  assert distributed.cluster_from(environ=env) == distributed.Cluster(
      "10.0.0.1:1", 4, 3)
  assert distributed.cluster_from("127.0.0.1:9", 2, 1, environ=env) == (
      distributed.Cluster("127.0.0.1:9", 2, 1))


@pytest.mark.parametrize("kwargs, match", [
    (dict(coordinator="127.0.0.1:9", num_processes=2, process_id=2),
     r"--process-id / JAX_PROCESS_ID must be a whole number in \[0, 1\], "
     "got 2"),
    (dict(coordinator="127.0.0.1:9", num_processes=0, process_id=0),
     r"--num-processes / JAX_NUM_PROCESSES must be a whole number >= 1"),
    (dict(coordinator="127.0.0.1:9", num_processes="two", process_id=0),
     r"got 'two'"),
    (dict(coordinator="127.0.0.1", num_processes=2, process_id=0),
     r"must be HOST:PORT .* got '127.0.0.1'"),
    (dict(num_processes=2, process_id=0), r"must be HOST:PORT .* got None"),
    (dict(coordinator="127.0.0.1:9", num_processes=2),
     r"--process-id / JAX_PROCESS_ID must be .* got None"),
])
def test_bad_settings_are_refused(kwargs, match):
  with pytest.raises(ValueError, match=match):
    distributed.cluster_from(environ={}, **kwargs)
