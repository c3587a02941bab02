"""Validate a YAML document against a pydantic model with messages that name file, line, field and fix.

Shared by the policy and the model card: both are files people edit by hand, so an error must point
at the line (``model-policy.yml:7: gates[1].metric: ...``) and suggest the closest known field.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from model_lifecycle.errors import BadInput


def node_line(root: Any, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML node at a pydantic error location, as deep as it exists."""
    import yaml

    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            if match is None:
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _known_fields(root_model: Any, loc: tuple[Any, ...]) -> list[str]:
    model: Any = root_model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        nested = [a for arg in args for a in getattr(arg, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = (candidates or nested or [None])[0]
        if model is None:
            return []
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _scalar_text(root: Any, loc: tuple[Any, ...]) -> str | None:
    """The text of the YAML scalar at a pydantic error location, as written in the file."""
    import yaml

    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _quote_hint(error: dict[str, Any], written: str | None) -> str:
    """When YAML turned unquoted text into a date, number or boolean where text (or a word) was
    expected: say what it read and how to keep it as written."""
    import datetime

    value = error.get("input")
    if error["type"] != "string_type" or isinstance(value, (str, dict, list)) or value is None:
        return ""
    kind = ("a date" if isinstance(value, (datetime.date, datetime.datetime)) else
            "a boolean" if isinstance(value, bool) else "a number" if isinstance(value, (int, float)) else None)
    if kind is None:
        return ""
    text = written if written is not None else str(value)
    return f"; YAML read {text} as {kind}: quote it to keep it as text, e.g. \"{text}\""


def _describe(root_model: Any, error: dict[str, Any], root: Any = None) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        known = _known_fields(root_model, loc)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known)}"
        return f"{_path(loc)}: unknown field{hint}"
    message = error["msg"].removeprefix("Value error, ") + _quote_hint(error, _scalar_text(root, loc))
    return f"{_path(loc)}: {message}" if loc else message


def parse_model(text: str, source: str, model: type[BaseModel], *, what: str, needs: str) -> tuple[Any, Any]:
    """Parse YAML text into ``model``; returns (instance, YAML node tree for later line look-ups)."""
    import yaml

    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise BadInput(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise BadInput(f"{source}: {what} must be a YAML mapping with {needs}")
    try:
        return model.model_validate(data), root
    except ValidationError as exc:
        first = exc.errors()[0]
        line = node_line(root, tuple(first["loc"]))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BadInput(f"{source}:{line}: {_describe(model, first, root)}{more}") from exc
