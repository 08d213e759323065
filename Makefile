# piposer: `make run` runs the appliance, `make test` runs the tests. Both set up everything they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED := $(or $(PIPOSER_SHARED),$(abspath ../shared))
export PIPOSER_SHARED := $(SHARED)
export PIPOSER_MODEL_DIR ?= $(SHARED)/models$(if $(wildcard $(SHARED)/models/converted_from_tfjs),:$(SHARED)/models/converted_from_tfjs)
RUN_ARGS ?= $(if $(wildcard $(SHARED)/data/video/room_pair.mp4),--source $(SHARED)/data/video/room_pair.mp4)
APT_TEST_PACKAGES := mosquitto openssl openssh-server openssh-client rsync shellcheck systemd chromium

.PHONY: run test test-hass hass-venv test-arm64 bench bench-mediapipe eval soak deploy venv test-deps clean

# Node's npm (Debian's, if the machine has none) for the two things taken from the npm registry.
define ensure_npm
@command -v npm >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }
endef

# p5.js for the example sketch the web server serves (/examples/p5): fetched from npm at build time,
# checked against its sha256, never from a CDN at run time and never committed.
P5_VERSION := 1.11.13
P5_SHA256 := e9df7d05fd7c3ff028fc09a312a43101241f23c43143b387bf89d96b2e4e0849
P5 := piposer/web/vendor/p5.min.js
$(P5):
	$(ensure_npm)
	@tmp=$$(mktemp -d) && (cd $$tmp && npm pack -q p5@$(P5_VERSION) >/dev/null && \
	  tar xzf p5-$(P5_VERSION).tgz package/lib/p5.min.js package/license.txt && \
	  echo "$(P5_SHA256)  package/lib/p5.min.js" | sha256sum -c --quiet) && \
	  mkdir -p $(dir $(P5)) && mv $$tmp/package/lib/p5.min.js $(P5) && mv $$tmp/package/license.txt $(dir $(P5))p5-license.txt; \
	  rc=$$?; rm -rf $$tmp; exit $$rc

$(VENV)/.installed: pyproject.toml $(P5)
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
	$(ensure_npm)
	@$(MAKE) --no-print-directory tests/osc_node/node_modules

# The second, independent OSC implementation the tests receive with (the npm osc package, locked).
tests/osc_node/node_modules: tests/osc_node/package-lock.json
	cd tests/osc_node && npm ci --silent --no-audit --no-fund && touch node_modules

test: venv test-deps hass-venv
	PIPOSER_HASS_VENV=$(HASS_VENV) $(PY) -m pytest -q

# A real Home Assistant core for tests/test_hass_real.py, in its own venv outside the repo (it needs Python 3.13),
# cached across runs: about 12 min to build cold, then the test takes about 30 s. `make test` builds it when it
# can (HASS=0 skips that); when it cannot, the test is skipped and says why. `make test-hass` runs just that test.
HASS ?= 1
HASS_VENV ?= $(HOME)/.cache/piposer-hass-venv
HASS_PYTHON ?= $(or $(shell command -v python3.13),$(lastword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13)))
HASS_PACKAGES := homeassistant==2025.4.4 home-assistant-frontend==20250411.0 paho-mqtt==2.1.0

$(HASS_VENV)/.installed:
	@test -n "$(HASS_PYTHON)" || { echo "the Home Assistant test needs Python 3.13 (set HASS_PYTHON=/path/to/python3.13)"; exit 2; }
	rm -rf $(HASS_VENV)
	$(HASS_PYTHON) -m venv $(HASS_VENV)
	$(HASS_VENV)/bin/pip install -q --upgrade pip
	$(HASS_VENV)/bin/pip install -q $(HASS_PACKAGES)
	touch $@

hass-venv:
	@[ "$(HASS)" = 0 ] || $(MAKE) --no-print-directory $(HASS_VENV)/.installed || \
	  echo "Home Assistant venv not built: tests/test_hass_real.py will be skipped"

test-hass: venv test-deps $(HASS_VENV)/.installed
	PIPOSER_HASS_VENV=$(HASS_VENV) $(PY) -m pytest -q tests/test_hass_real.py tests/test_hass.py

eval: venv
	$(VENV)/bin/piposer eval --data $(SHARED)/data/coco_dev/person_keypoints.json $(foreach m,posenet posenet-stride8 posenet-stride32 movenet-multipose blazepose-lite blazepose-full blazepose-heavy,--model $(m))

# Speed figures for BENCHMARKS.md: PoseNet stages and decoder, rules, MQTT. (BlazePose vs MediaPipe,
# which installs mediapipe into its own venv, is `make bench-mediapipe`.)
bench: venv test-deps
	$(PY) bench/posenet_bench.py
	$(PY) bench/rules_bench.py
	$(PY) bench/mqtt_bench.py

bench-mediapipe: venv
	$(PY) bench/blazepose_vs_mediapipe.py

# Long run through the whole loop (real video, looping, MQTT to a local broker): RSS growth and fps.
soak: venv test-deps
	$(PY) bench/soak.py $(SOAK_ARGS)

# make deploy HOST=user@pi: rsync the project to the Pi and run deploy/install.sh there as root.
# SSH_OPTS, REMOTE_DIR, DEPLOY_PREFIX and the PIPOSER_SKIP_* / PIPOSER_WITH_MOSQUITTO / PIPOSER_MODEL
# switches (see deploy/install.sh) are passed through; the deploy test uses them to install into a temp dir.
# DEPLOY_CONFIG=file installs that file as the Pi's /etc/piposer/config.toml.
# Many Pis at once: make deploy HOSTS="pi@a.local pi@b.local", or FLEET=deploy/fleet.toml (per-host settings).
SSH_PORT ?= 22
SSH_OPTS ?= -p $(SSH_PORT) $(if $(SSH_KEY),-i $(SSH_KEY) -o IdentitiesOnly=yes) -o StrictHostKeyChecking=accept-new
REMOTE_DIR ?= piposer-src
DEPLOY_ENV = $(if $(DEPLOY_PREFIX),PIPOSER_PREFIX=$(DEPLOY_PREFIX)) $(if $(DEPLOY_CONFIG),PIPOSER_CONFIG=deploy/host-config.toml) $(foreach v,PIPOSER_SKIP_APT PIPOSER_SKIP_SYSTEMD PIPOSER_SKIP_MODEL PIPOSER_WITH_MOSQUITTO PIPOSER_MODEL PIPOSER_LITERT,$(if $($(v)),$(v)=$($(v))))
RSYNC_EXCLUDES := .git .venv .bench-venv __pycache__ '*.egg-info' .pytest_cache .hypothesis out build

deploy: $(P5)
ifneq ($(FLEET)$(HOSTS),)
	$(PYTHON) deploy/fleet.py $(if $(FLEET),--inventory $(FLEET)) $(HOSTS)
else
	@test -n "$(HOST)" || { echo "usage: make deploy HOST=user@raspberrypi.local (or HOSTS=\"...\", FLEET=deploy/fleet.toml)"; exit 2; }
	$(if $(DEPLOY_CONFIG),@test -f "$(DEPLOY_CONFIG)" || { echo "DEPLOY_CONFIG file not found: $(DEPLOY_CONFIG)"; exit 2; })
	rsync -az --delete -e "ssh $(SSH_OPTS)" $(foreach x,$(RSYNC_EXCLUDES),--exclude $(x)) ./ "$(HOST):$(REMOTE_DIR)/"
	$(if $(DEPLOY_CONFIG),rsync -a -e "ssh $(SSH_OPTS)" "$(DEPLOY_CONFIG)" "$(HOST):$(REMOTE_DIR)/deploy/host-config.toml")
	ssh $(SSH_OPTS) "$(HOST)" 'cd $(REMOTE_DIR) && SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo) && $$SUDO env $(DEPLOY_ENV) bash deploy/install.sh'
endif

# The emulated Pi (deploy/emulated-pi/): an arm64 Debian root booted with systemd-nspawn, `make deploy`
# into it, the service under its systemd, and fleets of two. Needs root; the first run builds the root
# (cached in /var/cache/piposer-arm64). Timings: BENCHMARKS.md, "The emulated Pi".
test-arm64: venv test-deps
	PIPOSER_ARM64=1 $(PY) -m pytest -q -s -o timeout=1800 tests/test_arm64.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
