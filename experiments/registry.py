"""The experiments ``spectral-jax reproduce`` knows, in report order.

Each entry names a module in ``experiments`` that defines:
  NAME: str                      short id used by ``--only`` and as the output folder
  TITLE: str                     section heading in report.md
  Config: frozen dataclass       defaults = quick CPU size; ``Config.full()`` = paper size
  run(config, out_dir) -> dict   writes out_dir/metrics.jsonl and figures, returns
                                 {"claims": [...], "figures": [...], "summary": str, ...}
"""

EXPERIMENT_MODULES: list[str] = [
]
