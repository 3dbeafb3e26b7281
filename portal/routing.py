"""URL rules whose URL builders are made when url_for first needs them, not at start-up.

Werkzeug turns every rule into a matcher and two small Python functions that build its URL
(generated and compiled as code) as the rule is added. The portal has about 130 rules, and a
start paid for 260 compiled builders (about 40 ms of CPU on a 2-core laptop) that the first
page mostly never calls. Matching is unchanged; a builder is compiled the first time a URL of
its rule is built, by the same Werkzeug code, and kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.routing import Rule


class LazyBuilderRule(Rule):
    """A Werkzeug rule that compiles its URL builders on first use (Flask's url_rule_class)."""

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        compile_builder = super()._compile_builder
        attribute = "_build_unknown" if append_unknown else "_build"

        def build_first(rule: Rule, *args: Any, **kwargs: Any) -> tuple[str, str]:
            # Two threads may both get here: each compiles the same builder, either is kept.
            builder: Callable[..., tuple[str, str]]
            builder = compile_builder(append_unknown).__get__(rule, None)
            setattr(rule, attribute, builder)
            return builder(*args, **kwargs)

        return build_first
