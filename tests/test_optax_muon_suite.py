"""optax's own Muon test suite, run against spectral_jax.

The INSTALLED ``optax/contrib/_muon_test.py`` is read at test time (never
copied into this repo), its ``from optax.contrib import _muon`` is pointed at a
shim exposing our ``muon``, ``MuonDimensionNumbers``,
``orthogonalize_via_newton_schulz`` and ``_compute_muon_reshape``, and it runs
with unittest in a subprocess without x64, together with the muon cases of
upstream ``contrib/_common_test.py`` (``optax.contrib.muon`` pointed at ours) (upstream's default float32 config;
this session enables x64 in conftest). Every upstream test is one pytest test
here, so a failure names the upstream test and shows its traceback.

Run by hand: ``python tests/test_optax_muon_suite.py`` (prints the summary).
"""

import fcntl
import functools
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import types
import unittest

import pytest

_IMPORT_LINE = "from optax.contrib import _muon\n"


def _upstream_path() -> pathlib.Path:
  import optax.contrib  # pylint: disable=g-import-not-at-top
  return pathlib.Path(optax.contrib.__file__).parent / "_muon_test.py"


def _shim() -> types.ModuleType:
  import spectral_jax  # pylint: disable=g-import-not-at-top
  from spectral_jax import labels  # pylint: disable=g-import-not-at-top
  from spectral_jax import transforms  # pylint: disable=g-import-not-at-top
  shim = types.ModuleType("spectral_jax_muon_shim")
  shim.muon = spectral_jax.muon
  shim.MuonDimensionNumbers = spectral_jax.MuonDimensionNumbers
  shim.orthogonalize_via_newton_schulz = (
      transforms.orthogonalize_via_newton_schulz)
  shim._compute_muon_reshape = labels.compute_muon_reshape  # pylint: disable=protected-access
  return shim


def _load_upstream() -> types.ModuleType:
  """The upstream test module, with ``_muon`` bound to our shim."""
  source = _upstream_path().read_text()
  if source.count(_IMPORT_LINE) != 1:
    raise RuntimeError(f"{_upstream_path()} no longer imports _muon as "
                       f"{_IMPORT_LINE!r}; update the shim.")
  module = types.ModuleType("optax_muon_test_on_spectral_jax")
  module.__file__ = str(_upstream_path())
  sys.modules["spectral_jax_muon_shim"] = _shim()
  code = compile(source.replace(_IMPORT_LINE,
                                "import spectral_jax_muon_shim as _muon\n"),
                 str(_upstream_path()), "exec")
  exec(code, module.__dict__)  # pylint: disable=exec-used
  return module


def _iter_tests(suite):
  for item in suite:
    if isinstance(item, unittest.TestSuite):
      yield from _iter_tests(item)
    else:
      yield item


def _common_path() -> pathlib.Path:
  return _upstream_path().parent / "_common_test.py"


def _load_common_muon_cases() -> unittest.TestSuite:
  """The muon cases of upstream ``contrib/_common_test.py`` on our muon.

  That file looks optimizers up by name on ``optax.contrib`` at test time,
  so ``optax.contrib.muon`` is pointed at ``spectral_jax.muon`` (in the
  subprocess only).
  """
  import optax.contrib  # pylint: disable=g-import-not-at-top
  import spectral_jax  # pylint: disable=g-import-not-at-top
  optax.contrib.muon = spectral_jax.muon
  module = types.ModuleType("optax_common_test_on_spectral_jax")
  module.__file__ = str(_common_path())
  exec(compile(_common_path().read_text(), str(_common_path()), "exec"),  # pylint: disable=exec-used
       module.__dict__)
  suite = unittest.defaultTestLoader.loadTestsFromModule(module)
  return unittest.TestSuite(t for t in _iter_tests(suite)
                            if "opt_name='muon'" in t.id())


def _run(out_path: str) -> int:
  """Run the upstream suite and the muon cases of upstream _common_test.py;
  write ``{test_id: [status, text]}`` as JSON."""
  module = _load_upstream()
  suite = unittest.defaultTestLoader.loadTestsFromModule(module)
  suite.addTests(_load_common_muon_cases())
  # unittest drops tests from the suite as they finish: list ids first.
  report = {t.id(): ["pass", ""] for t in _iter_tests(suite)}
  result = unittest.TestResult()
  suite.run(result)
  for status, items in (("fail", result.failures), ("error", result.errors),
                        ("skip", result.skipped)):
    for test, text in items:
      key = test.id()
      # A failing subTest reports as a _SubTest; file it under its test.
      parent = getattr(test, "test_case", None)
      if parent is not None:
        key = parent.id()
        text = f"[subtest {test.id()}]\n{text}"
      prev = report.get(key, ["pass", ""])
      report[key] = [status if prev[0] == "pass" else prev[0],
                     (prev[1] + "\n" + text).strip()]
  tmp = out_path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(report, f)
  os.replace(tmp, out_path)
  return 0 if result.wasSuccessful() else 1


@functools.lru_cache(maxsize=None)
def _upstream_test_ids() -> tuple[str, ...]:
  # Collected from the upstream file's names only (no jax work at import).
  import ast  # pylint: disable=g-import-not-at-top
  tree = ast.parse(_upstream_path().read_text())
  names = []
  for node in ast.walk(tree):
    if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
      names.append(node.name)
  return tuple(names)


def _owner(test_id: str) -> str | None:
  """The upstream method behind a unittest id (parameterised ids add a
  ``_name`` or an index and a description); the longest match wins."""
  method = test_id.split(" ")[0].split(".")[-1]
  names = [n for n in _upstream_test_ids()
           if re.fullmatch(re.escape(n) + r"(_\w+|\d+)?", method)]
  return max(names, key=len) if names else None


def _run_upstream_into(out: pathlib.Path) -> None:
  env = dict(os.environ, JAX_ENABLE_X64="0", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, __file__, str(out)], env=env,
                        capture_output=True, text=True, timeout=900,
                        check=False)
  if not out.exists():
    pytest.fail("the upstream suite did not run:\n" + proc.stdout[-4000:]
                + proc.stderr[-4000:])


@pytest.fixture(scope="session")
def upstream_report(tmp_path_factory, worker_id):
  """The upstream suite's results, run once per pytest session (~25 s).

  Under xdist every worker's session fixture would run it again, so the
  workers share one report in the run's common temporary folder, the first
  one to take the lock writing it (the pattern the pytest-xdist docs give).
  """
  if worker_id == "master":  # no xdist: this session's own folder.
    root = tmp_path_factory.getbasetemp()
  else:  # the folder above the workers' own: this run's, shared by them.
    root = tmp_path_factory.getbasetemp().parent
  out = root / "optax_upstream_report.json"
  with open(root / "optax_upstream_report.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not out.exists():
      _run_upstream_into(out)
  return json.loads(out.read_text())


@pytest.mark.parametrize("name", _upstream_test_ids())
@pytest.mark.heavy
def test_upstream(upstream_report, name):
  """Every parameterisation of upstream ``test_<name>`` passes on our muon."""
  ran = {k: v for k, v in upstream_report.items()
         if _owner(k) == name and "optax_common_test" not in k}
  assert ran, f"upstream test {name} did not run; ran: {sorted(upstream_report)}"
  bad = {k: v for k, v in ran.items() if v[0] in ("fail", "error")}
  if bad:
    pytest.fail("\n\n".join(f"{k}: {v[0].upper()}\n{v[1]}"
                            for k, v in sorted(bad.items())), pytrace=False)


@pytest.mark.heavy
def test_upstream_common_muon_cases(upstream_report):
  """Every muon case of upstream ``contrib/_common_test.py`` (inject_hyperparams,
  dtype preservation, gradient accumulation, sharding stability, ...) passes
  with ``optax.contrib.muon`` replaced by ours."""
  ran = {k: v for k, v in upstream_report.items()
         if "optax_common_test_on_spectral_jax" in k}
  assert len(ran) >= 10, f"too few common muon cases ran: {sorted(ran)}"
  assert any("inject_hyperparams" in k for k in ran)
  bad = {k: v for k, v in ran.items() if v[0] in ("fail", "error")}
  if bad:
    pytest.fail("\n\n".join(f"{k}: {v[0].upper()}\n{v[1]}"
                            for k, v in sorted(bad.items())), pytrace=False)


def test_shim_exposes_what_upstream_uses():
  """Fast check (default suite): every ``_muon.X`` upstream uses exists."""
  used = set(re.findall(r"_muon\.(\w+)", _upstream_path().read_text()))
  shim = _shim()
  missing = sorted(n for n in used if not hasattr(shim, n))
  assert not missing, f"shim lacks {missing}"
  assert used >= {"muon", "MuonDimensionNumbers"}


if __name__ == "__main__":
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  if len(sys.argv) > 1:
    sys.exit(_run(sys.argv[1]))
  with tempfile.TemporaryDirectory() as _tmp:
    _out = os.path.join(_tmp, "r.json")
    _rc = _run(_out)
    with open(_out) as _f:
      for _k, (_s, _t) in sorted(json.load(_f).items()):
        print(f"{_s:5s} {_k}" + (f"\n{_t}" if _s in ("fail", "error") else ""))
    sys.exit(_rc)
