# The README's commands. Each target installs what it needs into a local virtualenv first.
#   make demo   the embedded pipeline (news world + tiny BART, offline, 2 CPU cores)
#   make test   the whole test suite (fast tests and the ones marked slow)
#   make bench  speed/memory benchmarks (ratios against the naive and the peers' way)
#   make lint   ruff lint + format check

VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build. On a GPU machine:
#   make install TORCH="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export WANDB_MODE ?= offline

.PHONY: install demo test test-fast bench lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# The demo runs one process per core with the real accelerate launcher (gloo on CPU, one thread each: on 2
# cores two 1-thread processes beat one 2-thread process). DEMO_PROCS=1 runs a plain single process.
DEMO_PROCS ?= 2
ifeq ($(DEMO_PROCS),1)
DEMO_RUN := $(PY) -m conseq.train
else
DEMO_RUN := OMP_NUM_THREADS=1 $(VENV)/bin/accelerate launch --multi_gpu --num_processes $(DEMO_PROCS) \
	--num_machines 1 --mixed_precision no --dynamo_backend no -m conseq.train
endif

# Extra overrides for the demo's pipeline. By default it leaves out QAGS and FactCC (their three models would add
# a third to its time); DEMO_ARGS= (empty) brings them back.
DEMO_ARGS ?= stages.evaluate.extra_scorers=[]
demo: install
	$(DEMO_RUN) stage=pipeline $(DEMO_ARGS)

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow and not distributed"

bench: install
	$(PY) scripts/bench.py

lint: install
	$(VENV)/bin/ruff check conseq tests scripts
	$(VENV)/bin/ruff format --check conseq tests scripts

format: install
	$(VENV)/bin/ruff check --fix conseq tests scripts
	$(VENV)/bin/ruff format conseq tests scripts

clean:
	rm -rf outputs .pytest_cache
