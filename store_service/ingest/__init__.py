"""Rows coming in: preparing them (vectors computed through the embed service, bad-vector policies),
staging them while the stream arrives, and planning merge_insert."""
