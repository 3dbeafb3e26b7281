"""Fill the form a page really renders, as a browser would, and submit it.

    page = client.get("/login")
    form = rendered_form(page, action="/login")
    response = form.submit(client, username="ada", password="secret")

Only fields the page renders can be filled: a name the template no longer has (a renamed
field) raises, so the test fails instead of posting a field nobody reads. Hidden fields (the
CSRF token) and pre-filled values are sent as the page has them; a checkbox or radio button is
sent when checked, a <select> sends its selected option (else its first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from werkzeug.datastructures import MultiDict


@dataclass
class RenderedForm:
    action: str
    method: str
    attributes: dict[str, str]
    values: dict[str, list[str]] = field(default_factory=dict)  # what the page would send
    names: set[str] = field(default_factory=set)  # every field the page renders
    options: dict[str, list[str]] = field(default_factory=dict)  # choices of selects/radios

    def fill(self, **values: Any) -> RenderedForm:
        """Set fields by name (keyword arguments; use `fill_fields` for names that are not
        Python identifiers, such as the gradebook's `m.<student>.<assessment>`)."""
        return self.fill_fields(values)

    def fill_fields(self, values: dict[str, Any]) -> RenderedForm:
        for name, value in values.items():
            if name not in self.names:
                raise KeyError(f"the form has no field {name!r}; it has {sorted(self.names)}")
            wanted = [str(item) for item in value] if isinstance(value, list) else [str(value)]
            choices = self.options.get(name)
            if choices is not None and any(item not in choices for item in wanted):
                raise ValueError(f"{name!r} offers {choices}, not {wanted}")
            self.values[name] = wanted
        return self

    def data(self) -> list[tuple[str, str]]:
        return [(name, value) for name, items in self.values.items() for value in items]

    def submit(self, client: Any, **values: Any) -> Any:
        """Fill `values`, then send the form with its own method to its own action."""
        self.fill(**values)
        data = MultiDict(self.data())
        if self.method == "get":
            return client.get(self.action, query_string=data)
        return client.open(self.action, method=self.method.upper(), data=data)


class _FormParser(HTMLParser):
    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.forms: list[RenderedForm] = []
        self._form: RenderedForm | None = None
        self._select: str | None = None
        self._select_first: str | None = None
        self._option: dict[str, str] | None = None
        self._option_text = ""
        self._textarea: str | None = None
        self._textarea_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag == "form":
            action = urljoin(self.page_url, attributes.get("action") or self.page_url)
            parts = urlsplit(action)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            method = (attributes.get("method") or "get").lower()
            self._form = RenderedForm(path, method, attributes)
            self.forms.append(self._form)
            return
        form = self._form
        if form is None or "disabled" in attributes:
            return
        name = attributes.get("name")
        if tag == "input" and name:
            kind = attributes.get("type", "text").lower()
            if kind in {"submit", "button", "image", "reset", "file"}:
                return
            form.names.add(name)
            if kind in {"checkbox", "radio"}:
                form.options.setdefault(name, []).append(attributes.get("value", "on"))
                if "checked" in attributes:
                    form.values.setdefault(name, []).append(attributes.get("value", "on"))
                return
            form.values.setdefault(name, []).append(attributes.get("value", ""))
        elif tag == "select" and name:
            form.names.add(name)
            form.options[name] = []
            self._select, self._select_first = name, None
        elif tag == "option" and self._select is not None:
            self._option, self._option_text = attributes, ""
        elif tag == "textarea" and name:
            form.names.add(name)
            self._textarea, self._textarea_text = name, ""

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option_text += data
        if self._textarea is not None:
            self._textarea_text += data

    def handle_endtag(self, tag: str) -> None:
        form = self._form
        if tag == "form":
            self._form = None
        elif tag == "option" and self._option is not None and form is not None and self._select:
            value = self._option.get("value", self._option_text.strip())
            form.options[self._select].append(value)
            if self._select_first is None:
                self._select_first = value
            if "selected" in self._option:
                form.values[self._select] = [value]
            self._option = None
        elif tag == "select" and self._select is not None and form is not None:
            if self._select not in form.values and self._select_first is not None:
                form.values[self._select] = [self._select_first]
            self._select = None
        elif tag == "textarea" and self._textarea is not None and form is not None:
            form.values[self._textarea] = [self._textarea_text.removeprefix("\n")]
            self._textarea = None


def rendered_forms(page: Any, url: str = "/") -> list[RenderedForm]:
    """Every form of a response (or HTML text) served at `url`."""
    html = page if isinstance(page, str) else page.get_data(as_text=True)
    parser = _FormParser(getattr(page, "request", None) and page.request.path or url)
    parser.feed(html)
    return parser.forms


def rendered_form(page: Any, *, action: str | None = None, id: str | None = None) -> RenderedForm:
    """The one form of `page` posting to `action` (a path) or with this `id`."""
    forms = rendered_forms(page)
    found = [
        form
        for form in forms
        if (action is None or form.action == action)
        and (id is None or form.attributes.get("id") == id)
    ]
    if len(found) != 1:
        described = [(form.action, form.attributes.get("id")) for form in forms]
        raise LookupError(f"{len(found)} forms match action={action!r} id={id!r}: {described}")
    return found[0]
