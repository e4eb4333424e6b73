"""advisor: how to serve an LLM on this GPU box, with the evidence."""

__version__ = "0.1.0"
