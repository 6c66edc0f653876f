# The store service.   docker build -f deploy/images/store.Dockerfile -t vectorlane/store:0.1.0 .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY contract ./contract
COPY rpc_common ./rpc_common
COPY embed_service ./embed_service
COPY store_service ./store_service
# the contract and the store's extra only: FAISS, Lance; no client, no torch, no model library
RUN pip install -c constraints.txt ./contract '.[store]'
# a fixed non-root user; tables live on the /data volume
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin vectorlane \
 && mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 50051 9451
ENTRYPOINT ["vectorlane-store"]
