# Two commands: `make test` and `make reproduce` (see README).
# Both create .venv and install the package with its test extras the first time, and again only
# when pyproject.toml changes (the stamp file's name carries a hash of it).

PYTHON3 ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
REPRODUCE_ARGS ?=
PYPROJECT_HASH := $(shell $(PYTHON3) -c "import hashlib,pathlib;print(hashlib.sha256(pathlib.Path('pyproject.toml').read_bytes()).hexdigest()[:16])")
STAMP := $(VENV)/.installed-$(PYPROJECT_HASH)

.PHONY: test reproduce venv clean-results

venv: $(STAMP)

$(STAMP):
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -e ".[test]"
	@rm -f $(VENV)/.installed-*
	@touch $@

test: $(STAMP)
	$(PY) -m pytest -q
	$(PY) -m ruff check .

reproduce: $(STAMP)
	$(PY) -m coftad_lib.reproduce --profile $(PROFILE) $(REPRODUCE_ARGS)

clean-results:
	rm -rf results/executed results/status results/runs results/tables results/figures results/REPORT.md
