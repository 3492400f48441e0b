# The README's two commands. Each makes a local virtual environment (.venv) and installs what it
# needs into it from nothing; re-running reuses it until pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python recipes/quickstart.py --out runs/default

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/measure.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/build.py

clean:
	rm -rf runs .pytest_cache
