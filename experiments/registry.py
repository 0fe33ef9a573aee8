"""The experiments ``spectral-jax reproduce`` knows, in report order.

Experiment-module contract (one file per experiment, thin over the library):

  NAME: str
      Short id, used by ``--only`` and as the output folder ``DIR/NAME/``.
  TITLE: str
      Section heading in report.md.
  Config: frozen dataclass
      Defaults = the quick CPU size (all experiments together take about
      16 min on 2 idle CPU cores); ``Config.full()`` (classmethod) = paper
      size.
      Holds a ``seed``.
  run(config, out_dir) -> dict
      Writes ``out_dir/metrics.jsonl`` (raw per-step series, via
      ``report.write_jsonl``) and its figures (PNG, via ``report.save_figure``)
      into ``out_dir``; every write atomic. Returns
        {"claims":  [report.claim(...), ...],   # holds decided by a stated rule
         "figures": [paths of the PNGs written],
         "summary": "markdown: what was run (sizes, steps, seeds) and what it shows",
         "metrics": {small JSON-able summary numbers}}
      Call ``report.enable_x64()`` first where the paper uses float64. Use
      ``report.run_steps`` (jitted scan + tqdm) for long loops.

``experiments/reproduce.py`` copies the figures to ``DIR/figures/NAME_*.png``,
writes ``DIR/NAME/complete.json`` last (the completion marker), then
``DIR/report.md`` and ``DIR/claims.json``. Add a new experiment by writing the
module and appending its name below.
"""

EXPERIMENT_MODULES: list[str] = [
    "experiments.rf_specgd",
    "experiments.lambda_toy",
    "experiments.nr_scaling",
    "experiments.stable_rank_init",
    "experiments.mlp_specgd",
    "experiments.stability",
    "experiments.dual_optimizer",
    "experiments.matrix_sensing",
    "experiments.regime",
    "experiments.probe_advantage",
    "experiments.gpt_compare",
]
