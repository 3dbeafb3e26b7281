"""Finds user-facing text in Python source that is not marked for translation.

An AST walk: at each place where Python hands text to a person (a sink), the text must come from
a gettext call (`_`, `_l`, `ngettext`, ...), not from a bare string literal or an f-string. The
sinks:

- `flash(text, ...)`;
- WTForms fields (`...Field(label, description=..., choices=[(value, label)], render_kw=
  {"placeholder": ...})`) and any validator's `message=`;
- the portal's user-facing exceptions (`portal.errors.PortalError` and every class derived from
  it, the desktop's `LauncherProblem` and its subclasses): every argument and dict value;
- the error pages and the API's problem details: `problem(title=, detail=)`, `abort(code, text)`,
  `_render(status, title, message)`;
- the desktop's windows and pages: `show_problem(title, text)`, `<PAGE>.format(title=, body=,
  text=)`;
- the sync status a person reads: `SyncError(text)`, `SyncStopped(text)`.

A name passed to a sink is followed to its assignments in the same function (or at module
level), so `message = "Saved." if ok else "Not saved."; flash(message)` is found too.
Text is "words": at least two letters in a row (codes such as "x", "%" or "" are not text).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

GETTEXT_NAMES = frozenset(
    {
        "_",
        "_l",
        "gettext",
        "lazy_gettext",
        "ngettext",
        "lazy_ngettext",
        "pgettext",
        "lazy_pgettext",
        "npgettext",
        "N_",
    }
)
PLACEHOLDER = re.compile(r"%\((\w+)\)")
LATER_FILLED = frozenset({"_l", "lazy_gettext", "N_"})
CODE = re.compile(r"^(?=\S*[_:/])\S+$")
WORDS = re.compile(r"[^\W\d_]{2,}")
# Markup and placeholders are not words: "<p>{}</p>", "%(name)s".
NOT_WORDS = re.compile(r"<[^>]*>|\{[^}]*\}|%\([^)]*\)[a-z]|&[a-z]+;")

# Function name -> (positional argument indexes, keyword names) that a person reads.
SINK_CALLS: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    "flash": ((0,), ("message",)),
    "problem": ((), ("title", "detail")),
    "abort": ((1,), ("description",)),
    "_render": ((1, 2), ("title", "message")),
    "show_problem": ((0, 1), ("title", "text")),
    "SyncError": ((0,), ("message",)),
    "SyncStopped": ((0,), ("message",)),
    "render_template": ((), ("title", "message", "heading")),
    # The button beside a success message (portal/web.py).
    "Undo": ((), ("label", "note")),
    # The top bar's entries (portal/main/templating.py), translated where they are shown.
    "NavItem": ((1,), ("label",)),
    # Form helpers that make a password field from a label.
    "new_password_field": ((0,), ("description",)),
    "repeat_password_field": ((0,), ()),
    # The CSV import's report (admin/csv_import.py): a problem's message, a note, a column's
    # meaning and an import kind's name (both shown on the import page).
    "add": ((2,), ("message",)),
    "Column": ((2,), ("help",)),
    "ImportKind": ((1,), ("label",)),
}
# Keys of the dicts handed to pages and scripts whose value a person reads (a chart's series,
# a JSON error's title and detail).
SHOWN_KEYS = frozenset({"label", "title", "detail", "message", "headline"})
# Collections of messages for a person: `errors["field"] = text`, `problems.append(text)`.
MESSAGE_COLLECTIONS = frozenset({"errors", "problems", "warnings", "notes", "messages"})
# Validators (WTForms, Flask-WTF) whose message may be given by position: its index.
VALIDATOR_MESSAGE_POSITION = {
    "DataRequired": 0,
    "InputRequired": 0,
    "FileRequired": 0,
    "Email": 0,
    "EqualTo": 1,
    "FileAllowed": 1,
    "Length": 2,
    "NumberRange": 2,
    "Regexp": 2,
    "FileSize": 2,
    "AnyOf": 1,
    "NoneOf": 1,
}
# `<anything>.format(...)` keywords that fill the desktop's own HTML pages.
PAGE_FORMAT_KEYWORDS = ("title", "body", "text")
FIELD_KEYWORDS = ("label", "description")
RENDER_KW_KEYS = ("placeholder", "title", "aria-label")
# The roots of the exception classes whose message is shown to a person.
USER_FACING_EXCEPTION_ROOTS = frozenset({"PortalError", "LauncherProblem"})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    text: str
    sink: str
    column: int = 0
    problem: str = "is not marked for translation"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.sink}: {self.text!r} {self.problem}".rstrip()


def call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def is_text(value: str) -> bool:
    if CODE.match(value):
        return False  # a code for machines: "invalid_grant", "urn:...", "admin.term_create"
    return bool(WORDS.search(NOT_WORDS.sub(" ", value)))


def _literal_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value if is_text(node.value) else None
    if isinstance(node, ast.JoinedStr):
        parts = [
            part.value
            for part in node.values
            if isinstance(part, ast.Constant) and isinstance(part.value, str)
        ]
        joined = "{}".join(parts)
        return joined if is_text(joined) else None
    return None


def exception_classes(trees: Iterable[ast.Module]) -> set[str]:
    """The names of the classes derived (by name, across every module) from the roots."""
    bases: dict[str, set[str]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names = set()
                for base in node.bases:
                    if isinstance(base, ast.Name):
                        names.add(base.id)
                    elif isinstance(base, ast.Attribute):
                        names.add(base.attr)
                bases.setdefault(node.name, set()).update(names)
    found = set(USER_FACING_EXCEPTION_ROOTS)
    changed = True
    while changed:
        changed = False
        for name, parents in bases.items():
            if name not in found and parents & found:
                found.add(name)
                changed = True
    return found


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.Module, exceptions: set[str]) -> None:
        self.path = path
        self.tree = tree
        self.exceptions = exceptions
        self.findings: list[Finding] = []
        self.scopes: list[ast.AST] = [tree]
        self.seen: set[tuple[int, int]] = set()

    # Scopes: a name is followed to its assignments in the innermost function, else the module.
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._shadowing(node)
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._shadowing(node)
        self.generic_visit(node)

    def _shadowing(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        """`_` bound in a function that also calls `_(...)`: the call gets the bound value
        (`values, _ = ...`, `lambda _: _("...")`), not gettext."""
        bound = [arg.arg for arg in ast.walk(node.args) if isinstance(arg, ast.arg)]
        body = node.body if isinstance(node.body, list) else [node.body]
        calls = []
        for statement in body:
            for inner in _own_scope(statement):
                if (
                    isinstance(inner, ast.Name)
                    and inner.id == "_"
                    and isinstance(inner.ctx, ast.Store)
                ):
                    bound.append("_")
                if (
                    isinstance(inner, ast.Call)
                    and isinstance(inner.func, ast.Name)
                    and inner.func.id == "_"
                ):
                    calls.append(inner)
        if "_" in bound and calls:
            self.findings.append(
                Finding(
                    self.path,
                    calls[0].lineno,
                    "_",
                    "`_` is bound in this function, so _() is not gettext",
                    problem="",
                )
            )

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def _assigned(self, name: str) -> Iterator[ast.AST]:
        for scope in (self.scopes[-1], self.tree):
            body = scope.body if isinstance(scope, ast.Module) else [scope]
            for statement in body:
                for node in ast.walk(statement):
                    if (
                        isinstance(node, ast.Assign)
                        and any(
                            isinstance(target, ast.Name) and target.id == name
                            for target in node.targets
                        )
                        or (
                            isinstance(node, ast.AnnAssign | ast.AugAssign)
                            and isinstance(node.target, ast.Name)
                            and node.target.id == name
                            and node.value is not None
                        )
                    ) and node.value is not None:
                        yield node.value
            if scope is self.tree:
                break

    def bare(self, node: ast.AST | None, sink: str, depth: int = 0) -> None:
        """Report the unmarked text that `node` may evaluate to."""
        if node is None or depth > 4:
            return
        text = _literal_text(node)
        if text is not None:
            key = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
            if key not in self.seen:
                self.seen.add(key)
                line, column = key
                self.findings.append(Finding(self.path, line, text, sink, column))
            return
        if isinstance(node, ast.BinOp):  # "..." + x, "... %s" % x
            self.bare(node.left, sink, depth)
            self.bare(node.right, sink, depth)
        elif isinstance(node, ast.IfExp):
            self.bare(node.body, sink, depth)
            self.bare(node.orelse, sink, depth)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self.bare(value, sink, depth)
        elif isinstance(node, ast.Call):
            name = call_name(node)
            if name in GETTEXT_NAMES:
                return
            if name in {"format", "join", "strip", "rstrip", "lstrip"} and isinstance(
                node.func, ast.Attribute
            ):
                self.bare(node.func.value, sink, depth)  # "Hello {}".format(...)
                if name == "join":
                    for arg in node.args:
                        self.bare(arg, sink, depth)
        elif isinstance(node, ast.Dict):  # FieldErrors(errors or {"field": "message"})
            for value in node.values:
                self.bare(value, sink, depth)
        elif isinstance(node, ast.List | ast.Tuple):
            for element in node.elts:
                self.bare(element, sink, depth)
        elif isinstance(node, ast.Lambda):  # message=lambda saved: f"{saved} added."
            self.bare(node.body, sink, depth)
        elif isinstance(node, ast.Name):
            for assigned in self._assigned(node.id):
                self.bare(assigned, sink, depth + 1)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value in SHOWN_KEYS:
                self.bare(value, f"{{{key.value!r}: ...}}")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if isinstance(target, ast.Subscript) and _collection(target.value):
                self.bare(node.value, f"{_collection(target.value)}[...] =")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if call_name(node) in GETTEXT_NAMES:
            for keyword in node.keywords:
                if isinstance(keyword.value, ast.JoinedStr):  # pybabel extract warns on each
                    self.findings.append(
                        Finding(
                            self.path,
                            keyword.value.lineno,
                            keyword.arg or "",
                            "an f-string among a message's values: use format(value, spec)",
                            keyword.value.col_offset,
                            "",
                        )
                    )
        if call_name(node) in GETTEXT_NAMES:
            self._placeholders(node)
        if call_name(node) in GETTEXT_NAMES and node.args and _formatted(node.args[0]):
            self.findings.append(
                Finding(
                    self.path,
                    node.lineno,
                    ast.unparse(node.args[0])[:80],
                    'text formatted before it is looked up: use _("... %(name)s", name=...)',
                    node.col_offset,
                    "",
                )
            )
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in {"append", "insert"}
            and _collection(node.func.value)
            and node.args
        ):
            self.bare(node.args[-1], f"{_collection(node.func.value)}.{node.func.attr}()")
        name = call_name(node)
        positions, keywords = SINK_CALLS.get(name, ((), ()))
        if name == "abort" and node.args and not isinstance(node.args[0], ast.Constant | ast.Name):
            positions = ()  # abort(response) of another library: not a status and a text
        for index in positions:
            if index < len(node.args):
                self.bare(node.args[index], f"{name}()")
        for keyword in node.keywords:
            if keyword.arg in keywords:
                self.bare(keyword.value, f"{name}({keyword.arg}=)")
            elif keyword.arg == "message" and name not in SINK_CALLS:
                self.bare(keyword.value, f"{name}(message=)")  # a validator's message
        if (
            name == "Length"
            and isinstance(node.func, ast.Name)
            and len(node.args) < 3
            and not any(keyword.arg == "message" for keyword in node.keywords)
        ):
            self.findings.append(
                Finding(
                    self.path,
                    node.lineno,
                    "Length(...)",
                    "WTForms' Arabic catalogue lacks most plural forms of Length's messages: "
                    "use portal.validators.length, or give message=",
                    node.col_offset,
                    "",
                )
            )
        position = VALIDATOR_MESSAGE_POSITION.get(name)
        if position is not None and position < len(node.args):
            self.bare(node.args[position], f"{name}(message)")
        if name.endswith("Field") and name[:1].isupper():
            self._field(node, name)
        if name in self.exceptions:
            for arg in node.args:
                self._exception_argument(arg, name)
            for keyword in node.keywords:
                self._exception_argument(keyword.value, f"{name}({keyword.arg}=)")
        if name == "format" and isinstance(node.func, ast.Attribute):
            for keyword in node.keywords:
                if keyword.arg in PAGE_FORMAT_KEYWORDS:
                    self.bare(keyword.value, f"page .format({keyword.arg}=)")
        self.generic_visit(node)

    def _placeholders(self, node: ast.Call) -> None:
        """Each `%(name)s` of a message has its value: `_("%(user)s", user=...)`. A lazy one
        with no values is filled in later (`str(CONSTANT) % {...}`, WTForms' Length)."""
        texts = [
            arg.value
            for arg in node.args
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
        ]
        wanted = {name for text in texts for name in PLACEHOLDER.findall(text)}
        given = {keyword.arg for keyword in node.keywords}
        if "ngettext" in call_name(node):
            given.add("num")
        if None in given or (not node.keywords and call_name(node) in LATER_FILLED):
            return
        if missing := wanted - given:
            self.findings.append(
                Finding(
                    self.path,
                    node.lineno,
                    ", ".join(sorted(missing)),
                    "a placeholder of this message has no value",
                    node.col_offset,
                    "",
                )
            )

    def _exception_argument(self, arg: ast.AST, name: str) -> None:
        if isinstance(arg, ast.Dict):  # FieldErrors({"field": "message"})
            for value in arg.values:
                self.bare(value, f"{name}()")
        else:
            self.bare(arg, f"{name}()")

    def _field(self, node: ast.Call, name: str) -> None:
        if node.args:
            self.bare(node.args[0], f"{name}(label)")
        for keyword in node.keywords:
            if keyword.arg in FIELD_KEYWORDS:
                self.bare(keyword.value, f"{name}({keyword.arg}=)")
            elif keyword.arg == "choices" and isinstance(keyword.value, ast.List | ast.Tuple):
                for choice in keyword.value.elts:
                    if isinstance(choice, ast.Tuple) and len(choice.elts) == 2:
                        self.bare(choice.elts[1], f"{name}(choices=)")
            elif keyword.arg == "render_kw" and isinstance(keyword.value, ast.Dict):
                for key, value in zip(keyword.value.keys, keyword.value.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value in RENDER_KW_KEYS:
                        self.bare(value, f"{name}(render_kw={key.value})")


def _own_scope(node: ast.AST) -> Iterator[ast.AST]:
    """`node` and what it holds, without nested functions and comprehensions (own scopes)."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(
            child,
            ast.FunctionDef
            | ast.AsyncFunctionDef
            | ast.Lambda
            | ast.ClassDef
            | ast.ListComp
            | ast.SetComp
            | ast.DictComp
            | ast.GeneratorExp,
        ):
            yield from _own_scope(child)


def _formatted(node: ast.AST) -> bool:
    """An f-string, `"..." % x`, `"..." + x` or `"...".format(x)`: not a catalogue's msgid."""
    if isinstance(node, ast.JoinedStr | ast.BinOp):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def _collection(node: ast.AST) -> str:
    """The name of a collection of messages (`errors`, `report.notes`), else ""."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return name if name in MESSAGE_COLLECTIONS else ""


def check_sources(sources: dict[str, str], exceptions: set[str] | None = None) -> list[Finding]:
    """The findings in `sources` ({path: Python source})."""
    trees = {path: ast.parse(source, filename=path) for path, source in sources.items()}
    if exceptions is None:
        exceptions = exception_classes(trees.values())
    findings: list[Finding] = []
    for path, tree in trees.items():
        checker = _Checker(path, tree, exceptions)
        checker.visit(tree)
        findings.extend(checker.findings)
    return sorted(findings, key=lambda f: (f.path, f.line))


def python_files(root: Path, folders: Iterable[str], skip: Iterable[str] = ()) -> dict[str, str]:
    skipped = tuple(skip)
    sources = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith(skipped):
                continue
            sources[relative] = path.read_text(encoding="utf-8")
    return sources


# What `pybabel extract` must be given besides its defaults (`_`, `gettext`, `ngettext`, `N_`,
# ...): the lazy forms the forms and module-level constants use.
EXTRA_KEYWORDS = {"_l": None, "lazy_gettext": None, "lazy_ngettext": (1, 2)}


def extracted_messages(root: Path) -> set[str]:
    """The msgids (singular and plural) pybabel extracts from portal/ and desktop/ Python code
    with EXTRA_KEYWORDS (as portal/translations/babel.cfg maps them)."""
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir

    keywords = {**DEFAULT_KEYWORDS, **EXTRA_KEYWORDS}
    found: set[str] = set()
    for folder in ("portal", "desktop"):
        for _filename, _line, message, _comments, _context in extract_from_dir(
            root / folder,
            method_map=[("**/migrations/**.py", "ignore"), ("**.py", "python")],
            keywords=keywords,
        ):
            found.update([message] if isinstance(message, str) else message)
    return found
