"""The native window (pywebview): GTK WebKit2 on Linux, WebKit on macOS, WebView2 on Windows.

The shipped window uses pywebview's public API only and logs nothing about the pages it shows.
Tests that drive a real window need to know when and what a page loaded: with the test switch
CAMPUS_PORTAL_TEST_PAGE_REPORTS=1 in the environment (set by the tests' launcher harness, never
by an installer), every page reports its URL, title and timing through pywebview's JS API and
the launcher logs it as "page loaded {...}". Only that mode leans on pywebview internals (its
JS bridge, evaluate_js); a pywebview that changed them makes the window tests fail, not the
shipped app.
"""

from __future__ import annotations

import html
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from desktop import APP_TITLE
from desktop.i18n import _, direction, language
from desktop.resources import icon_path

log = logging.getLogger(__name__)

# The test switch (see the module's docstring).
PAGE_REPORTS_SWITCH = "CAMPUS_PORTAL_TEST_PAGE_REPORTS"

DEFAULT_SIZE = (1200, 800)
MIN_SIZE = (800, 600)
MAX_SIZE = (10_000, 10_000)

# Test mode only. pywebview builds the window.pywebview.api stubs with `new Function(...)`,
# which the portal's Content-Security-Policy (script-src 'self', no 'unsafe-eval') refuses; its
# injection then stops before it dispatches `pywebviewready`. This script runs from the launcher
# (not from the page, so the CSP does not apply to it), adds the same stubs as closures (no
# eval) over pywebview's own bridge, and dispatches `pywebviewready` itself.
API_SHIM_SCRIPT = """
(function () {
  var bridge = window.pywebview;
  if (!bridge || !bridge._jsApiCallback || !bridge._checkValue) { return; }
  var created = false;
  %(names)s.forEach(function (name) {
    if (typeof bridge.api[name] === 'function') { return; }
    bridge._returnValuesCallbacks[name] = bridge._returnValuesCallbacks[name] || {};
    bridge.api[name] = function () {
      var id = String(Math.random()).substring(2);
      var args = Array.prototype.slice.call(arguments);
      var promise = new Promise(function (resolve, reject) {
        bridge._checkValue(name, resolve, reject, id);
      });
      bridge._jsApiCallback(name, args, id);
      return promise;
    };
    created = true;
  });
  if (created) { window.dispatchEvent(new CustomEvent('pywebviewready')); }
})();
"""

# Test mode only. Runs in the page after each load: once pywebviewready has fired, reports what
# loaded through the JS API (the page_loaded callback), after the load event so that its timing
# is complete.
REPORT_SCRIPT = """
(function () {
  function send() {
    var nav = performance.getEntriesByType('navigation')[0];
    var heading = document.querySelector('h1');
    window.pywebview.api.page_loaded({
      url: location.href,
      title: document.title,
      heading: heading ? heading.textContent.trim() : '',
      textLength: document.body ? document.body.innerText.length : 0,
      stylesheets: document.styleSheets.length,
      innerWidth: window.innerWidth,
      innerHeight: window.innerHeight,
      timeOrigin: performance.timeOrigin,
      requestStart: nav ? nav.requestStart : 0,
      responseStart: nav ? nav.responseStart : 0,
      responseEnd: nav ? nav.responseEnd : 0,
      domInteractive: nav ? nav.domInteractive : 0,
      loadEventEnd: nav ? nav.loadEventEnd : 0
    });
  }
  function whenLoaded() {
    if (document.readyState === 'complete') { setTimeout(send, 0); }
    else { window.addEventListener('load', function () { setTimeout(send, 0); }); }
  }
  if (window.pywebview && window.pywebview.api && window.pywebview.api.page_loaded) {
    whenLoaded();
  } else {
    window.addEventListener('pywebviewready', whenLoaded, { once: true });
  }
})();
"""


class _RefusedEvalFilter(logging.Filter):
    """pywebview logs the CSP refusal above as an error on every page; it is expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Refused to evaluate a string as JavaScript" not in record.getMessage()


def page_reports_requested() -> bool:
    """True when the tests asked for page reports (CAMPUS_PORTAL_TEST_PAGE_REPORTS=1)."""
    return os.environ.get(PAGE_REPORTS_SWITCH) == "1"


def _gui() -> Literal["gtk"] | None:
    """GTK on Linux (the lean backend); elsewhere the platform's own (WebKit, WebView2)."""
    return "gtk" if sys.platform.startswith("linux") else None


def display_missing() -> str | None:
    """Why no window can be opened here, as far as the environment tells (cheap), or None."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display is available (DISPLAY and WAYLAND_DISPLAY are not set)"
    return None


def display_problem() -> str | None:
    """Why no window can be opened here, or None when one can (loads the window toolkit)."""
    missing = display_missing()
    if missing is not None:
        return missing
    try:
        import webview  # noqa: F401
    except ImportError as exc:
        return f"the window toolkit is not installed ({exc})"
    if sys.platform.startswith("linux"):
        try:
            import gi

            gi.require_version("Gtk", "3.0")
            gi.require_version("WebKit2", "4.1")
            from gi.repository import Gtk, WebKit2  # noqa: F401
        except (ImportError, ValueError) as exc:
            return f"GTK and WebKit2GTK 4.1 are not available ({exc})"
        opened = Gtk.init_check(None)
        if not (opened[0] if isinstance(opened, tuple) else opened):
            return f"the display {os.environ.get('DISPLAY', '')!r} cannot be opened"
    return None


@dataclass
class WindowState:
    """Size and position, remembered in <data dir>/window.json."""

    width: int = DEFAULT_SIZE[0]
    height: int = DEFAULT_SIZE[1]
    x: int | None = None
    y: int | None = None
    maximized: bool = False

    @classmethod
    def load(cls, path: Path) -> WindowState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = cls(
                width=int(data.get("width", DEFAULT_SIZE[0])),
                height=int(data.get("height", DEFAULT_SIZE[1])),
                x=int(data["x"]) if data.get("x") is not None else None,
                y=int(data["y"]) if data.get("y") is not None else None,
                maximized=bool(data.get("maximized", False)),
            )
        except (OSError, ValueError, TypeError, AttributeError):
            return cls()
        state.width = min(max(state.width, MIN_SIZE[0]), MAX_SIZE[0])
        state.height = min(max(state.height, MIN_SIZE[1]), MAX_SIZE[1])
        if state.x is not None and not -MAX_SIZE[0] < state.x < MAX_SIZE[0]:
            state.x = state.y = None
        if state.y is not None and not -MAX_SIZE[1] < state.y < MAX_SIZE[1]:
            state.x = state.y = None
        return state

    def save(self, path: Path) -> None:
        try:
            partial = path.with_name(path.name + ".partial")
            partial.write_text(json.dumps(asdict(self)), encoding="utf-8")
            os.replace(partial, path)
        except OSError as exc:
            log.warning("window size not saved: %s", exc)


class DesktopApi:
    """Test mode only: what the page may call through window.pywebview.api (one method)."""

    def __init__(self, on_page_loaded: Callable[[dict[str, Any]], None]) -> None:
        self._on_page_loaded = on_page_loaded

    def page_loaded(self, info: dict[str, Any]) -> None:
        if isinstance(info, dict):
            self._on_page_loaded(info)


class DesktopWindow:
    """One portal window; run() blocks in the GUI loop until the window is closed."""

    def __init__(
        self, url: str, *, title: str, state_file: Path, report_pages: bool = False
    ) -> None:
        self.url = url
        self.title = title
        self.state_file = state_file
        self.report_pages = report_pages  # the tests' switch: pages report what they show
        self.state = WindowState.load(state_file)
        self.first_load = threading.Event()
        self.first_load_info: dict[str, Any] = {}
        self._window: Any = None
        self._close_requested = False

    def _page_loaded(self, info: dict[str, Any]) -> None:
        seconds = (float(info.get("timeOrigin", 0)) + float(info.get("loadEventEnd", 0))) / 1000
        info = {**info, "loadEventEpoch": seconds}
        log.info("page loaded %s", json.dumps(info, sort_keys=True))
        if not self.first_load.is_set():
            self.first_load_info = info
            self.first_load.set()

    def run(self) -> None:
        import webview

        options: dict[str, Any] = {}
        if self.report_pages:
            log.warning(
                "test page reports are on (%s=1): page contents are logged", PAGE_REPORTS_SWITCH
            )
            logging.getLogger("pywebview").addFilter(_RefusedEvalFilter())
            options["js_api"] = DesktopApi(self._page_loaded)
        window = webview.create_window(
            self.title,
            self.url,
            **options,
            width=self.state.width,
            height=self.state.height,
            x=self.state.x,
            y=self.state.y,
            min_size=MIN_SIZE,
            maximized=self.state.maximized,
            text_select=True,
            background_color="#FFFFFF",
        )
        if window is None:
            raise RuntimeError("pywebview did not create a window")
        self._window = window
        if self._close_requested:  # asked to close while the window was being created
            return
        if self.report_pages:
            # pywebview hands JS API return values back with evaluate_js, which wraps the code
            # in eval() and is refused by the CSP; run_js runs the same code directly (no eval).
            window.evaluate_js = lambda script, callback=None: window.run_js(script)  # type: ignore[method-assign]
            window.events.loaded += self._on_loaded
        window.events.resized += self._resized
        window.events.moved += self._moved
        window.events.maximized += lambda *_: setattr(self.state, "maximized", True)
        window.events.restored += lambda *_: setattr(self.state, "maximized", False)
        webview.start(gui=_gui(), icon=str(icon_path()), private_mode=True)
        self._window = None
        self.state.save(self.state_file)

    def _on_loaded(self, *_: Any) -> None:
        window = self._window
        if window is None:
            return
        window.run_js(API_SHIM_SCRIPT % {"names": json.dumps(["page_loaded"])})
        window.run_js(REPORT_SCRIPT)

    def _resized(self, width: int, height: int) -> None:
        if not self.state.maximized and width >= MIN_SIZE[0] and height >= MIN_SIZE[1]:
            self.state.width, self.state.height = int(width), int(height)

    def _moved(self, x: int, y: int) -> None:
        if not self.state.maximized:
            self.state.x, self.state.y = int(x), int(y)

    def focus(self) -> bool:
        """Bring the window to the front (a second start asked for it)."""
        window = self._window
        if window is None:
            return False
        window.restore()
        window.show()
        return True

    def close(self) -> None:
        """Close the window from another thread (SIGTERM); run() then returns (at once when
        asked before the window was created)."""
        self._close_requested = True
        window = self._window
        if window is not None:
            window.destroy()


def show_problem(title: str, text: str) -> bool:
    """Show a launcher problem in a small window (for users who started from an icon).
    Returns False when no window could be shown."""
    if display_problem() is not None:
        return False
    import webview

    body = html.escape(text).replace("\n", "<br>")
    page = (
        f"<!doctype html><html lang='{language()}' dir='{direction()}'><head>"
        "<meta charset='utf-8'><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem;line-height:1.5;color:#212529}"
        "h1{font-size:1.4rem;color:#123d6a}code,p{word-break:break-all}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{body}</p></body></html>"
    )
    try:
        webview.create_window(
            _("%(app)s: a problem", app=APP_TITLE), html=page, width=720, height=420
        )
        webview.start(gui=_gui(), icon=str(icon_path()))
    except Exception:  # a problem window must never hide the original problem
        log.exception("could not show the problem window")
        return False
    return True
