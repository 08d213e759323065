# piposer: `make run` runs the appliance, `make test` runs the tests. Both set up everything they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= $(abspath ../shared)
export PIPOSER_SHARED ?= $(SHARED)
export PIPOSER_MODEL_DIR ?= $(SHARED)/models$(if $(wildcard $(SHARED)/models/converted_from_tfjs),:$(SHARED)/models/converted_from_tfjs)
RUN_ARGS ?= --source $(SHARED)/data/video/room_pair.mp4
APT_TEST_PACKAGES := mosquitto openssh-server openssh-client rsync shellcheck systemd

.PHONY: run test bench eval soak deploy venv test-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

run: venv
	$(VENV)/bin/piposer run $(RUN_ARGS)

# Debian packages the tests start for real (broker, SSH server, shellcheck); installed once if missing.
test-deps:
	@missing=""; for p in $(APT_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: venv test-deps
	$(PY) -m pytest -q

eval: venv
	$(VENV)/bin/piposer eval

bench: venv
	$(PY) bench/posenet_bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
