"""The one family of user-input errors: each ends a command with its message alone, never a traceback.

``tools/train_net.py`` catches :class:`UserError` (and only it) and prints ``Name: message`` with exit
code 2; anything else is a bug and keeps its traceback. Subclasses also derive from the builtin type a
caller would naturally catch (``ValueError``, ``KeyError`` ...), so existing ``except`` clauses still work.
"""
from __future__ import annotations

import re

_ORIGINAL = re.compile(r"^Original Traceback", re.MULTILINE)


class UserError(Exception):
    """Bad input from the user (config, data, weights, output folder, launch flags)."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint or weights file is missing, unreadable, refused by ``weights_only`` or does not fit."""


class OutputDirError(UserError, OSError):
    """OUTPUT_DIR cannot be created or written."""


class LaunchError(UserError, ValueError):
    """Impossible process / device counts for ``launch`` (e.g. more GPU processes than visible GPUs)."""


def user_message(exc: BaseException) -> str:
    """``exc``'s message without any worker traceback that torch's DataLoader or spawn embedded in it.

    A DataLoader worker's exception is rebuilt in the main process with the whole worker traceback as
    its message; the user only needs the last ``Name: message`` line of it.
    """
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if _ORIGINAL.search(text):
        line = re.compile(rf"^(?:[\w.]+\.)?{re.escape(type(exc).__name__)}: (.*)$")
        found = [m.group(1) for m in map(line.match, text.splitlines()) if m]
        if found:
            text = found[-1]
    return text.strip()


def format_user_error(exc: BaseException) -> str:
    """``Name: message`` for a command's last line."""
    return f"{type(exc).__name__}: {user_message(exc)}"
