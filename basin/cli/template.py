"""A small subset of docker's Go templates for --format: `{{.State.Pid}}`, several in one
string (`{{.Name}} {{.State.Status}}`), and `{{json .Config}}` for a value as JSON.

A dotted path into the JSON object the command prints; a mistyped field is an error, not an
empty string, so a script notices."""

from __future__ import annotations

import json
import re
from typing import Any

from basin.cli.options import UsageError

_ACTION = re.compile(r"\{\{\s*(json\s+)?(\.[A-Za-z0-9_.]*)\s*\}\}")


def _lookup(obj: Any, path: str, template: str) -> Any:
    if path == ".":
        return obj
    for part in path.strip(".").split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise UsageError(f"template {template!r}: no field {path!r}")
        obj = obj[part]
    return obj


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<no value>"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def check(template: str) -> None:
    """Refuse a template with `{{` that is not one of our actions before doing any work."""
    rest = _ACTION.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise UsageError(
            f"cannot read template {template!r}: use {{{{.Field.Sub}}}} or {{{{json .Field}}}}"
        )


def render(template: str, obj: dict[str, Any]) -> str:
    def one(m: re.Match[str]) -> str:
        value = _lookup(obj, m.group(2), template)
        return json.dumps(value) if m.group(1) else _text(value)

    return _ACTION.sub(one, template)
