"""``train-gpt`` as several processes (jax.distributed on loopback, gloo).

Two processes with 4 simulated CPU devices each train the same steps as one
process with 8 devices (mesh fsdp=8 either way), and a run with one process
killed mid-way resumes to the uninterrupted metrics.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[1]
# A model small enough that each process compiles its step in seconds.
_ARGS = ["--n-layer", "1", "--n-head", "2", "--d-model", "32", "--context",
         "16", "--batch-size", "8", "--log-every", "1", "--eval-every", "2",
         "--val-batches", "1", "--track-every", "3", "--mesh", "fsdp=8",
         "--warmup-steps", "1", "--no-progress"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(out, steps, devices, extra=(), cluster=None):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  cmd = [sys.executable, "-m", "experiments.cli", "train-gpt", "--out",
         str(out), "--steps", str(steps), *_ARGS, *extra]
  if cluster is not None:
    port, n, i = cluster
    cmd += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n),
            "--process-id", str(i)]
  return subprocess.Popen(cmd, env=env, cwd=_ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _two_processes(out, steps, extra=()):
  port = _free_port()
  return [_launch(out, steps, 4, extra, (port, 2, i)) for i in range(2)]


def _finish(procs, timeout=300):
  outs = [p.communicate(timeout=timeout) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  return outs


def _rows(out):
  return [json.loads(line) for line in
          (pathlib.Path(out) / "metrics.jsonl").read_text().splitlines()]


def _assert_same_metrics(got, want):
  assert [r["step"] for r in got] == [r["step"] for r in want]
  for a, b in zip(got, want):
    # tokens_per_s is a timing: absent on a resumed run's first row (its
    # step compiled), so only the measured quantities are compared.
    assert set(a) - {"tokens_per_s"} == set(b) - {"tokens_per_s"}
    for key in ("train_loss", "val_loss"):
      if key in b:
        assert a[key] == pytest.approx(b[key], rel=1e-5), (a["step"], key)


@pytest.mark.heavy
def test_two_processes_share_one_run(tmp_path):
  """The default suite's fast variant: two processes of 2 devices each,
  two steps; process 0 writes the files, both exit cleanly."""
  port = _free_port()
  procs = [_launch(tmp_path / "run", 2, 2,
                   ["--mesh", "fsdp=4", "--track-every", "0"], (port, 2, i))
           for i in range(2)]
  outs = _finish(procs)
  rows = _rows(tmp_path / "run")
  assert [r["step"] for r in rows] == [0, 1, 2]
  assert all(r["val_loss"] > 0 for r in rows if "val_loss" in r)
  # Only process 0 prints the summary (gloo's own connection lines aside).
  assert '"final_val_loss"' in outs[0][0]
  assert '"final_val_loss"' not in outs[1][0]
  assert (tmp_path / "run" / "summary.json").exists()


@pytest.mark.slow  # Three processes compile the GPT step: about a minute.
def test_two_processes_train_as_one_with_eight_devices(tmp_path):
  single = _launch(tmp_path / "one", 4, 8)
  _finish([single])
  _finish(_two_processes(tmp_path / "two", 4))
  _assert_same_metrics(_rows(tmp_path / "two"), _rows(tmp_path / "one"))
  # Process 0 wrote the files; the summaries agree on the final loss.
  one = json.loads((tmp_path / "one" / "summary.json").read_text())
  two = json.loads((tmp_path / "two" / "summary.json").read_text())
  assert two["final_val_loss"] == pytest.approx(one["final_val_loss"],
                                                rel=1e-5)
  assert two["weight_stable_rank"].keys() == one["weight_stable_rank"].keys()


def test_bad_process_settings_are_refused_before_any_work(tmp_path):
  proc = _launch(tmp_path / "x", 2, 4, cluster=(_free_port(), 2, 5))
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 2
  assert "--process-id / JAX_PROCESS_ID must be a whole number in [0, 1]" in err
  assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_killed_process_resumes_without_losing_steps(tmp_path):
  steps, ckpt = ["--ckpt-every", "2"], tmp_path / "run"
  _finish([_launch(tmp_path / "ref", 8, 8, steps)])
  procs = _two_processes(ckpt, 8, steps)
  # Kill process 1 once a checkpoint past step 2 exists; process 0 then
  # cannot finish its collectives and is stopped as a scheduler would.
  deadline = time.time() + 300
  while time.time() < deadline and not any(
      (ckpt / "ckpt").glob("[2-9]")):
    time.sleep(0.2)
  procs[1].send_signal(signal.SIGKILL)
  time.sleep(2)
  procs[0].kill()
  for p in procs:
    p.communicate(timeout=60)
  _finish(_two_processes(ckpt, 8, [*steps, "--resume"]))
  _assert_same_metrics(_rows(ckpt), _rows(tmp_path / "ref"))
