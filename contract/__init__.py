"""The wire contract of vectorlane's two services, apart from any client or server: the messages and stubs
generated from protos/ (`vectorlane_contract.store.v1`, `vectorlane_contract.embed.v1`, written by `make
protos`), the descriptors with the protos' comments that reflection serves (`descriptors.binpb`), and the
framing of bulk Arrow rows in those messages (`wire`). The Python client (`vectorlane`), the store and the
embed service each depend on it; none of them depends on another.

The proto packages keep their names (`vectorlane.store.v1.StorageService` on the wire); the client offers
the same modules as `vectorlane.store.v1` and `vectorlane.wire`.
"""
