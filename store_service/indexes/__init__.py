"""The vector index lifecycle in one place: the FAISS indexes (`vector_index`), how one is built, listed,
replaced, dropped and caught up (`catalog`), and the indexes a table has loaded (`loaded`)."""
