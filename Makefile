# The two commands (README): `make run` runs the default pipeline end to end, `make test` the test suite.
# Both do their own setup: the project venv with torch 2.11.0 (libtorch for tch), then the build.
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: setup build run test bench fmt lint
setup:
	@bash scripts/setup-venv.sh
	@bash scripts/setup-data.sh
	@bash scripts/setup-tools.sh

build: setup
	cargo build --release --workspace --bins

run: build
	./target/release/scan run
	@echo "report:  $$(./target/release/scan show evaluate.report)/report.md"
	@echo "metrics: $$(./target/release/scan show evaluate.metrics)"

# The integration tests start a WebDAV/S3 pair and a single-node Slurm on 127.0.0.1 when they need
# them; whatever the outcome, they are stopped afterwards.
test: setup
	cargo build --release --workspace --bins
	rc=0; cargo test --release --workspace || rc=$$?; \
	  bash scripts/remote-down.sh || true; bash scripts/slurm-down.sh || true; exit $$rc

lint: setup
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
