# syntax=docker/dockerfile:1
# rag: the HTTP service with its models baked in. Every stage starts FROM ${BASE_IMAGE}.
#
#   make image                      # MODEL_SOURCE=local: copies image/models/{embedder,reranker} (ONNX folders)
#   podman build --build-arg MODEL_SOURCE=hub --build-arg QUANTIZE=int8 .   # downloads e5 + bge-reranker
#   make image RAG_EXTRAS=onnx,api,artifacts,milvus   # + the Milvus client (RAG_RETRIEVAL_BACKEND=milvus)
#   make image RAG_EXTRAS=onnx,api,artifacts,ray      # the index build's RayJob image (helm/rag-index-build)
#
# Package-index settings and a CA bundle are build-time only: ARG PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, and
# `--secret id=cacert,src=ca.crt` (mounted for the pip steps, never written into a layer).
ARG BASE_IMAGE=python:3.11-slim
# The serving extras. `milvus` adds pymilvus and what it imports (grpcio, pandas: ~110 MB), which would take
# the image with production-size models past 1 GB, so it is a variant; milvus-lite, the local engine pymilvus
# pulls in, is removed (pods talk to a server). `ray` makes the index build's image: Ray with its dashboard
# (KubeRay submits jobs and probes nodes through it) and wget, which KubeRay's injected probes run.
ARG RAG_EXTRAS=onnx,api,artifacts

FROM ${BASE_IMAGE} AS builder
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG MODEL_SOURCE=local
ARG QUANTIZE=int8
ARG EMBEDDING_MODEL=intfloat/e5-base-v2
ARG RERANKER_MODEL=BAAI/bge-reranker-base
# hub exports need torch; a CPU-only wheel index keeps the builder from pulling CUDA
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG RAG_EXTRAS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY services ./services
# The serving environment: the onnx backend, the API and S3 artifacts. No torch, optimum or transformers.
# Its bytecode is compiled here, unchecked-hash (the image never changes under it): without it every container
# start compiled ~3,000 modules again, as the root filesystem is read-only (docs/BENCHMARKS.md, cold start).
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi \
    && python3 -m venv /opt/rag \
    && /opt/rag/bin/pip install --no-compile -c constraints.txt ".[${RAG_EXTRAS}]" \
    && /opt/rag/bin/pip uninstall -y pip setuptools milvus-lite \
    && find /opt/rag -depth -type d \( -name tests -o -name __pycache__ \) -path "*/site-packages/*" -exec rm -rf {} + \
    && /opt/rag/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/rag/lib
COPY image/models /tmp/local-models
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi \
    && if [ "$MODEL_SOURCE" = "local" ]; then \
         test -f /tmp/local-models/embedder/rag_model.json \
           || { echo "MODEL_SOURCE=local needs image/models/embedder (rag models export)" >&2; exit 1; }; \
         mkdir -p /models && cp -r /tmp/local-models/. /models/ && rm -f /models/.gitkeep; \
       elif [ "$MODEL_SOURCE" = "hub" ]; then \
         python3 -m venv /opt/export \
         && /opt/export/bin/pip install --extra-index-url "$TORCH_INDEX_URL" -c constraints.txt \
              "torch==2.13.0" ".[torch,export,onnx]" \
         && RAG_EMBEDDING_MODEL="$EMBEDDING_MODEL" RAG_RERANKER_MODEL="$RERANKER_MODEL" \
            /opt/export/bin/rag models preload --dest /models --backend onnx ${QUANTIZE:+--quantize "$QUANTIZE"}; \
       else echo "MODEL_SOURCE must be local or hub" >&2; exit 1; fi \
    && chmod -R a+rX /models

FROM ${BASE_IMAGE} AS runtime
ARG RAG_EXTRAS
# RAG_BUNDLE_DIR=/opt/bundle with a bundle in image/bundle bakes it in (single-image deployments)
ARG BUNDLE_DIR=/artifacts/bundle
ENV PATH=/opt/rag/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    RAG_BACKEND=onnx RAG_EMBEDDING_MODEL=/models/embedder RAG_RERANKER_MODEL=/models/reranker \
    RAG_BUNDLE_DIR=${BUNDLE_DIR} RAG_BIND=0.0.0.0:8000 TMPDIR=/tmp
COPY --from=builder /opt/rag /opt/rag
COPY --from=builder /models /models
COPY image/bundle /opt/bundle
# The index pipeline's scripts, which the RayJob runs on its head (ci/index-job.sh), as index.yml does on a runner
COPY ci/lib.sh ci/build-index.sh ci/publish-index.sh ci/index-job.sh /opt/rag/ci/
# Bytecode for the standard library too, where the base image has none (a read-only root filesystem could
# not cache it, so every start would compile it again); python:3.11-slim's is already there and kept.
# The Ray variant adds wget for KubeRay's probes, and puts the venv back on PATH for KubeRay's `bash -l`
# (Debian's /etc/profile resets PATH, so `ray start` and the job's `rag` would not be found). wget is not
# pinned (DL3008): its version is that of the base image's Debian release, which BASE_IMAGE decides; the
# PATH line is written literally, for the login shell to expand (SC2016).
# hadolint ignore=DL3008,SC2016
RUN python3 -c "import compileall, sysconfig; compileall.compile_dir(sysconfig.get_path('stdlib'), quiet=1, workers=0)" \
    && groupadd --gid 10001 rag \
    && useradd --uid 10001 --gid rag --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rag \
    && mkdir -p /artifacts && chown rag:rag /artifacts && rm -f /opt/bundle/.gitkeep \
    && case ",${RAG_EXTRAS}," in *,ray,*) \
         apt-get update -q && apt-get install -y -q --no-install-recommends wget && rm -rf /var/lib/apt/lists/* \
         && echo 'PATH=/opt/rag/bin:$PATH' > /etc/profile.d/rag.sh ;; \
       esac
USER 10001:10001
WORKDIR /tmp
VOLUME ["/artifacts"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/opt/rag/bin/python", "-c", "import os, sys, urllib.request; port = os.environ.get('RAG_BIND', ':8000').rsplit(':', 1)[1]; sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2).status != 200)"]
# gunicorn serves; the init container runs the same image with `--entrypoint rag` (artifacts pull …)
ENTRYPOINT ["gunicorn", "-c", "python:rag.api.gunicorn_conf", "rag.api:create_app()"]
