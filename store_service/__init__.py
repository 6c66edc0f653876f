"""The vectorlane storage service: tables with embedding-function metadata, durable storage, FAISS
indexes, filters and versions. See ../shared/DESIGN.md; built in the storage-service issue."""
