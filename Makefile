# geogit developer entry points. Everything runs inside .venv (created by `make install`).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROTO_OUT := libs/common/src/geogit/common/proto
DEB_PACKAGES := git openssh-client postgresql chromium prometheus haproxy

.PHONY: install deb venv proto test lint bench clean up down status

install: deb venv proto

deb:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

venv:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e libs/common -e services/storage -e services/internal-api \
	  -e services/edge-proxy -e services/ssh-gateway -e services/replicator -e libs/devstack -e '.[dev]'

proto:
	$(BIN)/python tools/gen_protos.py

# pytest exits 5 when it collected nothing; say so instead of failing obscurely.
test:
	@$(BIN)/pytest $(PYTEST_ARGS); code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$code

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/common/src libs/devstack/src services/storage/src \
	  services/internal-api/src services/edge-proxy/src services/ssh-gateway/src \
	  services/replicator/src

bench:
	$(BIN)/python -m bench.run

# The dev stack (libs/devstack/README.md): installs first if needed, then a primary and a
# secondary with demo data, and the push-through-the-secondary story; returns once every
# service answers its health check. `make down` stops it.
up:
	@if [ ! -x $(BIN)/geogit-replicator ] || [ ! -d $(PROTO_OUT)/storage ]; then $(MAKE) install; fi
	$(BIN)/geogit dev up --demo

down:
	$(BIN)/geogit dev down

status:
	$(BIN)/geogit dev status
	$(BIN)/geogit status

clean:
	rm -rf $(VENV) $(PROTO_OUT)
