# Campus Portal. `make run` and `make test` set up everything they need on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_RUN := python3-venv
# The window on Linux: WebKitGTK for pywebview, and what pip needs to build PyGObject and pycairo
# (the `desktop` extra) when no wheel fits. tests/desktop/test_make_targets.py checks it against
# the files those builds read.
APT_WINDOW := gcc python3-dev pkg-config libcairo2-dev libgirepository1.0-dev gir1.2-webkit2-4.1
APT_TEST := chromium xvfb xauth imagemagick nginx pgbouncer openssl nsis msitools slapd
VENDOR := portal/static/vendor
ASSETS := portal/assets
AXE := tests/browser/node_modules/axe-core/axe.min.js
OIDC_PROVIDER := tests/auth/oidc_provider/node_modules/oidc-provider/package.json

.PHONY: run test lint bench assets catalogues messages system-deps system-deps-window system-deps-test clean help

help:
	@echo "make run    serve the portal with demo data (a window when a display exists)"
	@echo "make test   lint, type-check, layer contracts and the whole test suite"
	@echo "make bench  benchmarks on the large demo data (SQLite and PostgreSQL)"

# Debian packages: installed only when missing.
system-deps:
	@missing=$$(for p in $(APT_RUN); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

system-deps-window:
	@missing=$$(for p in $(APT_WINDOW); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "Installing Debian packages for the window:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
	  || echo "warning: could not install$$missing"; fi

system-deps-test: system-deps system-deps-window
	@missing=$$(for p in $(APT_TEST); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[server,test]'
	@touch $@

# Not marked done when it fails, so that the next `make run` tries again.
$(VENV)/.desktop: $(STAMP) | system-deps-window
	@if $(BIN)/python -m pip install -q -e '.[desktop]'; then touch $@; else \
	  missing=$$(for p in $(APT_WINDOW); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  echo "warning: the window toolkit (PyGObject, pycairo, pywebview) could not be installed;" \
	    "the portal will run headless."; \
	  if [ -n "$$missing" ]; then echo "Missing Debian packages:" $$missing; \
	    echo "Install them (sudo apt-get install" $$missing") and run make run again."; \
	  else echo "The Debian packages it needs are installed: see pip's message above."; fi; fi

# Front-end libraries come from the npm registry into portal/static/vendor (not committed).
assets: $(VENDOR)/.built
$(VENDOR)/.built: $(ASSETS)/package.json $(ASSETS)/package-lock.json $(ASSETS)/vendor.txt
	cd $(ASSETS) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@grep -v '^#' $(ASSETS)/vendor.txt | while read -r src dest; do \
	  [ -n "$$src" ] || continue; mkdir -p $(VENDOR)/$$(dirname $$dest); \
	  cp $(ASSETS)/node_modules/$$src $(VENDOR)/$$dest; done
	@touch $@

# The translations: portal/translations/<lang>/LC_MESSAGES/messages.po are the source, compiled
# here to the .mo files the portal reads (not committed). Without them the portal is in English.
TRANSLATIONS := portal/translations
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard $(TRANSLATIONS)/*/LC_MESSAGES/messages.po))
catalogues: $(CATALOGUES)
$(TRANSLATIONS)/%/LC_MESSAGES/messages.mo: $(TRANSLATIONS)/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile -l $* -i $< -o $@

# For translators: extract every marked string into messages.pot and merge it into each .po.
messages: $(STAMP)
	$(BIN)/pybabel extract -F $(TRANSLATIONS)/babel.cfg -k _l -k lazy_gettext -k lazy_ngettext:1,2 \
	  --no-wrap --sort-by-file --project "Campus Portal" -o $(TRANSLATIONS)/messages.pot .
	$(BIN)/pybabel update --no-wrap --ignore-obsolete -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS)

$(AXE): tests/browser/package.json
	cd tests/browser && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

# The OpenID Connect provider the sign-in tests run (npm's oidc-provider under Node).
$(OIDC_PROVIDER): tests/auth/oidc_provider/package.json tests/auth/oidc_provider/package-lock.json
	cd tests/auth/oidc_provider && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

run: system-deps $(STAMP) assets catalogues
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(MAKE) --no-print-directory $(VENV)/.desktop; fi
	$(BIN)/campus-portal --demo

lint: $(STAMP)
	$(BIN)/ruff check portal desktop tests
	$(BIN)/ruff format --check portal desktop tests
	$(BIN)/mypy portal desktop
	$(BIN)/lint-imports

test: system-deps-test $(STAMP) $(VENV)/.desktop assets catalogues $(AXE) $(OIDC_PROVIDER) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: system-deps-test $(STAMP) $(VENV)/.desktop assets catalogues
	$(BIN)/python -m tests.benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VENDOR) $(ASSETS)/node_modules tests/browser/node_modules \
	  tests/auth/oidc_provider/node_modules build dist tests/artifacts

# --- Packaging: the PyInstaller bundle and the Linux installers (installers/README.md) ----------
# `make package` builds in a virtualenv of its own (the app, its window toolkit and PyInstaller
# only): dist/campus-portal/ (onedir bundle), dist/*.deb, dist/*.tar.xz and dist/SHA256SUMS.
# The tests in tests/package (marked `package`) build it once, install the .deb for real and run it.
APT_TEST += dpkg-dev xz-utils shellcheck wine wine64 lintian
# What building the bundle needs (PyGObject and pycairo compile when no wheel fits).
APT_PACKAGE := dpkg-dev xz-utils patchelf $(APT_WINDOW)
PKG_VENV := build/package-venv

.PHONY: package test-package system-deps-package

system-deps-package:
	@missing=$$(for p in $(APT_PACKAGE); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

$(PKG_VENV)/.installed: pyproject.toml
	@[ -x $(PKG_VENV)/bin/python ] || $(PYTHON) -m venv $(PKG_VENV)
	$(PKG_VENV)/bin/python -m pip install -q --upgrade pip
	$(PKG_VENV)/bin/python -m pip install -q -e '.[desktop,package]'
	@touch $@

package: system-deps system-deps-package assets catalogues $(PKG_VENV)/.installed
	$(PKG_VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN \
	  --distpath dist --workpath build/pyinstaller build.spec
	installers/linux/build-deb.sh dist/campus-portal dist

test-package: system-deps-test $(STAMP) assets catalogues
	$(BIN)/python -m pytest tests/package tests/server $(PYTEST_ARGS)
