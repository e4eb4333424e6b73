"""Deployment config export: one module per target, rendering Plan values verbatim."""
