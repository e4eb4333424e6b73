"""Fits that write knowledge rows (through rows.py, the one row writer) and the GPU harnesses
whose raw measurements they fit (llamacpp/, transformers_serve/). See bench/README.md."""
