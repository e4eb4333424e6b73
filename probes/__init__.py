"""On-device measurements. torch/transformers are imported lazily inside the probes that need them."""
