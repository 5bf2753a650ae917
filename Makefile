# Two commands do everything on a fresh machine: `make serve` and `make test` (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# python-ldap compiles against libldap and libsasl: serving needs only these.
SERVE_PACKAGES := libldap-dev libsasl2-dev
# The tests also start their own slapd (ldap-utils for its tools) and drive chromium.
TEST_PACKAGES := $(SERVE_PACKAGES) slapd ldap-utils chromium

.PHONY: serve test install install-test system-packages test-system-packages apt-install lint

# Serving installs the project alone; the tests add their tools (pytest, playwright, ...).
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

system-packages:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(SERVE_PACKAGES)"

test-system-packages:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_PACKAGES)"

apt-install:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

# `make serve PORT=8001`: links (PUBLIC_BASE_URL, unless set) and `demo` follow the port.
serve: system-packages install
	$(VENV)/bin/odock-sync serve --port $(PORT)

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Bytecode is written even where the environment says not to (PYTHONDONTWRITEBYTECODE): the
# suite starts many processes (workers, beats, serve trees, CLI runs), and each compiled the
# project from source again: 0.2 of the 1.4 s of CPU an import of the app takes.
test: test-system-packages install-test lint
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/pytest
