"""Sweeps: a spec over config fields and seeds, executors (local, Ray, SLURM), phase diagrams.

Modules: `spec` (SweepSpec -> RunConfigs), `runner` (run a sweep into a directory, results.csv),
`executors` (one concurrent.futures-style interface), `phases` (phase diagrams, sweep report).
Vectorized training of many small models is `grokscope.training.ensemble`; the command line is
`grokscope.cli.sweep`.
Nothing heavy is imported here.
"""
