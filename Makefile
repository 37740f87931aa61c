# Thin targets over the package. `make milestone` and `make test` create the venv themselves.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SMOKE ?= 0

.PHONY: setup milestone test lint variants registry-up registry-down benchmarks clean _stop-servers

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

milestone: setup  ## run every notebook with its defaults; tables and plots land in reports/
	$(PY) -m milestone_lib.cli milestone $(if $(filter 1,$(SMOKE)),--smoke,)

test: setup  ## the whole test suite (slow tiers included)
	$(PY) -m pytest -q

variants: setup  ## build the default variants without the notebook
	$(PY) -m milestone_lib.cli variants

registry-up: setup  ## start this checkout's local S3 registry (MinIO if on PATH, else SeaweedFS) on 127.0.0.1
	$(PY) -m milestone_lib.registry up

registry-down: setup  ## stop it
	$(PY) -m milestone_lib.registry down

benchmarks: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

lint: setup
	$(PY) -m ruff check milestone_lib tests benchmarks

clean: _stop-servers  ## stop what runs, then remove generated files (datasets, variants, executed notebooks, reports)
	rm -rf artifacts notebooks/executed .cache
	find reports -mindepth 1 ! -name README.md ! -path 'reports/reference*' -exec rm -rf {} +

# What `make milestone` may leave running; without a venv nothing of ours can have started it.
_stop-servers:
	@if [ -x $(PY) ]; then $(PY) -m milestone_lib.registry down || echo "warning: could not stop the local registry"; \
	$(PY) -m milestone_lib.containers down || echo "warning: could not stop the private Docker engine"; \
	else echo "no $(VENV): no local registry or Docker engine to stop"; fi

.PHONY: k8s  # phony: k8s/ is also a folder, which would make the target look up to date
k8s: setup  ## rewrite k8s/ (the default deployment's manifests + kustomization.yaml) from the renderer
	$(PY) -m milestone_lib.deploy.kubernetes k8s

docker-up: setup  ## start this checkout's private Docker engine (root + Debian docker.io; data and socket in .cache/docker)
	$(PY) -m milestone_lib.containers up

docker-down: setup  ## stop it
	$(PY) -m milestone_lib.containers down

images: setup  ## build the runtime and one image per servable variant, push them to the registry
	$(PY) -m milestone_lib.containers build --push

.PHONY: docker-up docker-down images
