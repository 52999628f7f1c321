# Set-up and checks. Every target bootstraps .venv itself on a fresh machine.
# ROS 2 traffic stays on this machine: every target that starts ROS 2 gets loopback-only discovery
# and its own domain (the node itself never forces this; robots need their normal discovery).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= 77
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp
export PYTHONUNBUFFERED = 1

.PHONY: venv test test-fast lint demo bench clean

venv: $(STAMP)

# torch first, pinned: it is the CPU wheel on local disk here (a bare `torch` would pull a multi-GB CUDA build).
$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[ros,openvino,test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/depth-node bench --json out/bench/bench.json

# The node (its own process, default model) on a held-out synthetic drive replayed over ROS 2 (loopback, domain
# 78): writes out/demo/report.html and out/demo/metrics.json and prints the headline figures.
demo: $(STAMP)
	$(BIN)/depth-node demo --out out/demo --domain-id 78

clean:
	rm -rf out build install log .pytest_cache .ruff_cache
