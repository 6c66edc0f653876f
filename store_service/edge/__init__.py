"""The gRPC edge: the servicer (thin methods: convert, call the core, convert), the one protobuf/Arrow
conversion module, the checks on Arrow IPC that callers send, and the store's metrics."""
