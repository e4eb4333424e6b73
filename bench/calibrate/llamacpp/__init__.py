"""llama.cpp on the GPU machine: build, random-weight GGUFs, measurements, fit (README.md)."""
