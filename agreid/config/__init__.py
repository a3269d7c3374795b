"""Configuration: yacs defaults with ``_BASE_`` inheritance and checked command-line overrides."""
