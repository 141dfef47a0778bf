"""Shared helpers of the JSON inputs (``.vmlist``, SDN running config, IPAM state).

JSON has no line numbers once decoded, so diagnostics about its contents name the JSON
path of the offending value (``ids."100".type``) instead; syntax errors keep their line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from proxmox_fw.diagnostics import Diagnostics


@dataclass(slots=True)
class JsonWhere:
    """Reports problems of one JSON file by the JSON path of the offending value."""

    file: str
    diags: Diagnostics

    def error(self, path: str, message: str) -> None:
        self.diags.error(self.file, None, f"{path}: {message}")

    def warning(self, path: str, message: str) -> None:
        self.diags.warning(self.file, None, f"{path}: {message}")


def load_json_object(text: str, file: str, diags: Diagnostics) -> dict[str, Any] | None:
    """The top-level JSON object, or None (with an error) when the text is not one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        diags.error(file, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
        return None
    except RecursionError:
        diags.error(file, None, "invalid JSON: nested too deeply")
        return None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        diags.error(file, None, f"invalid JSON: {exc}")
        return None
    if not isinstance(value, dict):
        diags.error(file, None, f"expected a JSON object at the top, got {type_name(value)}")
        return None
    return value


def get_object(
    parent: dict[str, Any], key: str, path: str, file: str, diags: Diagnostics
) -> dict[str, Any]:
    """``parent[key]`` if it is an object; absent or null → empty, other types → error."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        diags.error(file, None, f"{join(path, key)}: expected an object, got {type_name(value)}")
        return {}
    return value


def join(path: str, key: str) -> str:
    """A readable JSON path: ``zones."test".type``."""
    part = key if key.isidentifier() else json.dumps(key)
    return f"{path}.{part}" if path else part


def type_name(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "an array"
        case dict():
            return "an object"
    return type(value).__name__
