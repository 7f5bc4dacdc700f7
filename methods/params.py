"""Typed method parameters, the one source of a method's ``params`` block.

A method declares a frozen dataclass, nanoGPT-style: one field per parameter with its type, its
default (the reference value) and a trailing comment saying what it is and where the value comes
from. Bounds the config must enforce go into :func:`param` as JSON-schema keywords. The config
schema's ``params`` fragment of the method is generated from the dataclass (:func:`params_schema`:
type, default, bounds, and the comment as description), so the dataclass is what validates a
variant, fills its defaults and documents it. What the workflow does with a parameter is a flag of
:func:`param` too, kept in the field's metadata: ``step_window=True`` (step indices of the sampler's
schedule, rescaled when the steps change) and ``keyed_by_content=True`` (a folder whose content keys
the jobs); the registry reads them with :func:`flagged_fields`.
"""
from __future__ import annotations

import copy
import inspect
import io
import tokenize
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass

JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object"}


# Field-metadata keys: the parameter's JSON-schema keywords, and its flags (see param).
SCHEMA, STEP_WINDOW, KEYED_BY_CONTENT = "schema", "step_window", "keyed_by_content"


def param(default=MISSING, *, step_window: bool = False, keyed_by_content: bool = False, **schema):
    """A parameter field with its ``default`` (none: the config must set it) and the JSON-schema
    keywords that bound it (``minimum``, ``enum``, ``items``, ...). ``step_window``: the value is a
    step index of the sampler's schedule, or a [lo, hi] pair of them (-1 = before the last step),
    rescaled when the steps change (evaluation/config/smoke.py). ``keyed_by_content``: the value
    names a folder whose content, not its path, keys the jobs (workflow/rules/common.smk)."""
    metadata = {SCHEMA: schema, STEP_WINDOW: step_window, KEYED_BY_CONTENT: keyed_by_content}
    if isinstance(default, dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def flagged_fields(cls: type, flag: str) -> tuple[str, ...]:
    """The names of the fields of the parameter dataclass ``cls`` that :func:`param` gave ``flag``
    (``STEP_WINDOW`` or ``KEYED_BY_CONTENT``), in declaration order."""
    return tuple(f.name for f in fields(cls) if f.metadata.get(flag))


@dataclass(frozen=True)
class NoParams:
    """The parameters of a method that has none (``dit``)."""


def params_schema(cls: type) -> dict:
    """The JSON-schema fragment of a variant's ``params`` for the parameter dataclass ``cls``."""
    hints, comments = typing.get_type_hints(cls), field_comments(cls)
    properties, required = {}, []
    for f in fields(cls):
        bounds = dict(f.metadata.get(SCHEMA, {}))
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
    """The comment after each field in the source of ``cls`` and of its dataclass bases (a field declared
    again takes the comment of its latest declaration), comment lines continuing it joined."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if is_dataclass(klass):
            comments.update(_declared_comments(klass))
    return comments


def _declared_comments(cls: type) -> dict[str, str]:
    """The comments of the fields that ``cls``'s own source declares."""
    comments: dict[str, list[str]] = {}
    current, line_start = None, True
    for token in tokenize.generate_tokens(io.StringIO(inspect.getsource(cls)).readline):
        if token.type == tokenize.NAME and line_start and token.string in {f.name for f in fields(cls)}:
            current = token.string
        elif token.type == tokenize.COMMENT and current:
            comments.setdefault(current, []).append(token.string.lstrip("#").strip())
        line_start = token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT)
    return {name: " ".join(lines) for name, lines in comments.items()}
