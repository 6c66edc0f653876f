"""Function changes: changing, adding or dropping a table's embedding function as a long-running operation
whose re-embedding runs in the background, is durable, and resumes after a restart."""
