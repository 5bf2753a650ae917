# Two commands do everything on a fresh machine: `make serve` and `make test` (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PACKAGES := libldap-dev libsasl2-dev slapd ldap-utils chromium

.PHONY: serve test install system-packages lint

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# python-ldap compiles against libldap; the tests start their own slapd and drive chromium.
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

serve: system-packages install
	$(VENV)/bin/odock-sync db upgrade
	$(VENV)/bin/odock-sync serve

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: system-packages install lint
	$(VENV)/bin/pytest
