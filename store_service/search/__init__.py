"""Reading: the per-fragment serving state of each version (`table_view`), filters, exact scans, FAISS
indexes and their catalog, and the vector search that puts them together."""
