"""The framing of bulk Arrow rows in the contract's messages: `vectorlane_contract.wire`, under the client's
name."""

from vectorlane_contract.wire import Decoded, decode, encode

__all__ = ["Decoded", "decode", "encode"]
