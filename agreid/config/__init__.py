"""Configuration: yacs defaults with ``_BASE_`` inheritance and checked command-line overrides."""
from agreid.config.config import CfgNode, ConfigError, get_cfg

__all__ = ["CfgNode", "ConfigError", "get_cfg"]
