"""Command-line options generated from the library's config dataclasses.

Each field becomes ``--field-name``; its help is the field's docstring (the string literal under
it, which Python does not keep at run time, so it is read from the class source with :mod:`ast`),
its parser the field's type unless the command names a stricter one, its choices the library's own
tuple. Every generated option defaults to ``None``, so an option not given keeps the value of the
recipe or Table 3 (``DistillConfig.for_task`` ignores ``None``).

Plain argparse rather than tyro or simple-parsing: the CLI's one-line errors, lazy imports and the
options every command shares (``--threads``, ``--json``, ``--task``) stay as they are, and this is
the whole of the glue.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import textwrap
from dataclasses import fields
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

_PARSERS: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str}


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` of a dataclass, from the string literals under its fields, its base
    classes' included (empty where the source is not installed, e.g. a bytecode-only install: the
    options then have no help text)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):  # a subclass's docstring wins
        docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def plain(doc: str) -> str:
    """A docstring as one line of ``--help`` text (reST roles and literals unwrapped, ``%`` escaped)."""
    doc = re.sub(r":[a-z]+:`~?(?:[\w.]+\.)?([\w]+)`", r"\1", doc)
    doc = doc.replace("``", "").replace("%", "%%")
    return " ".join(doc.split())


def add_fields(p: argparse.ArgumentParser, cls: type, names: Sequence[str], *,
               types: Mapping[str, Callable[[str], Any]] | None = None,
               choices: Mapping[str, Sequence[str]] | None = None,
               metavars: Mapping[str, str] | None = None, negate: Sequence[str] = (),
               flags: Mapping[str, str] | None = None, required: Sequence[str] = (),
               switch: Sequence[str] = (), both: Sequence[str] = (), defaults: bool = False) -> None:
    """Add ``--name`` for each field in ``names`` (``--no-name`` for those in ``negate``, boolean
    fields that default to True and that an option switches off; ``--name`` alone for those in
    ``switch``, boolean fields that default to False; ``--name`` and ``--no-name`` for those in
    ``both``, boolean fields whose default a recipe sets either way; ``flags`` renames an option;
    ``required`` options must be given; ``defaults``: each help ends with the field's default, for
    configs whose defaults do not depend on a recipe or a task)."""
    docs, known = field_docs(cls), {f.name: f for f in fields(cls)}
    types, choices, metavars, flags = types or {}, choices or {}, metavars or {}, flags or {}
    for name in names:
        f = known[name]  # KeyError here is a programming error: the command names a field that is gone
        text = plain(docs.get(name, ""))
        if defaults and f.default is not None and name not in required and name not in (*negate, *switch, *both):
            text += f" (default {f.default})"
        if name in negate:
            flag = flags.get(name, f"--no-{name.replace('_', '-')}")
            p.add_argument(flag, dest=name, action="store_const", const=False,
                           default=None, help=f"sets {name} to False. {text}")
            continue
        if name in both:
            p.add_argument("--" + name.replace("_", "-"), dest=name, action=argparse.BooleanOptionalAction,
                           default=None, help=f"sets {name} to True (--no-...: False). {text}")
            continue
        if name in switch:
            p.add_argument(flags.get(name, "--" + name.replace("_", "-")), dest=name, action="store_const",
                           const=True, default=None, help=f"sets {name} to True. {text}")
            continue
        flag = flags.get(name, "--" + name.replace("_", "-"))
        kind = str(f.type).replace(" | None", "").replace("Optional[", "").rstrip("]")
        p.add_argument(flag, dest=name, type=types.get(name, _PARSERS.get(kind, str)), default=None,
                       choices=choices.get(name), metavar=metavars.get(name), help=text,
                       required=name in required)


def field_names(cls: type) -> tuple[str, ...]:
    """Every field of a dataclass, in declaration order (commands whose options are all of them)."""
    return tuple(f.name for f in fields(cls))


def field_values(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The values of the generated options, ``None`` where not given."""
    return {name: getattr(args, name) for name in names}


def config_from(cls: type, args: argparse.Namespace, names: Sequence[str], **extra: Any):
    """``cls`` built from the generated options (not given: the field's default) and ``extra``,
    validated (:func:`digr.evaluation.settings.from_options`)."""
    from digr.evaluation.settings import from_options

    return from_options(cls, **field_values(args, names), **extra)


__all__ = ["add_fields", "config_from", "field_docs", "field_names", "field_values", "plain"]
