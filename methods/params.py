"""Typed method parameters, the one source of a method's ``params`` block.

A method declares a frozen dataclass, nanoGPT-style: one field per parameter with its type, its
default (the reference value) and a trailing comment saying what it is and where the value comes
from. Bounds the config must enforce go into :func:`param` as JSON-schema keywords. The config
schema's ``params`` fragment of the method is generated from the dataclass (:func:`params_schema`:
type, default, bounds, and the comment as description), so the dataclass is what validates a
variant, fills its defaults and documents it.
"""
from __future__ import annotations

import copy
import inspect
import io
import tokenize
import typing
from dataclasses import MISSING, dataclass, field, fields

JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object"}


def param(default=MISSING, **schema):
    """A parameter field with its ``default`` (none: the config must set it) and the JSON-schema
    keywords that bound it (``minimum``, ``enum``, ``items``, ...)."""
    if isinstance(default, dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=schema)
    return field(default=default, metadata=schema)


@dataclass(frozen=True)
class NoParams:
    """The parameters of a method that has none (``dit``)."""


def params_schema(cls: type) -> dict:
    """The JSON-schema fragment of a variant's ``params`` for the parameter dataclass ``cls``."""
    hints, comments = typing.get_type_hints(cls), field_comments(cls)
    properties, required = {}, []
    for f in fields(cls):
        bounds = dict(f.metadata)
        prop = json_type(hints[f.name])
        if "items" in bounds:
            prop["items"] = {**prop["items"], **bounds.pop("items")}
        prop.update(bounds)
        if f.default is not MISSING:
            prop["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
        elif f.default_factory is not MISSING:
            prop["default"] = f.default_factory()
        else:
            required.append(f.name)
        prop["description"] = comments.get(f.name, "")
        properties[f.name] = prop
    schema = {"additionalProperties": False, "properties": properties}
    return {**schema, "required": required} if required else schema


def json_type(hint) -> dict:
    """``int`` -> integer, ``tuple[int, int]`` -> an array of two integers, and so on."""
    if typing.get_origin(hint) is tuple:
        items = typing.get_args(hint)
        return {"type": "array", "items": json_type(items[0]), "minItems": len(items), "maxItems": len(items)}
    return {"type": JSON_TYPES[hint]}


def field_comments(cls: type) -> dict[str, str]:
    """The comment after each field of ``cls``'s source, comment lines continuing it joined."""
    comments: dict[str, list[str]] = {}
    current, line_start = None, True
    for token in tokenize.generate_tokens(io.StringIO(inspect.getsource(cls)).readline):
        if token.type == tokenize.NAME and line_start and token.string in {f.name for f in fields(cls)}:
            current = token.string
        elif token.type == tokenize.COMMENT and current:
            comments.setdefault(current, []).append(token.string.lstrip("#").strip())
        line_start = token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT)
    return {name: " ".join(lines) for name, lines in comments.items()}
