# MARD: `make demo` runs the pipeline end to end on the embedded demo release; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mard-installed
export MARD_ROOT ?= $(CURDIR)/runs

# NEXT: the next release of the demo's world, written by `mard synth --previous`.
NEXT := $(MARD_ROOT)/next-release.xml.zip

.PHONY: install demo demo-next test test-fast bench vllm-env lint serve stop deploy clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/mard run

# The retrain loop on the demo: the next release of the same world (renamed, merged and new drugs, new and
# corrected interactions), then the pipeline on it in the same data root: temporal split, a new student, and
# the champion comparison on pairs with drugs the champion never trained on (run `make demo` first).
demo-next: install
	$(BIN)/mard synth --previous "$$(ls $(MARD_ROOT)/demo-release/*/release.xml.zip | head -1)" --out $(NEXT)
	printf 'release: {source: %s}\n' "$(NEXT)" > $(MARD_ROOT)/next.yaml
	$(BIN)/mard run --config $(MARD_ROOT)/next.yaml

test: install vllm-env
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check mard_core tasks flows schemas tests bench
	$(BIN)/ruff format --check mard_core tasks flows schemas tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/student.py

vllm-env:
	bash infra/vllm-env.sh .venv-vllm

serve: install
	bash infra/serve.sh

stop:
	bash infra/stop.sh

deploy: install
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:$${PREFECT_PORT:-4200}/api} $(BIN)/prefect --no-prompt deploy --all

clean:
	rm -rf runs
