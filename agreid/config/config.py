"""yacs ``CfgNode`` with ``_BASE_`` inheritance and checked, helpful ``KEY VALUE`` overrides."""
from __future__ import annotations

import ast
import difflib
import os
from typing import Any, Dict, List, Optional, Sequence

import yaml
from yacs.config import CfgNode as _YacsNode

from agreid.utils.errors import UserError

BASE_KEY = "_BASE_"
MAX_BASE_DEPTH = 8


class ConfigError(UserError, ValueError):
    """A config file or override is wrong; the message says which key or file and why."""


class CfgNode(_YacsNode):
    """A yacs node whose files may inherit from others through ``_BASE_`` (a path relative to the file)."""

    @classmethod
    def load_yaml_with_base(cls, filename: str, _chain: Optional[List[str]] = None) -> Dict[str, Any]:
        """Read ``filename`` and recursively merge it over its ``_BASE_`` file(s)."""
        chain = list(_chain or [])
        path = os.path.abspath(filename)
        if path in chain:
            cycle = " -> ".join(chain + [path])
            raise ConfigError(f"_BASE_ cycle in config files: {cycle}")
        if len(chain) >= MAX_BASE_DEPTH:
            raise ConfigError(f"_BASE_ chain deeper than {MAX_BASE_DEPTH} files at {path}")
        if not os.path.isfile(path):
            where = f" (named as _BASE_ in {chain[-1]})" if chain else ""
            raise ConfigError(f"Config file not found: {path}{where}")
        with open(path, "r", encoding="utf-8") as f:
            try:
                data = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"Config file {path} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"Config file {path} must hold a mapping at top level")
        bases = data.pop(BASE_KEY, None)
        if bases is None:
            return data
        merged: Dict[str, Any] = {}
        for base in [bases] if isinstance(bases, str) else list(bases):
            base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
            _deep_merge(merged, cls.load_yaml_with_base(base_path, chain + [path]), base_path)
        _deep_merge(merged, data, path)
        return merged

    def merge_from_file(self, cfg_filename: str) -> None:
        data = self.load_yaml_with_base(cfg_filename)
        self.merge_from_other_cfg(CfgNode(data), source=cfg_filename)

    def merge_from_other_cfg(self, cfg_other: _YacsNode, source: str = "config") -> None:
        _check_keys(self, cfg_other, source, prefix="")
        try:
            super().merge_from_other_cfg(cfg_other)
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None

    def merge_from_list(self, cfg_list: Sequence[Any]) -> None:
        """Apply ``KEY VALUE`` pairs from the command line, checking keys, types and pairing."""
        items = list(cfg_list)
        if len(items) % 2:
            raise ConfigError(
                f"Overrides must come as KEY VALUE pairs; got {len(items)} items: {' '.join(map(str, items))}")
        for key, raw in zip(items[0::2], items[1::2]):
            if key == BASE_KEY or key.endswith("." + BASE_KEY):
                raise ConfigError("_BASE_ cannot be set from the command line")
            node, leaf = _resolve(self, key)
            old = node[leaf]
            node[leaf] = _coerce(key, old, raw)

    def diff(self, other: _YacsNode, prefix: str = "") -> List[str]:
        """Lines ``KEY: default -> value`` for every leaf where ``self`` differs from ``other``."""
        out = []
        for k in sorted(self):
            full = f"{prefix}{k}"
            mine, theirs = self[k], other.get(k, None) if isinstance(other, dict) else None
            if isinstance(mine, _YacsNode):
                out += CfgNode.diff(mine, theirs if isinstance(theirs, dict) else {}, full + ".")
            elif mine != theirs:
                out.append(f"{full}: {theirs!r} -> {mine!r}")
        return out


def _deep_merge(dst: Dict[str, Any], src: Dict[str, Any], source: str) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and k in dst:
            if not isinstance(dst[k], dict):
                raise ConfigError(f"{source}: key {k} is a section here but a value in its base")
            _deep_merge(dst[k], v, source)
        else:
            dst[k] = v


def _all_keys(node: _YacsNode, prefix: str = "") -> List[str]:
    keys = []
    for k, v in node.items():
        keys.append(prefix + k)
        if isinstance(v, _YacsNode):
            keys += _all_keys(v, prefix + k + ".")
    return keys


def _unknown_key(root: _YacsNode, full_key: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(full_key, _all_keys(root), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    return ConfigError(f"{source}: unknown config key {full_key}.{hint}")


def _check_keys(root: _YacsNode, other: Dict[str, Any], source: str, prefix: str,
                node: Optional[_YacsNode] = None) -> None:
    node = root if node is None else node
    for k, v in other.items():
        full = prefix + k
        if k not in node:
            raise _unknown_key(root, full, source)
        if isinstance(node[k], _YacsNode):
            if not isinstance(v, dict):
                raise ConfigError(f"{source}: {full} is a section; got a value {v!r}")
            _check_keys(root, v, source, full + ".", node[k])
        elif isinstance(node[k], (list, tuple)) and isinstance(v, (list, tuple)):
            _check_elements(full, node[k], v, source)


def _resolve(root: _YacsNode, key: str):
    node = root
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, _YacsNode) or part not in node:
            raise _unknown_key(root, key, "command line")
        if i < len(parts) - 1:
            node = node[part]
    if isinstance(node[parts[-1]], _YacsNode):
        raise ConfigError(f"command line: {key} is a section, not a value")
    return node, parts[-1]


def _check_elements(key: str, old: Sequence[Any], value: Sequence[Any], source: str) -> List[Any]:
    """``value``'s elements in the type of the default's (ints widen to float); explain a mismatch.

    An empty default, or one mixing types, accepts any element.
    """
    kinds = {type(x) for x in old}
    if len(kinds) != 1:
        return list(value)
    kind = kinds.pop()
    out = []
    for x in value:
        if kind is float and isinstance(x, int) and not isinstance(x, bool):
            x = float(x)
        if type(x) is not kind:
            raise ConfigError(f"{source}: {key} expects a list of {kind.__name__} like {list(old)!r}; "
                              f"element {x!r} is a {type(x).__name__}")
        out.append(x)
    return out


def _coerce(key: str, old: Any, raw: Any) -> Any:
    """Turn a command-line string into the type of the default, or explain why it cannot."""
    value = raw
    if isinstance(raw, str):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if isinstance(old, bool) and isinstance(raw, str) and raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
    if isinstance(old, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"command line: {key} expects true/false, got {raw!r}")
        return value
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(old, str):
        return raw if isinstance(raw, str) else str(value)
    if isinstance(old, (list, tuple)):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"command line: {key} expects a list like {list(old)!r}, got {raw!r}")
        return type(old)(_check_elements(key, old, value, "command line"))
    if type(value) is not type(old):
        raise ConfigError(f"command line: {key} expects {type(old).__name__} (default {old!r}), "
                          f"got {raw!r}")
    return value


def get_cfg() -> CfgNode:
    """A fresh copy of the default configuration."""
    from agreid.config.defaults import _C

    return CfgNode(_C.clone())
