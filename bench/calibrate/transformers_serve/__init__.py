"""`transformers serve` on the GPU machine: random-weight models, measurements, fit (README.md)."""
