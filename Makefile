# Each target sets itself up: a virtual environment in .venv from requirements.txt.
PY := .venv/bin/python

.venv/installed: requirements.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .  # `python -m vlp` and `vlp` from any folder
	touch $@

# Debian's Chromium for the browser tests (root on Debian; elsewhere install it yourself).
.venv/chromium: .venv/installed
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	touch $@

.PHONY: demo test test-fast lessons
demo: .venv/installed
	$(PY) app.py $(ARGS)

test: .venv/chromium
	$(PY) -m pytest $(ARGS)

# Skips the slow and browser tests: for a quick loop while editing.
test-fast: .venv/installed
	$(PY) -m pytest -m "not slow and not browser" $(ARGS)

# Runs the lessons in full (ARGS="1 2": some; ARGS=--quick: CI's short run) and writes their notebooks.
lessons: .venv/installed
	$(PY) lessons/run.py $(ARGS)
