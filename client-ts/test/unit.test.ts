import { test } from "node:test";
import assert from "node:assert/strict";
import { parseTarget } from "../src/transport.js";

test("targets", () => {
  assert.deepEqual(parseTarget("grpc://localhost:50051"), { target: "localhost:50051", tls: false });
  assert.deepEqual(parseTarget("grpcs://store.example:443"), { target: "store.example:443", tls: true });
});
