"""Text of the templates that a person reads and that is not marked for translation.

Each template is cut by Jinja's own lexer: what is inside `{% trans %}...{% endtrans %}` is
marked; every other piece of template text (a `data` token) is read as HTML with the Jinja
constructs between them replaced by a placeholder. Unmarked are: text between tags, and the
attributes a person sees or hears (title, alt, placeholder, aria-label, ..., data-confirm and
data-label, the button labels of `value`). Text with no letter is no word ("—", "·", "%").
Left alone: <code>, <kbd>, <samp>, <pre>, <style>, <script> content, and any element marked
`translate="no"` (the HTML attribute for text that stays as it is: names of programs, code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from jinja2 import Environment

PLACEHOLDER = "\ue000"  # a Jinja expression or statement between two pieces of text
SPOKEN_ATTRIBUTES = frozenset(
    {
        "title",
        "alt",
        "placeholder",
        "aria-label",
        "aria-description",
        "aria-roledescription",
        "aria-valuetext",
        "label",
        "data-confirm",
        "data-label",
    }
)
NOT_TRANSLATED = frozenset({"code", "kbd", "samp", "pre", "style", "script"})
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Unmarked:
    template: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.template}:{self.line}: {self.text!r}"


def _words(text: str) -> str:
    """The text without placeholders and surplus space, when it holds a letter; else ""."""
    cleaned = " ".join(text.replace(PLACEHOLDER, " ").split())
    return cleaned if LETTER.search(cleaned) else ""


GETTEXT = frozenset({"_", "gettext", "ngettext", "pgettext", "npgettext"})
# A string in an expression reads as words to a person when it starts with a capital letter
# followed by small ones ("Never", "Department") or ends a sentence; CSS classes, endpoints and
# formats do not ("btn btn-primary", "main.index", "%d %b %Y").
PROSE = re.compile(r"(^|\s)[A-Z][a-z]+\b|[a-z][.?!]$")


def unmarked_strings(env: Environment, source: str, name: str) -> list[Unmarked]:
    """String literals of expressions that read as words, outside a gettext call."""
    found: list[Unmarked] = []
    depth = 0  # parentheses open since the innermost gettext call began (0: none)
    previous = ""
    for line, kind, value in env.lex(source):
        if kind in ("whitespace", "comment", "linecomment"):
            continue
        if kind == "operator" and value == "(":
            if depth or previous in GETTEXT:
                depth += 1
        elif kind == "operator" and value == ")" and depth:
            depth -= 1
        elif kind == "string" and not depth:
            text = value[1:-1]
            if PROSE.search(text) and LETTER.search(text):
                found.append(Unmarked(name, line, f"string {text}"))
        previous = value if kind == "name" else ""
    return found


def unmarked_source(env: Environment, source: str) -> str:
    """The template with every Jinja construct and marked text replaced by placeholders (line
    breaks kept, so that positions stay right)."""
    pieces: list[str] = []
    in_trans = False
    expect_name = False
    for _line, kind, value in env.lex(source):
        if kind == "data" and not in_trans:
            pieces.append(value)
            continue
        if kind == "block_begin":
            expect_name = True
        elif kind == "name" and expect_name:
            if value == "trans":
                in_trans = True
            elif value == "endtrans":
                in_trans = False
            expect_name = False
        elif kind not in ("whitespace",):
            expect_name = expect_name and kind == "whitespace"
        pieces.append(PLACEHOLDER + "\n" * value.count("\n"))
    return "".join(pieces)


class _Reader(HTMLParser):
    def __init__(self, name: str) -> None:
        super().__init__(convert_charrefs=True)
        self.name = name
        self.found: list[Unmarked] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, text left alone)

    def _skipped(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        skipped = self._skipped() or tag in NOT_TRANSLATED or attributes.get("translate") == "no"
        if not skipped:
            for name, value in attrs:
                spoken = name in SPOKEN_ATTRIBUTES or (
                    # an <input>'s button label; a <button>'s value is sent, never shown
                    tag == "input"
                    and name == "value"
                    and attributes.get("type") in ("submit", "button", "reset")
                )
                if spoken and value and (words := _words(value)):
                    self.found.append(Unmarked(self.name, self.getpos()[0], f"{name}={words}"))
        if tag not in VOID:
            self.stack.append((tag, skipped))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        if not self._skipped() and (words := _words(data)):
            self.found.append(Unmarked(self.name, self.getpos()[0], words))


def unmarked_text(env: Environment, root: Path) -> list[Unmarked]:
    """Every piece of unmarked text of the templates under `root`, with file and line."""
    found: list[Unmarked] = []
    for path in sorted(root.rglob("*.html")):
        name = str(path.relative_to(root))
        source = path.read_text(encoding="utf-8")
        reader = _Reader(name)
        reader.feed(unmarked_source(env, source))
        reader.close()
        found.extend(reader.found)
        found.extend(unmarked_strings(env, source, name))
    return found
