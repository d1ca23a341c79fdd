"""Till command lines without a shell: a template is split into arguments once (shlex), then each placeholder is
replaced inside its own argument. A value (a basket, an item name) can never become shell syntax, because no
shell ever reads it.

>>> render("acme-till sell --basket {basket} --tender={tender}", {"basket": "'; touch /tmp/x; '", "tender": "card"})
['acme-till', 'sell', '--basket', "'; touch /tmp/x; '", '--tender=card']

A placeholder inside quotes (`'{basket}'`) is refused: it was written for a shell that quotes around it, and
would have been an injection; so are shell operators, since no shell runs the line:

>>> try:
...     check("acme-till sell --basket '{basket}'")
... except TemplateError as exc:
...     print(exc)                                      # doctest: +ELLIPSIS
till command "acme-till sell --basket '{basket}'": placeholder {basket} is inside quotes; write it bare ...
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Iterable

SHELL_OPERATORS = "|;&<>`$"


class TemplateError(ValueError):
    """A till command template cannot be run safely; the message says what to write instead."""


def placeholders(template: str) -> list[str]:
    """The placeholder names a template uses, in order."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise TemplateError(f"till command {template!r}: {exc}") from None


def check(template: str, known: Iterable[str] | None = None) -> None:
    """Refuse a template that is not a plain argument list: a quoted placeholder, a shell operator, bad
    quoting, or (with `known`) a placeholder posrig does not fill."""
    quote = ""
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "\\" and quote != "'":
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "{" and template[i:i + 2] != "{{":
                name = template[i + 1:template.find("}", i)]
                raise TemplateError(f"till command {template!r}: placeholder {{{name}}} is inside quotes; "
                                    f"write it bare (--basket {{{name}}}): posrig passes each value as one "
                                    "argument, never through a shell")
        elif ch in "'\"":
            quote = ch
        elif ch in SHELL_OPERATORS:
            raise TemplateError(f"till command {template!r}: {ch!r} is shell syntax, but posrig runs the "
                                "command without a shell; put pipes and redirections in a script and name "
                                "the script")
        i += 1
    if quote:
        raise TemplateError(f"till command {template!r}: unbalanced {quote} quote")
    names = placeholders(template)
    if known is not None:
        unknown = [n for n in names if n not in set(known)]
        if unknown:
            raise TemplateError(f"till command {template!r} uses unknown placeholder {unknown[0]!r}; known: "
                                f"{', '.join(sorted(known))}")


def render(template: str, values: dict[str, str]) -> list[str]:
    """The argument list for `template` with `values` filled in, each inside its own argument."""
    check(template)
    out = []
    for arg in shlex.split(template):
        try:
            out.append(arg.format_map(values))
        except KeyError as exc:
            raise TemplateError(f"till command {template!r} uses unknown placeholder {exc}; known: "
                                f"{', '.join(sorted(values))}") from None
    return out
