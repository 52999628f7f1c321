# Set-up and checks. Every target bootstraps .venv itself on a fresh machine.
# ROS 2 traffic stays on this machine: every target that starts ROS 2 gets loopback-only discovery
# and its own domain (the node itself never forces this; robots need their normal discovery).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The same tests of real ROS 2 processes under Jazzy (Fast DDS 2.x, rclpy 7): PyPI's Jazzy wheels, pinned by the
# ros-jazzy-* meta-wheels, in a second virtualenv beside the Kilted one.
JAZZY_VENV := .venv-jazzy
JAZZY_STAMP := $(JAZZY_VENV)/.installed
JAZZY_ROS := ros-jazzy-rclpy[fastrtps]==7.1.6 ros-jazzy-rmw-fastrtps-cpp ros-jazzy-rcl-interfaces \
	ros-jazzy-std-msgs ros-jazzy-sensor-msgs ros-jazzy-nav-msgs ros-jazzy-geometry-msgs \
	ros-jazzy-diagnostic-msgs ros-jazzy-rosgraph-msgs ros-jazzy-lifecycle-msgs ros-jazzy-ament-index-python
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= 77
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp
export PYTHONUNBUFFERED = 1

.PHONY: venv venv-jazzy test test-jazzy test-fast lint demo bench clean clean-venvs

venv: $(STAMP)

# torch first, pinned: it is the CPU wheel on local disk here (a bare `torch` would pull a multi-GB CUDA build).
$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[ros,openvino,test]'
	touch $(STAMP)

venv-jazzy: $(JAZZY_STAMP)

$(JAZZY_STAMP): setup.py
	test -x $(JAZZY_VENV)/bin/python || $(PYTHON) -m venv $(JAZZY_VENV)
	$(JAZZY_VENV)/bin/pip install -q --disable-pip-version-check torch==2.13.0
	$(JAZZY_VENV)/bin/pip install -q --disable-pip-version-check -e '.[openvino,test]' $(JAZZY_ROS)
	touch $(JAZZY_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

# Both virtualenvs are bootstrapped side by side first (each pip run is mostly one core): ~2 min less on 2 cores.
# Both passes run on TEST_WORKERS pytest workers, each pinned to its own CPUs, a file's tests together on one
# worker (test/conftest.py): one process alone leaves half of a 2-core machine idle. TEST_WORKERS=1: one process.
TEST_WORKERS ?= 2
test:
	$(MAKE) -j2 $(STAMP) $(JAZZY_STAMP)
	$(MAKE) lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --durations=15
	$(MAKE) test-jazzy

# ROS tests take /tmp/ros_tests.lock: they use fixed domain IDs, so two runs at once would talk to each other.
# The Jazzy pass runs every ROS test except the long drives (burst, odometry, node bench, demo; marked slow) on
# TEST_WORKERS workers: those measure the node's own work, which the Kilted pass covers, and with them `make test`
# would come too close to its 20 minutes. JAZZY_MARK=ros runs them too (about 1.5 min more on two workers).
JAZZY_MARK ?= ros and not slow
test-jazzy: $(JAZZY_STAMP)
	flock /tmp/ros_tests.lock $(JAZZY_VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) -m "$(JAZZY_MARK)"

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

clean-venvs:
	rm -rf $(VENV) $(JAZZY_VENV)
