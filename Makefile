# The lab's commands. `make test` sets everything up and runs every test;
# `make up` / `make down` bring the local lab up and tear it down.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
PY := venv/bin/python
STACK ?= local
# The lab's command-line program (it enters the lab's network namespace by itself).
LABCTL := $(PY) -m labctl

.PHONY: venv deps kernel test test-fast e2e up down preview bench bench-scale

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
# cloud-init check the payloads), the Pulumi toolchain, the lab's own kernel
# and the lab images: all cached outside the checkout. The toolchain and the
# kernel (builds on every core) run beside the trees (downloads, dpkg); the
# images wait for the kernel, whose module index they hold.
deps: venv
	scripts/host-deps.sh
	scripts/toolchain.sh & toolchain=$$!
	scripts/build-kernel.sh & kernel=$$!
	trap 'kill $$toolchain $$kernel 2>/dev/null || true' EXIT
	scripts/debian-root.sh
	scripts/debian-root.sh --suite trixie
	wait $$kernel
	scripts/build-image.sh
	scripts/build-image.sh --suite trixie
	wait $$toolchain

# The lab's own guest kernel alone (ESP in TCP: lab:tcpSpokes), about 7 minutes on 2 cores.
kernel:
	scripts/host-deps.sh
	scripts/build-kernel.sh

test-fast: venv
	$(PY) -m pytest -q tests --ignore=tests/e2e

# Every test runs inside the lab's network namespace, where libvirtd runs. The
# last line says how long it all took, the venvs and deps included (deps makes
# the venvs after the clock starts), as a multiple of T1.
# CI stops a run at 90 minutes: by TEST_MINUTES every test has ended (tests/conftest.py cuts the
# timeouts), so that a hang fails with its stacks and both runs' summaries are the last lines printed.
TEST_MINUTES := 80
test:
	start=$$(date +%s)
	export LAB_TEST_DEADLINE=$$((start + $(TEST_MINUTES) * 60))
	$(MAKE) --no-print-directory deps
	scripts/labns.sh start
	trap 'scripts/labns.sh stop' EXIT
	# The one-host lab's module runs beside everything else, each line marked with its run: its
	# drills and lone VM boots leave a core idle (tests/conftest.py orders the rest).
	mkdir -p .lab
	run() { scripts/labns.sh exec $(PY) -m pytest -p no:cacheprovider -v -rfEs --durations=15 "$${@:2}" 2>&1 \
	        | tee ".lab/test-$$1.log" | sed -u "s/^/[$$1] /"; }
	run one-host-lab tests/e2e/test_lab.py & lab=$$!
	rc=0
	run the-rest tests --ignore=tests/e2e/test_lab.py || rc=$$?
	wait $$lab || rc=$$?
	grep -H -E '^(FAILED|ERROR) |^=+ .* in [0-9.]+s|^!+ ' .lab/test-one-host-lab.log .lab/test-the-rest.log || true
	$(PY) tools/test_ratio.py $$start
	exit $$rc

e2e: deps
	scripts/labns.sh start
	trap 'scripts/labns.sh stop' EXIT
	scripts/labns.sh exec $(PY) -m pytest -v -rfEs tests/e2e

# Boot time, memory, goodput, plan and preview times in one run: a table on
# stdout, JSON in .lab/bench.json (docs/performance.md). About 10 minutes.
bench: deps
	scripts/labns.sh start
	trap 'scripts/labns.sh stop' EXIT
	scripts/labns.sh exec $(PY) tools/bench.py

# Real labs of 1, 4, 8 and 16 spokes one after another, each against its floor (T1 x VMs / cores,
# T1 from the lab step of the same run): docs/performance.md, "Scaling". The sizes' floors alone
# add up to 66 minutes at T1 = 240 s on 2 cores.
bench-scale: deps
	scripts/labns.sh start
	trap 'scripts/labns.sh stop' EXIT
	scripts/labns.sh exec $(PY) tools/bench.py --only lab --scale 1,4,8,16

up: deps
	start=$$SECONDS
	scripts/labns.sh start
	$(LABCTL) stack-config $(STACK) --set domainType=$$(scripts/detect-domain-type.sh)
	$(LABCTL) up $(STACK)
	echo "lab $(STACK) up in $$((SECONDS - start)) s"

# Stopping the namespace also removes every impairment (its bridges and nftables go with it).
down: venv
	scripts/labns.sh start
	trap 'scripts/labns.sh stop' EXIT
	$(LABCTL) down $(STACK)

preview: deps
	scripts/labns.sh start
	$(LABCTL) stack-config $(STACK)
	scripts/pulumi.sh $(STACK) preview --policy-pack $(CURDIR)/policy
