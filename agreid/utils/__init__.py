"""Shared utilities: registries, distributed helpers, logging, events, checkpoints."""
