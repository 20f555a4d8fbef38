# fusionrec: everything a fresh machine needs goes through these targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export FUSION_DATA_ROOT ?= $(CURDIR)/var
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := True
DEMO_DATE ?= 2024-04-29

.PHONY: help venv demo test test-fast lint airflow backfill ciao-import bench-quality bench-generalise bench-speed bench-serving db-migrate clean

help:
	@echo "make demo            set up, write synthetic data, run the DAG for $(DEMO_DATE), print the metrics"
	@echo "make test            set up and run the whole test suite"
	@echo "make airflow         start Airflow (UI and API on http://localhost:8080)"
	@echo "make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD [BACKWARDS=1]   backfill through the scheduler"
	@echo "make ciao-import     import the Ciao data set into the landing zone"
	@echo "make bench-quality   the quality benchmark on Ciao (writes BENCHMARKS.md)"
	@echo "make bench-generalise  the same lists on synthetic worlds of other shapes (writes bench/generalisation.md)"
	@echo "make bench-speed     extraction and stage costs (bench/out/speed.md), then the cost curve (bench/cost_curve.md)"
	@echo "make db-migrate      migrate the database sink's schema (DB_URL=postgresql://... or the embedded SQLite)"
	@echo "make bench-serving   latency of the per-user API at 50 clients, SQLite and PostgreSQL (writes bench/out/serving.md)"

$(BIN)/activate: requirements.txt requirements-dev.txt bench/requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	echo "$(CURDIR)" > $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/fusionrec.pth
	touch $(BIN)/activate

venv: $(BIN)/activate

$(AIRFLOW_HOME)/airflow.db: | venv
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/migrate.log
	$(BIN)/airflow pools set fusion_training 2 "model training" > /dev/null

airflow-db: $(AIRFLOW_HOME)/airflow.db

demo: venv airflow-db
	$(BIN)/python -m fusion_tasks synthetic
	time $(BIN)/airflow dags test multimodal_fusion $(DEMO_DATE) > $(AIRFLOW_HOME)/demo-run.log 2>&1 \
		|| { tail -n 60 $(AIRFLOW_HOME)/demo-run.log; exit 1; }
	$(BIN)/python -m fusion_tasks show --date $(DEMO_DATE)
	$(BIN)/python -m fusion_tasks db latest

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not slow and not integration"

lint: venv
	$(BIN)/ruff check .

# localhost only, as documented: the API server would otherwise listen on every interface
airflow: venv airflow-db
	AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__CORE__PARALLELISM=4 $(BIN)/airflow standalone

backfill: venv
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD [BACKWARDS=1] [CONF='{...}']"; exit 2; }
	$(BIN)/python scripts/backfill.py --from $(FROM) --to $(TO) $(if $(BACKWARDS),--backwards,) --conf '$(or $(CONF),{})'
	@echo "backfill created; the scheduler of 'make airflow' runs it (see the Browse > Backfills page)"

ciao-import: venv
	$(BIN)/python -m fusion_tasks.importers ciao

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) var .pytest_cache

bench-quality: venv airflow-db
	$(BIN)/python -m bench.quality $(BENCH_ARGS)

bench-generalise: venv
	$(BIN)/python -m bench.generalise $(BENCH_ARGS)

bench-speed: venv
	$(BIN)/python -m bench.speed
	$(BIN)/python -m bench.cost_curve

db-migrate: venv
	$(BIN)/python -m fusion_tasks db migrate $(if $(DB_URL),--url $(DB_URL))

bench-serving: venv
	$(BIN)/python -m bench.serving
