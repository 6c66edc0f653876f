# The embed service on CPU.   docker build -f deploy/images/embed.Dockerfile -t vectorlane/embed:0.1.0 .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY contract ./contract
COPY rpc_common ./rpc_common
COPY embed_service ./embed_service
COPY store_service ./store_service
# torch's CPU build, then vectorlane's embed extra pinned exactly as CI tested it
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install -c constraints.txt ./contract '.[embed]'
# a fixed non-root user; models and the Hugging Face cache live on the /models volume
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin vectorlane \
 && mkdir -p /models && chown 10001:10001 /models
USER 10001:10001
VOLUME ["/models"]
EXPOSE 50052 9452
ENTRYPOINT ["vectorlane-embed"]
