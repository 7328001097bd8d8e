"""A small JSON Schema validator for the subset taskq/web/openapi.py uses (no dependency: the
suite has no jsonschema): type (one or a list), properties, required, additionalProperties
(false), items, enum, anyOf, minimum, maximum, and $ref to #/components/schemas/NAME."""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def errors(value: Any, schema: dict[str, Any], doc: dict[str, Any], where: str = "$") -> list[str]:
    """What is wrong with `value` under `schema` (refs resolved in `doc`); [] when it fits."""
    if "$ref" in schema:
        return errors(value, doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], doc, where)
    if "anyOf" in schema:
        tries = [errors(value, s, doc, where) for s in schema["anyOf"]]
        return [] if any(not t for t in tries) else [f"{where}: fits none of anyOf ({tries})"]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            return [f"{where}: {value!r} is not {' or '.join(kinds)}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    out: list[str] = []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in props:
                out += errors(v, props[k], doc, f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}: unexpected field {k!r}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += errors(item, schema["items"], doc, f"{where}[{i}]")
    return out


def response_schema(doc: dict[str, Any], template: str, method: str, status: int) -> dict[str, Any]:
    """The JSON schema the document gives for one response of one path template."""
    response = doc["paths"][template][method.lower()]["responses"][str(status)]
    return dict(response["content"]["application/json"]["schema"])
