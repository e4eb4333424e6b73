"""The advisor's benchmarks, run on demand from the repository root (never by the tests):

  bench/                  the tool's own speed: bench_cli.py, bench_load.py, tui_first_paint.py
  bench/calibrate/        fits that write knowledge rows (one row writer: rows.py) and the GPU
                          harnesses whose measurements they fit (llamacpp/, transformers_serve/)
  bench/validate/         the advisor's predictions against measurements (and the load model's
                          closed forms against its simulation)
  bench/results/          what they recorded

Each script runs as a module with the project installed (`pip install -e .`):
`python -m bench.<package>.<script> [--write] [--check] ...`; bench/README.md lists them.
"""
