# make demo / make test: create .venv if missing, install lrnn editable with every extra and the speech evaluation (once, and again
# only when pyproject.toml or setup.py change), then run the demo or the test suite.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.lrnn-installed

.PHONY: demo test install

demo: $(STAMP)
	$(VENV)/bin/lrnn demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest

install: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -e '.[all,dev,audio-eval]'
	touch $@
