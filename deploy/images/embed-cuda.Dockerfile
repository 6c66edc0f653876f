# The embed service on NVIDIA GPUs.   docker build -f deploy/images/embed-cuda.Dockerfile -t vectorlane/embed-cuda:0.1.0 .
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RUN apt-get update && apt-get install -y --no-install-recommends python3.12 python3.12-venv \
 && rm -rf /var/lib/apt/lists/* && python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY contract ./contract
COPY rpc_common ./rpc_common
COPY embed_service ./embed_service
COPY store_service ./store_service
# the CUDA build of the same torch release; then vectorlane's embed extra as CI pinned it
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126 \
 && pip install -c constraints.txt ./contract '.[embed]'
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin vectorlane \
 && mkdir -p /models && chown 10001:10001 /models
USER 10001:10001
VOLUME ["/models"]
EXPOSE 50052 9452
ENTRYPOINT ["vectorlane-embed"]
