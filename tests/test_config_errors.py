"""Configuration errors: every public constructor rejects bad arguments at
build time with a ValueError naming the argument, the value and what is
allowed; the command line answers bad input with one line on stderr and
exit status 2, never a traceback.
"""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import spectral_jax as sj
from spectral_jax import diagnostics
from spectral_jax import gating
from spectral_jax import linalg
from spectral_jax import robust
from spectral_jax.transforms import MuonDimensionNumbers

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (id, constructor call, regex the message must match: argument=value and
# the allowed range / choices).
_BUILD_ERRORS = [
    ("muon-lr-negative", lambda: sj.muon(-1.0),
     r"learning_rate=-1\.0 .*>= 0"),
    ("muon-lr-nan", lambda: sj.muon(float("nan")),
     r"learning_rate=nan .*finite"),
    ("muon-adam-lr-negative", lambda: sj.muon(0.1, adam_learning_rate=-0.5),
     r"adam_learning_rate=-0\.5 .*>= 0"),
    ("muon-beta-one", lambda: sj.muon(0.1, beta=1.0),
     r"beta=1\.0 .*\[0, 1\)"),
    ("muon-beta-negative", lambda: sj.muon(0.1, beta=-0.1),
     r"beta=-0\.1 .*\[0, 1\)"),
    ("muon-ns-steps-zero", lambda: sj.muon(0.1, ns_steps=0),
     r"ns_steps=0 .*int >= 1"),
    ("muon-ns-steps-float", lambda: sj.muon(0.1, ns_steps=2.5),
     r"ns_steps=2\.5 .*int >= 1"),
    ("muon-ns-coeffs-name", lambda: sj.muon(0.1, ns_coeffs="jordann"),
     r"ns_coeffs='jordann'.*allowed names.*jordan"),
    ("muon-ns-coeffs-shape", lambda: sj.muon(0.1, ns_coeffs=np.ones((2, 4))),
     r"ns_coeffs .*\(3,\) or \(k, 3\).*\(2, 4\)"),
    ("muon-polar-method", lambda: sj.muon(0.1, polar_method="svdd"),
     r"polar_method='svdd'.*allowed.*'svd'"),
    ("muon-preconditioning", lambda: sj.muon(0.1, preconditioning="frob"),
     r"preconditioning='frob'.*allowed.*'frobenius'"),
    ("muon-eps-negative", lambda: sj.muon(0.1, eps=-1.0),
     r"eps=-1\.0 .*>= 0"),
    ("muon-consistent-rms", lambda: sj.muon(0.1, consistent_rms=-0.2),
     r"consistent_rms=-0\.2 .*>= 0"),
    ("muon-compute-dtype", lambda: sj.muon(0.1, compute_dtype=jnp.int32),
     r"compute_dtype=.*int32.*floating"),
    ("specgd-lr-negative", lambda: sj.specgd(-1e-3),
     r"learning_rate=-0\.001 .*>= 0"),
    ("specgd-method", lambda: sj.specgd(0.1, polar_method="polar"),
     r"method='polar'.*allowed.*'svd'"),
    ("specgd-lipschitz-zero", lambda: sj.specgd(0.1, lipschitz=0.0),
     r"lipschitz=0\.0 .*> 0"),
    ("specgd-ns-steps", lambda: sj.specgd(0.1, polar_method="newton_schulz",
                                          ns_steps=-3),
     r"ns_steps=-3 .*>= 1"),
    ("scale-by-polar-method", lambda: sj.scale_by_polar("qr"),
     r"method='qr'.*allowed"),
    ("scale-by-polar-bf16-exact",
     lambda: sj.scale_by_polar("svd", compute_dtype=jnp.bfloat16),
     r"compute_dtype=.*bfloat16.*method='svd'.*float32"),
    ("scale-by-specgd-lipschitz", lambda: sj.scale_by_specgd(lipschitz=-2.0),
     r"lipschitz=-2\.0 .*> 0"),
    ("scale-by-muon-beta", lambda: sj.scale_by_muon(beta=1.5),
     r"beta=1\.5 .*\[0, 1\)"),
    ("scale-by-muon-precond-exact",
     lambda: sj.scale_by_muon(polar_method="svd", preconditioning="aol"),
     r"preconditioning='aol'.*newton_schulz"),
    ("scale-by-shape-rms", lambda: sj.scale_by_shape(consistent_rms=-1.0),
     r"consistent_rms=-1\.0 .*>= 0"),
    ("newton-schulz-steps", lambda: linalg.newton_schulz(jnp.ones((3, 3)), 0),
     r"steps.*>= 1.*0"),
    ("newton-schulz-coeffs", lambda: linalg.newton_schulz(jnp.ones((3, 3)),
                                                      coeffs="polar"),
     r"coeffs='polar'.*allowed names"),
    ("newton-schulz-norm", lambda: linalg.newton_schulz(jnp.ones((3, 3)),
                                                    norm="nuclear"),
     r"norm='nuclear'.*allowed.*frobenius"),
    ("polar-method", lambda: sj.polar(jnp.ones((3, 3)), "cholesky"),
     r"method='cholesky'.*allowed"),
    ("polar-ns-kwargs-exact", lambda: sj.polar(jnp.ones((3, 3)), "svd",
                                               steps=3),
     r"steps.*newton_schulz.*method='svd'"),
    ("polar-vector", lambda: sj.polar(jnp.ones((3,))),
     r"x .*ndim >= 2.*\(3,\)"),
    ("stable-rank-int", lambda: sj.stable_rank(jnp.ones((3, 3), jnp.int32)),
     r"x\.dtype=int32"),
    ("spectral-entropy-power", lambda: linalg.spectral_entropy(jnp.ones((3, 3)),
                                                           power=3),
     r"power .*1 or 2.*3"),
    ("gram-chunk", lambda: linalg.gram(jnp.ones((3, 3)), chunk_size=0),
     r"chunk_size .*>= 1.*0"),
    ("schedule-coeffs-steps", lambda: linalg.schedule_coeffs("jordan", 0),
     r"steps.*>= 1"),
    ("nnx-dims-conv", lambda: sj.nnx_dimension_numbers({}, conv="flat"),
     r"conv='flat'.*allowed"),
    ("skip-nonfinite-inner", lambda: robust.skip_nonfinite(optax.sgd),
     r"inner=.*GradientTransformation"),
    ("gated-margin-zero", lambda: gating.scale_by_gated_spectral(margin=0.0),
     r"margin .*> 0.*0\.0"),
    ("gated-margin-nan", lambda: gating.scale_by_gated_spectral(margin=float("nan")),
     r"margin .*finite.*nan"),
    ("gated-specgd-method", lambda: gating.gated_specgd(0.1, polar_method="qr"),
     r"method='qr'.*allowed"),
    ("monitor-every-zero", lambda: diagnostics.monitor_nuclear_rank(0),
     r"every .*positive int.*0"),
]


@pytest.mark.parametrize("make,pattern", [c[1:] for c in _BUILD_ERRORS],
                         ids=[c[0] for c in _BUILD_ERRORS])
def test_constructor_rejects_bad_argument(make, pattern):
  with pytest.raises(ValueError, match=pattern):
    make()


# Arguments whose checks were added after this file first found them
# unchecked (each was a strict xfail until fixed).
_LATER_CHECKED = [
    pytest.param(lambda: sj.muon(0.1, adam_b1=1.5), r"adam_b1=1\.5",
                 id="muon-adam-b1"),
    pytest.param(lambda: sj.muon(0.1, adam_b2=-0.5), r"adam_b2=-0\.5",
                 id="muon-adam-b2"),
    pytest.param(lambda: sj.muon(0.1, mu_dtype="float33"), r"mu_dtype",
                 id="muon-mu-dtype"),
    pytest.param(lambda: sj.specgd(0.1, other="adamw"), r"other=",
                 id="specgd-other"),
    pytest.param(lambda: sj.scale_by_polar("newton_schulz", eps=-1.0),
                 r"eps=-1\.0", id="scale-by-polar-eps"),
    pytest.param(lambda: gating.gated_specgd(-0.1), r"learning_rate=-0\.1",
                 id="gated-specgd-lr"),
    pytest.param(lambda: gating.scale_by_gated_spectral("specgd"), r"spectral=",
                 id="gated-spectral-str"),
    pytest.param(lambda: sj.polar(jnp.ones((3, 3)), rtol=-1.0), r"rtol=-1\.0",
                 id="polar-rtol"),
    # Issue 18 item 4: accepted before, or failing with a bare TypeError.
    pytest.param(lambda: sj.muon(0.02, weight_decay=float("nan")),
                 r"weight_decay=nan .*finite", id="muon-weight-decay-nan"),
    pytest.param(lambda: sj.muon(0.02, weight_decay=-0.1),
                 r"weight_decay=-0\.1 .*>= 0", id="muon-weight-decay-neg"),
    pytest.param(lambda: sj.muon(0.02, adam_weight_decay=-0.1),
                 r"adam_weight_decay=-0\.1 .*>= 0", id="muon-adam-wd-neg"),
    pytest.param(lambda: sj.muon(0.02, adam_eps_root=-1),
                 r"adam_eps_root=-1 .*>= 0", id="muon-adam-eps-root"),
    pytest.param(lambda: sj.muon("0.02"),
                 r"learning_rate='0\.02' .*number, not str",
                 id="muon-lr-string"),
    pytest.param(lambda: sj.muon(0.02, compute_dtype="bogus"),
                 r"compute_dtype='bogus' .*floating", id="muon-dtype-bogus"),
    pytest.param(lambda: sj.scale_by_polar(weight_dimension_numbers={
        "w": MuonDimensionNumbers(1.0, 2)}).update(
            {"w": jnp.ones((2, 3, 4))}, ()),
                 r"reduction_axis=\(1\.0,\) at w: axes must be ints",
                 id="axis-float"),
]


@pytest.mark.parametrize("make,pattern", _LATER_CHECKED)
def test_later_checked_arguments(make, pattern):
  with pytest.raises(ValueError, match=pattern):
    make()


# ---------------------------------------------------------------------------
# Specs that do not fit the params: a ValueError naming the leaf's path.
# ---------------------------------------------------------------------------
_PARAMS = {"w": jnp.zeros((2, 3, 4), jnp.float32),
           "b": jnp.zeros((4,), jnp.float32)}


@pytest.mark.parametrize("build", ["muon", "specgd"])
@pytest.mark.parametrize("spec,pattern", [
    ({"w": MuonDimensionNumbers(3, 4), "b": None},
     r" at w .*out of range.*\(2, 3, 4\)"),
    ({"w": MuonDimensionNumbers(1, 1), "b": None},
     r" at w .*disjoint"),
    ({"w": MuonDimensionNumbers(1, 2), "b": MuonDimensionNumbers()},
     r" at b .*\(4,\).*rank >= 2"),
    ({"w": MuonDimensionNumbers(1, 2)}, r"structure"),
], ids=["axis-out-of-range", "overlapping-axes", "vector-as-matrix",
        "missing-leaf"])
def test_specs_that_do_not_fit_params(build, spec, pattern):
  if build == "muon":
    tx = sj.muon(0.1, muon_weight_dimension_numbers=spec)
  else:
    tx = sj.specgd(0.1, weight_dimension_numbers=spec)
  with pytest.raises(ValueError, match=pattern):
    tx.init(_PARAMS)


def test_transform_spec_mismatch_names_path():
  tx = sj.scale_by_polar(weight_dimension_numbers={
      "w": MuonDimensionNumbers(0, 5)})
  with pytest.raises(ValueError, match=r" at w .*out of range"):
    tx.update({"w": jnp.ones((2, 3, 4), jnp.float32)}, tx.init(None))
  # No spec: a 3-D leaf is not a matrix.
  with pytest.raises(ValueError, match=r"\(2, 3, 4\).*2-D"):
    sj.scale_by_polar().update({"w": jnp.ones((2, 3, 4), jnp.float32)}, ())


# ---------------------------------------------------------------------------
# Training configuration.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,pattern", [
    (dict(optimizer="sgd"), r"optimizer .*'adamw'.*'sgd'"),
    (dict(steps=-1), r"steps .*>= 0.*-1"),
    (dict(n_layer=0), r"n_layer .*positive.*0"),
    (dict(cooldown_frac=1.5), r"cooldown_frac .*\[0, 1\].*1\.5"),
    (dict(compute_dtype="float16"), r"compute_dtype .*'float16'"),
    (dict(mesh="gpu=2"), r"mesh.*'gpu=2'"),
    (dict(momentum=1.5), r"momentum.*1\.5"),
    (dict(muon_lr=-0.02), r"muon_lr.*-0\.02"),
    (dict(n_head=3), r"n_head.*3.*d_model"),
], ids=["optimizer", "steps", "n_layer", "cooldown", "dtype", "mesh",
        "momentum", "muon-lr", "n-head"])
def test_train_config_rejects_bad_values(overrides, pattern):
  from spectral_jax.training import preset  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match=pattern):
    preset("cpu-small", **overrides)


# ---------------------------------------------------------------------------
# Command line: one line on stderr, exit status 2, no traceback.
# ---------------------------------------------------------------------------
def _cli(args, launcher, tmp_path):
  if launcher == "module":  # what the brief and the docs use.
    cmd = [sys.executable, "-m", "experiments.cli", *args]
  else:  # what the installed console script runs (experiments.cli:main).
    cmd = [sys.executable, "-c",
           "import sys; from experiments.cli import main; sys.exit(main())",
           *args]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run(cmd, cwd=_REPO, env=env, capture_output=True,
                        text=True, timeout=120)


def _assert_one_line_error(proc):
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert len(lines) == 1, proc.stderr[-2000:]
  assert "error" in lines[0]
  return lines[0]


@pytest.mark.parametrize("args,pattern", [
    ([], r"required.*COMMAND"),
    (["frobnicate"], r"invalid choice: 'frobnicate'"),
    (["reproduce"], r"required.*--out"),
    (["reproduce", "--quick", "--full", "--out", "X"], r"--full.*--quick"),
], ids=["no-command", "unknown-command", "missing-out", "exclusive-modes"])
def test_cli_argparse_errors(tmp_path, args, pattern):
  line = _assert_one_line_error(_cli(args, "module", tmp_path))
  assert __import__("re").search(pattern, line), line


@pytest.mark.parametrize("launcher", ["module", "entry"])
@pytest.mark.parametrize("case", ["unknown-experiment", "unwritable-out"])
def test_cli_usage_errors(tmp_path, launcher, case):
  if case == "unknown-experiment":
    args = ["reproduce", "--only", "no_such_exp", "--out", str(tmp_path)]
    pattern = r"unknown experiment.*no_such_exp.*valid choices"
  else:
    blocker = tmp_path / "file"
    blocker.write_text("")
    # A path below a regular file can never be created (even as root).
    args = ["reproduce", "--only", "lambda_toy", "--out",
            str(blocker / "out")]
    pattern = r"--out .*not writable"
  line = _assert_one_line_error(_cli(args, launcher, tmp_path))
  assert __import__("re").search(pattern, line), line
  assert not (tmp_path / "no_such_exp").exists()


@pytest.mark.parametrize("args,pattern", [
    (["--steps", "-1"], r"steps must be an int >= 0, got -1"),
    (["--optimizer", "sgd"], r"optimizer must be one of .*'sgd'"),
    (["--data", "/nonexistent/corpus.txt"],
     r"--data '/nonexistent/corpus.txt': no such file"),
    (["--compare", "adamw,lion"], r"--compare 'adamw,lion'.*allowed"),
    (["--n-layer", "two"], r"--n-layer: invalid int value: 'two'"),
    (["--compare", "muon,muon"], r"--compare 'muon,muon': name each optimizer "
     r"once"),
    (["--final-lr-frac", "-50"], r"final_lr_frac must be a number in \[0, 1\]"),
    (["--seed", "-1"], r"seed must be an int >= 0, got -1"),
], ids=["negative-steps", "unknown-optimizer", "missing-data-file",
        "unknown-compare", "non-int", "duplicate-compare", "final-lr-frac",
        "seed"])
def test_cli_train_gpt_bad_input(tmp_path, args, pattern):
  out = tmp_path / "run"
  proc = _cli(["train-gpt", "--out", str(out), "--no-progress", *args],
              "entry", tmp_path)
  line = _assert_one_line_error(proc)
  assert __import__("re").search(pattern, line), line
  # Nothing half-written: at most the (empty) folder and its lock file.
  leftovers = sorted(p.name for p in out.iterdir()) if out.exists() else []
  assert set(leftovers) <= {".lock"}, leftovers


def test_full_disk_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
  # Issue 18 item 6: a full disk while writing gave a raw OSError traceback.
  import errno  # pylint: disable=g-import-not-at-top
  from experiments import cli  # pylint: disable=g-import-not-at-top
  from spectral_jax import files  # pylint: disable=g-import-not-at-top

  def full(path, write, mode="w"):
    del write, mode
    raise OSError(errno.ENOSPC, "No space left on device", str(path))

  monkeypatch.setattr(files, "atomic_write", full)
  rc = cli.main(["reproduce", "--only", "lambda_toy", "--out",
                 str(tmp_path / "out")])
  err = capsys.readouterr().err
  errors = [l for l in err.splitlines() if "error:" in l]  # (after the bars)
  assert rc == 1 and "Traceback" not in err
  assert len(errors) == 1 and "No space left on device" in errors[0], errors
  assert errors[0].startswith("spectral-jax reproduce: error:")
  assert "rerun" in errors[0]
