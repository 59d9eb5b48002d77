# The two things most people want:  `make demo`  and  `make test`.
# Both install what they need (Debian packages via scripts/install-deps, Python packages
# into .venv) on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast fuzz lint bench deps venv assets update-tags dist clean

deps:
	scripts/install-deps

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Host assets the boot tests use (the Debian cloud kernel, fetched with apt-get download).
assets: deps venv
	$(BIN)/python -m tests.fixtures.assets >/dev/null

test: deps venv assets
	$(BIN)/pytest

# The fuzzers of tests/fuzz with a long budget (CI runs them with a short one).
FUZZ_EXAMPLES ?= 20000
fuzz: venv
	CAIRN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -p no:cacheprovider tests/fuzz

test-fast: venv
	$(BIN)/pytest -m "not qemu and not network"

lint: venv
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/python scripts/shellcheck.py

bench: deps venv assets
	-DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go golang-github-klauspost-pgzip-dev >/dev/null 2>&1
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

demo: deps venv
	$(BIN)/python scripts/demo.py

# After a change to a package (src/cairn/packages) or the guest scripts: the examples name
# the packages by tag, and a test fails until they name the new ones.
update-tags: venv
	$(BIN)/python scripts/update-tags

# What PyPI gets: the sdist (with docs/) and the wheel built from it, in dist/.
dist: venv
	$(BIN)/pip install -q build
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) _out .demo dist build .pytest_cache .mypy_cache .ruff_cache
