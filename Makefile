# Two commands a user needs: `make train` and `make test`. The first use creates .venv and installs
# the project (with the pinned versions in constraints.txt) into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := dev,dmc,plot,tensorboard,baselines
export MUJOCO_GL ?= egl

.PHONY: install test train bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

# pytest exits 5 when it collects no test: make treats that, like any failure, as an error.
test: $(STAMP)
	$(PY) -m pytest -q

train: $(STAMP)
	$(PY) recipes/qsm_mujoco.py $(ARGS)

bench: $(STAMP)
	$(PY) -m pytest benchmarks -q --benchmark-enable --benchmark-columns=mean,stddev,rounds

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .benchmarks
