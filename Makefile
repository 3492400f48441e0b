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

# two pytest workers (one per core here), one BLAS/OpenMP thread each; tests that launch several
# processes share a worker (xdist_group "distributed": they meet on accelerate's default port)
TEST_WORKERS ?= 2
test: lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

bench: $(STAMP)
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/measure.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/build.py

clean:
	rm -rf runs .pytest_cache
