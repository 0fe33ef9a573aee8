"""The public API: README's "API" table and ``spectral_jax.__all__`` agree.

The table under README.md's ``## API`` heading lists one name per row, in
backticks in the first column; it must equal ``spectral_jax.__all__`` exactly
(same names, same order), so adding, removing or renaming a public name
without updating the other fails here. Each listed name must also exist.
"""

import pathlib
import re

import spectral_jax

_README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _api_table_names(text: str) -> list[str]:
  """First-column names of the table in the ``## API`` section."""
  section = text.split("\n## API\n", 1)
  assert len(section) == 2, "README.md has no '## API' section"
  body = section[1].split("\n## ", 1)[0]
  names = []
  for line in body.splitlines():
    m = re.match(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`\s*\|", line)
    if m:
      names.append(m.group(1))
  return names


def test_readme_api_table_equals_all():
  names = _api_table_names(_README.read_text(encoding="utf-8"))
  assert names == list(spectral_jax.__all__)


def test_all_names_exist_and_are_unique():
  assert len(set(spectral_jax.__all__)) == len(spectral_jax.__all__)
  for name in spectral_jax.__all__:
    assert hasattr(spectral_jax, name), name


def test_table_parser_sees_drift():
  # The parser is what makes the first test able to fail: a table with a row
  # missing or extra must read differently from __all__.
  text = _README.read_text(encoding="utf-8")
  first = spectral_jax.__all__[0]
  dropped = re.sub(rf"^\| `{first}` \|.*\n", "", text, flags=re.M)
  assert _api_table_names(dropped) == list(spectral_jax.__all__[1:])
  extra = text.replace("| name | what it is |\n|---|---|\n",
                       "| name | what it is |\n|---|---|\n| `extra` | x |\n")
  assert _api_table_names(extra)[0] == "extra"
