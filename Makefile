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

.PHONY: test reproduce venv clean-results paper-dry plan lab book

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

# The paper protocol at full size (every task, full test sets) with compute shrunk to 2 CPU cores
# (32 px, 1 step, seed 0, Lite0): proves the series runs end to end; its numbers mean nothing.
# Outputs stay out of results/ (see docs/RUNNING.md).
PAPER_DRY_OUT ?= .cache/paper-dry
paper-dry: $(STAMP)
	$(PY) -m coftad_lib.reproduce --profile paper-dry --out $(PAPER_DRY_OUT)/results \
		--prep-dir $(PAPER_DRY_OUT)/prepared_data $(REPRODUCE_ARGS)

# The executed notebooks as a static, offline, searchable book in $(BOOK_RESULTS)/book/ (open its
# index.html; docs/RUNNING.md, "The book"). Built from $(BOOK_RESULTS)/notebooks/, which `make reproduce
# PROFILE=protocol-cpu` writes (rendering from the committed cell cache); without them the committed
# book stays as it is. The builder (Sphinx, myst-nb, Furo) is in the test extra. BOOK_RESULTS=results/smoke
# for the smoke profile's; BOOK_ARGS="--notebooks DIR --out DIR" to choose the input and output.
BOOK_RESULTS ?= results
BOOK_ARGS ?=
book: $(STAMP)
	$(PY) -m coftad_lib.reproduce.book --results $(BOOK_RESULTS) $(BOOK_ARGS)

# What `make reproduce` would run and for how long (runs nothing)
plan: $(STAMP)
	$(PY) -m coftad_lib.reproduce --profile $(PROFILE) --plan $(REPRODUCE_ARGS)

# JupyterLab on the repository (README, results/REPORT.md, the tables and the published executed
# notebooks are all reachable), opening at notebooks/, with the project's kernel: the `lab` extra goes
# into the same .venv (once per pyproject.toml), and the server runs from .venv, so the "python3"
# kernel is .venv's interpreter, the one `make reproduce` checks. Jupyter refuses to run as root
# without --allow-root, so it is added for root only. .lab/overrides.json: Markdown files (REPORT.md,
# the tables) open rendered, and no news pop-up. LAB_ARGS="--no-browser --port 8890" to change.
LAB_STAMP := $(VENV)/.lab-$(PYPROJECT_HASH)
LAB_ARGS ?=
lab: $(LAB_STAMP)
	$(PY) -m jupyterlab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks \
		--LabApp.app_settings_dir=.lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

$(LAB_STAMP): $(STAMP)
	$(PY) -m pip install -e ".[test,lab]"
	@rm -f $(VENV)/.lab-*
	@touch $@

# Removes a profile's rendered outputs (default: smoke's folder); the committed protocol-cpu cell
# records in results/cache/cells are never removed by it.
CLEAN_DIR ?= results/smoke
clean-results:
	rm -rf $(CLEAN_DIR)/executed $(CLEAN_DIR)/status $(CLEAN_DIR)/runs $(CLEAN_DIR)/tables \
		$(CLEAN_DIR)/figures $(CLEAN_DIR)/REPORT.md
