# make demo / make test: create .venv if missing, install lrnn editable with every extra and the speech evaluation (once, and again
# only when pyproject.toml or setup.py change), then run the demo or the test suite (two pytest-xdist workers: most tests
# are single-threaded Python under the Triton interpreter, so two cores run two of them at once).
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.lrnn-installed

.PHONY: demo test install

demo: $(STAMP)
	$(VENV)/bin/lrnn demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2

install: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -e '.[all,dev,audio-eval]'
	touch $@
