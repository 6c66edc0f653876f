import { test } from "node:test";
import assert from "node:assert/strict";
import { parseTarget, readConsistencyValue } from "../src/transport.js";
import { everyPage } from "../src/paging.js";
import { VectorlaneError } from "../src/errors.js";

test("targets", () => {
  assert.deepEqual(parseTarget("grpc://localhost:50051"), { target: "localhost:50051", tls: false });
  assert.deepEqual(parseTarget("grpcs://store.example:443"), { target: "store.example:443", tls: true });
});

test("read consistency intervals as the store reads them", () => {
  assert.equal(readConsistencyValue(null), "none");
  assert.equal(readConsistencyValue(0), "0");
  assert.equal(readConsistencyValue(2.5), "2.5");
  assert.throws(() => readConsistencyValue(-1), RangeError);
  assert.throws(() => readConsistencyValue(Number.NaN), RangeError);
});

test("a store repeating a page token cannot keep the client asking", async () => {
  let calls = 0;
  const repeating = async () => { calls += 1; return { items: ["t"], nextPageToken: "same" }; };
  await assert.rejects(everyPage("ListTables", repeating),
    (e: unknown) => e instanceof VectorlaneError && e.reason === "BAD_PAGE_TOKEN");
  assert.equal(calls, 2);
  const empty = async () => ({ items: [] as string[], nextPageToken: "more" });
  await assert.rejects(everyPage("ListTables", empty), (e: unknown) => e instanceof VectorlaneError);
  const pages = [{ items: ["a"], nextPageToken: "1" }, { items: ["b"], nextPageToken: "" }];
  assert.deepEqual(await everyPage("ListTables", async (token) => pages[token ? 1 : 0]), ["a", "b"]);
});
