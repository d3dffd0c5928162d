# The lab's commands. `make test` sets everything up and runs every test;
# `make up` / `make down` bring the local lab up and tear it down.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
PY := venv/bin/python
STACK ?= local
LABCTL := scripts/labns.sh exec $(PY) tools/labctl.py

.PHONY: venv deps test test-fast e2e up down preview

venv: venv/.stamp policy/venv/.stamp
venv/.stamp: requirements.txt requirements-dev.txt
	python3 -m venv venv
	venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@
policy/venv/.stamp: policy/requirements.txt
	python3 -m venv policy/venv
	policy/venv/bin/pip install --quiet --disable-pip-version-check -r policy/requirements.txt
	touch $@

# Host packages, the Debian 12 and 13 trees (their libreswan 4.x/5.x and
# cloud-init check the payloads), the Pulumi toolchain and the lab image: all
# cached outside the checkout.
deps: venv
	scripts/host-deps.sh
	scripts/debian-root.sh
	scripts/debian-root.sh --suite trixie
	scripts/toolchain.sh
	scripts/build-image.sh

test-fast: venv
	$(PY) -m pytest -q tests --ignore=tests/e2e

# Every test runs inside the lab's network namespace, where libvirtd runs.
test: deps
	scripts/labns.sh start
	trap 'scripts/labns.sh stop' EXIT
	scripts/labns.sh exec $(PY) -m pytest -v -rfEs tests

e2e: deps
	scripts/labns.sh start
	trap 'scripts/labns.sh stop' EXIT
	scripts/labns.sh exec $(PY) -m pytest -v -rfEs tests/e2e

up: deps
	start=$$SECONDS
	scripts/labns.sh start
	$(PY) tools/labctl.py stack-config $(STACK) --set domainType=$$(scripts/detect-domain-type.sh)
	scripts/pulumi.sh $(STACK) up --yes --skip-preview
	$(LABCTL) wait $(STACK)
	echo "lab $(STACK) up in $$((SECONDS - start)) s"

down: venv
	scripts/labns.sh start
	scripts/pulumi.sh $(STACK) destroy --yes --skip-preview
	scripts/labns.sh stop

preview: deps
	scripts/labns.sh start
	$(PY) tools/labctl.py stack-config $(STACK)
	scripts/pulumi.sh $(STACK) preview --policy-pack $(CURDIR)/policy
