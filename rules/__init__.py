"""durable-rules rulesets, one module per concern, built once per process from knowledge."""
