"""The embedding service's contract under the client's name (see `vectorlane.embed.v1`)."""
