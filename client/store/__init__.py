"""The storage service's contract under the client's name (see `vectorlane.store.v1`)."""
