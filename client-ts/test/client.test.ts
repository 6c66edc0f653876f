/**
 * The TypeScript client against real services: LanceDB's TypeScript embedding walkthrough (openai pointed at
 * a local OpenAI-compatible server, and sentence-transformers with the real MiniLM), a custom local function,
 * every table method, errors as classes with the service's reasons, and the same search through the Python
 * client giving the same rows and distances.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as arrow from "apache-arrow";
import { Utf8 } from "apache-arrow";
import * as lancedb from "../src/index.js";
import { EmbeddingFunction, LanceSchema, getRegistry, register } from "../src/embeddings/index.js";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import { OPENAI_KEY, freePort, python, startServices, startTlsStore, textVector, type Services } from "./services.js";

let services: Services;
let db: lancedb.Connection;

before(async () => {
  services = await startServices();
  db = await lancedb.connect(services.storeUri, { timeout: 120 });
});

after(async () => {
  db?.close();
  await services?.stop();
});

test("LanceDB's walkthrough with openai: the store embeds rows and the query, the key stays a reference", async () => {
  const func = getRegistry().get("openai").create({ model: "text-embedding-3-small", apiKey: "$var:openai_key",
    baseUrl: services.openai.url, dim: 16 });
  const schema = LanceSchema({ text: func.sourceField(new Utf8()), vector: func.vectorField() });
  const table = await db.createEmptyTable("words", schema, { mode: "overwrite" });
  await table.add([{ text: "hello world" }, { text: "goodbye world" }]);
  const rows = await table.search("hello world").limit(1).toArray();
  assert.equal(rows[0].text, "hello world");
  assert.deepEqual(Array.from(rows[0].vector.toArray() as Float32Array).map((v) => Number(v.toFixed(5))),
    textVector("hello world").map((v) => Number(v.toFixed(5))));
  assert.ok(services.openai.requests.every((r) => r.authorization === `Bearer ${OPENAI_KEY}`));
  const recorded = JSON.parse((await table.schema()).metadata.get("embedding_functions")!);
  assert.deepEqual(recorded[0].model.api_key, "$var:openai_key");
  assert.equal(recorded[0].source_column, "text");
});

test("LanceDB's walkthrough with sentence-transformers (the real MiniLM)", async () => {
  const func = getRegistry().get("sentence-transformers").create();
  const table = await db.createEmptyTable("minilm", LanceSchema({ text: func.sourceField(), vector: func.vectorField() }),
    { mode: "overwrite" });
  assert.equal((await table.schema()).fields[1].type.listSize, 384);
  await table.add([{ text: "hello world" }, { text: "goodbye world" }, { text: "the stock market fell" }]);
  const rows = await table.search("greetings").limit(1).toArray();
  assert.equal(rows[0].text, "hello world");
  assert.ok(rows[0]._distance < 1.0);
});

@register("word-count")
class WordCount extends EmbeddingFunction<string> {
  ndims(): number {
    return 3;
  }

  async computeSourceEmbeddings(data: string[]): Promise<number[][]> {
    return data.map((text) => [text.split(" ").length, text.length, 1]);
  }
}

test("createTable from rows with a hosted function: the store embeds them and infers the vector column", async () => {
  const func = getRegistry().get("sentence-transformers").create();
  const table = await db.createTable("vectors", [{ text: "a red apple" }, { text: "a fast car" }],
    { mode: "overwrite", embeddingFunction: { function: func, sourceColumn: "text" } });
  assert.equal((await table.schema()).fields.find((f) => f.name === "vector")!.type.listSize, 384);
  assert.equal((await table.search("fruit").limit(1).toArray())[0].text, "a red apple");
  await table.add([{ text: "a green pear" }]);
  assert.ok((await table.query().toArray()).every((row) => row.vector?.length === 384));
});

test("a hosted function describes itself and computes vectors outside a table", async () => {
  const func = getRegistry().get("sentence-transformers").create();
  assert.equal(func.ndims(), undefined);
  await (func as lancedb.embeddings.ServerFunction).init();
  assert.equal(func.ndims(), 384);
  const [query] = await Promise.all([func.computeQueryEmbeddings("hello world")]);
  const [source] = await func.computeSourceEmbeddings(["hello world"]);
  assert.equal(query.length, 384);
  assert.ok(Math.abs(query.reduce((a, v, i) => a + v * source[i], 0) - 1) < 1e-4); // MiniLM: the same unit vector
});

test("a custom local function computes rows' and queries' vectors in this process", async () => {
  const func = getRegistry().get<WordCount>("word-count").create();
  assert.ok(func instanceof WordCount && func.isLocal);
  const table = await db.createTable("counted", [{ text: "one" }, { text: "one two three" }],
    { mode: "overwrite", embeddingFunction: { function: func, sourceColumn: "text" } });
  assert.deepEqual(Array.from((await table.query().toArray())[1].vector.toArray() as Float32Array), [3, 13, 1]);
  const nearest = await table.search("abc def ghijk").limit(1).toArray(); // [3, 13, 1], computed here
  assert.equal(nearest[0].text, "one two three");
  assert.equal(table.embeddingFunctions().get("vector")?.function.functionName, "word-count");
});

test("every table method LanceDB's walkthrough uses", async () => {
  const data = Array.from({ length: 300 }, (_, i) => ({ id: i, kind: i % 2 ? "odd" : "even", vector: [i, i % 7, 1] }));
  const table = await db.createTable("methods", data, { mode: "overwrite" });
  assert.ok((await db.tableNames()).includes("methods"));
  assert.equal(await table.countRows(), 300);
  assert.equal(await table.countRows("kind = 'odd'"), 150);
  const near = await table.vectorSearch([10, 3, 1]).where("id > 5").select(["id"]).limit(3).toArray();
  assert.equal(near[0].id, 10n);
  assert.deepEqual(near.map((r) => Object.keys(r.toJSON())), [["id", "_distance"], ["id", "_distance"], ["id", "_distance"]]);
  assert.equal((await table.query().where("id < 10").offset(2).limit(3).toArray()).length, 3);
  const computed = await table.query().where("id = 4").select({ twice: "id * 2" }).toArray();
  assert.equal(computed[0].twice, 8n);
  const v1 = await table.version();
  assert.equal((await table.delete("id >= 290")).numDeletedRows, 10);
  assert.equal((await table.update({ where: "id = 1", values: { kind: "one" } })).rowsUpdated, 1);
  assert.equal((await table.update({ where: "id = 2", valuesSql: { kind: "concat(kind, '!')" } })).rowsUpdated, 1);
  const merged = await table.mergeInsert("id").whenMatchedUpdateAll().whenNotMatchedInsertAll()
    .execute([{ id: 3, kind: "three", vector: [3, 3, 3] }, { id: 1000, kind: "new", vector: [1, 1, 1] }]);
  assert.deepEqual([merged.numUpdatedRows, merged.numInsertedRows], [1, 1]);
  assert.equal(await table.countRows(), 291);
  await table.createIndex("vector", { config: lancedb.Index.ivfPq({ numPartitions: 4, numSubVectors: 3, distanceType: "l2" }) });
  assert.deepEqual((await table.listIndices()).map((i) => [i.indexType, i.columns]), [["IVF_PQ", ["vector"]]]);
  assert.equal((await table.vectorSearch([10, 3, 1]).nprobes(4).refineFactor(5).limit(1).toArray())[0].id, 10n);
  assert.equal((await table.vectorSearch([10, 3, 1]).distanceType("cosine").bypassVectorIndex().limit(1).toArray()).length, 1);
  await table.checkout(v1);
  assert.equal(await table.countRows(), 300);
  await assert.rejects(table.add([{ id: 1 }]), /checked out/);
  await table.restore();
  assert.equal(await table.countRows(), 300);
  assert.ok((await table.version()) > v1);
  assert.ok((await table.listVersions()).length >= 6);
});

test("an embedding function changed in the background, waited on", async () => {
  const words = getRegistry().get("sentence-transformers").create();
  const table = await db.createEmptyTable("changing", LanceSchema({ text: words.sourceField(), vector: words.vectorField() }),
    { mode: "overwrite" });
  await table.add([{ text: "apples and pears" }, { text: "a rocket to the moon" }]);
  const counter = getRegistry().get("openai").create({ model: "m", baseUrl: services.openai.url, apiKey: "$var:openai_key", dim: 16 });
  const operation = await table.alterEmbeddingFunction("vector", counter, { wait: true });
  assert.equal(operation.state, "succeeded");
  assert.equal((await table.schema()).fields[1].type.listSize, 16);
  assert.equal((await table.search("a rocket to the moon").limit(1).toArray())[0].text, "a rocket to the moon");
});

test("errors are classes with the service's reason, never raw grpc-js errors", async () => {
  await assert.rejects(db.openTable("no_such_table"), (error: unknown) =>
    error instanceof lancedb.NotFoundError && error.reason === "TABLE_NOT_FOUND");
  const table = await db.createTable("errors", [{ id: 1, vector: [1, 2] }], { mode: "overwrite" });
  await assert.rejects(table.query().where("id >>> 1").toArray(), (error: unknown) =>
    error instanceof lancedb.InvalidArgumentError && error.reason === "INVALID_FILTER");
  await assert.rejects(table.add([{ id: 2, vector: [1, 2, 3] }]), (error: unknown) =>
    error instanceof lancedb.BadVectorError && error.reason === "BAD_VECTOR");
  await table.add([{ id: 2, vector: [1, 2, 3] }, { id: 3, vector: [3, 4] }], { onBadVectors: "drop" });
  assert.equal(await table.countRows(), 2);
  await assert.rejects(db.createTable("errors", [{ id: 1 }]), lancedb.AlreadyExistsError);
  const unreachable = await lancedb.connect("grpc://127.0.0.1:1", { timeout: 2 });
  await assert.rejects(unreachable.tableNames(), (error: unknown) =>
    error instanceof lancedb.UnavailableError || error instanceof lancedb.DeadlineExceededError);
  unreachable.close();
});

test("the same search through the Python client gives the same rows and distances", async () => {
  const func = getRegistry().get("sentence-transformers").create();
  const table = await db.createEmptyTable("congruent", LanceSchema({ text: func.sourceField(), vector: func.vectorField() }),
    { mode: "overwrite" });
  await table.add(["a cat on a sofa", "a dog in the park", "stocks fell sharply", "the cat sleeps"].map((text) => ({ text })));
  const mine = (await table.search("kitten").where("text != 'stocks fell sharply'").limit(3).toArray())
    .map((r) => [r.text, Number((r._distance as number).toFixed(5))]);
  const theirs = await python(`
import json, vectorlane
db = vectorlane.connect("${services.storeUri}")
rows = db.open_table("congruent").search("kitten").where("text != 'stocks fell sharply'").limit(3).to_list()
print(json.dumps([[r["text"], round(r["_distance"], 5)] for r in rows]))`);
  assert.deepEqual(mine, theirs);
  assert.equal(mine.length, 3);
});

test("Arrow tables go in and come out as they are", async () => {
  const input = arrow.tableFromArrays({ id: Int32Array.from([1, 2, 3]) });
  const table = await db.createTable("arrow_in", input, { mode: "overwrite" });
  const out = await table.toArrow();
  assert.deepEqual(out.getChild("id")!.toArray(), Int32Array.from([1, 2, 3]));
});

test("grpcs:// with mutual TLS and an api key; a missing key or certificate is refused", async () => {
  const store = await startTlsStore(services.embedPort);
  try {
    const tls = { rootCertificates: readFileSync(store.ca), certChain: readFileSync(store.clientCert),
      privateKey: readFileSync(store.clientKey) };
    const secure = await lancedb.connect(store.uri, { apiKey: store.token, tls, timeout: 30 });
    await secure.createTable("over_tls", [{ id: 1 }]);
    assert.deepEqual(await secure.tableNames(), ["over_tls"]);
    await secure.dropTable("over_tls");
    assert.deepEqual(await secure.tableNames(), []);
    secure.close();
    const keyless = await lancedb.connect(store.uri, { tls, timeout: 30 });
    await assert.rejects(keyless.tableNames(), lancedb.UnauthenticatedError);
    keyless.close();
    const certless = await lancedb.connect(store.uri, { apiKey: store.token, tls: { rootCertificates: tls.rootCertificates }, timeout: 5 });
    await assert.rejects(certless.tableNames(), (error: unknown) => error instanceof lancedb.VectorlaneError);
    certless.close();
  } finally {
    await store.stop();
  }
});

test("reads are retried on UNAVAILABLE by the channel's service config: a store that comes up meanwhile answers", async () => {
  const port = await freePort();
  const client = await lancedb.connect(`grpc://127.0.0.1:${port}`, { timeout: 30 });
  let proxy: net.Server | undefined;
  const sockets: net.Socket[] = [];
  const later = setTimeout(() => { // the store "comes up": a proxy to it starts listening on the port
    proxy = net.createServer((socket) => {
      const upstream = net.connect(services.storePort, "127.0.0.1");
      sockets.push(socket, upstream);
      // one side ending (the client closing at the test's end) ends the other, never an uncaught error
      for (const side of [socket, upstream]) side.on("error", () => { socket.destroy(); upstream.destroy(); });
      socket.pipe(upstream).pipe(socket);
    });
    proxy.listen(port, "127.0.0.1");
  }, 300);
  try {
    assert.ok(Array.isArray(await client.tableNames())); // the first attempt finds nothing listening
    assert.ok(proxy, "the call was answered before anything listened: this test would prove nothing");
  } finally {
    clearTimeout(later);
    client.close();
    for (const socket of sockets) socket.destroy();
    proxy?.close();
  }
});

const DOCS = ["the quick brown fox", "lazy dog sleeps", "quick dog runs", "a cat", "brown cat and dog",
  "foxes are quick", "the dog and the fox", "a quick quick dog"];

test("full-text search, query objects and hybrid search with RRF: the Python client's rows, scores and order", async () => {
  const rows = DOCS.map((text, id) => ({ id, text, vector: [id / 8, 1 - id / 8] }));
  const table = await db.createTable("fts_docs", rows, { mode: "overwrite" });
  await table.createIndex("text", { config: lancedb.Index.fts({ withPosition: true }) });
  const indices = await table.listIndices();
  assert.deepEqual(indices.map((i) => [i.indexType, i.columns]), [["FTS", ["text"]]]);

  const byWords = await table.search("quick dog", "fts").limit(5).toArray();
  const mine = byWords.map((r) => [Number(r.id), Number((r._score as number).toFixed(5))]);
  const fused = await table.query().fullTextSearch("dog").nearestTo([0.5, 0.5])
    .rerank(await lancedb.rerankers.RRFReranker.create(60)).limit(4).toArray();
  const mineFused = fused.map((r) => [Number(r.id), Number((r._relevance_score as number).toFixed(6))]);
  const theirs = await python(`
import json, vectorlane
t = vectorlane.connect("${services.storeUri}").open_table("fts_docs")
words = t.search("quick dog", query_type="fts").limit(5).to_list()
fused = t.search(query_type="hybrid").vector([0.5, 0.5]).text("dog").limit(4).to_list()
print(json.dumps([[[r["id"], round(r["_score"], 5)] for r in words],
                  [[r["id"], round(r["_relevance_score"], 6)] for r in fused]]))`) as [number[][], number[][]];
  assert.deepEqual(mine, theirs[0]);
  assert.deepEqual(mineFused, theirs[1]);
  assert.equal(mine.length, 5);

  const phrase = await table.query().fullTextSearch(new lancedb.PhraseQuery("quick dog", "text")).toArray();
  assert.ok(phrase.length > 0 && phrase.every((r) => String(r.text).includes("quick dog")));
  const both = await table.query().fullTextSearch(new lancedb.BooleanQuery([
    [lancedb.Occur.Must, new lancedb.MatchQuery("dog", "text")],
    [lancedb.Occur.MustNot, new lancedb.MatchQuery("quick", "text")]])).limit(10).toArray();
  assert.ok(both.length > 0 && both.every((r) => String(r.text).includes("dog") && !String(r.text).includes("quick")));
  const filtered = await table.query().fullTextSearch("dog").where("id > 3").select(["id"]).limit(10).toArray();
  assert.ok(filtered.length > 0 && filtered.every((r) => Number(r.id) > 3));
  await assert.rejects(table.query().fullTextSearch("dog", { columns: "nope" }).toArray(),
    (e: lancedb.VectorlaneError) => e.reason === "NO_FTS_INDEX");
  await table.dropIndex("text_idx");
  assert.deepEqual(await table.listIndices(), []);
});

test("the table surface LanceDB's TypeScript client has: optimize, stats, tags, add / alter / drop columns", async () => {
  const table = await db.createTable("surface", [{ id: 1, text: "a" }], { mode: "overwrite" });
  for (let i = 2; i <= 4; i++) await table.add([{ id: i, text: String.fromCharCode(96 + i) }]);
  const before = await table.stats();
  assert.equal(before.numRows, 4);
  assert.equal(before.fragmentStats.numFragments, 4);
  const done = await table.optimize();
  assert.equal(done.compaction.fragmentsRemoved, 4);
  assert.equal((await table.stats()).fragmentStats.numFragments, 1);
  await table.tags.create("first", 1);
  assert.deepEqual(await table.tags.list(), { first: { version: 1 } });
  assert.equal(await table.tags.getVersion("first"), 1);
  await table.tags.delete("first");
  assert.deepEqual(await table.tags.list(), {});
  await table.addColumns([{ name: "twice", valueSql: "id * 2" }]);
  await table.alterColumns([{ path: "text", rename: "letter" }]);
  await table.dropColumns(["twice"]);
  const rows = await table.query().toArray();
  assert.deepEqual(table.columnNames(), ["id", "letter"]);
  assert.deepEqual(rows.map((r) => String(r.letter)).sort(), ["a", "b", "c", "d"]);
});

test("Arrow objects from another copy of apache-arrow (its CommonJS build) are taken as the client's own", async () => {
  const other = createRequire(import.meta.url)("apache-arrow") as typeof arrow;
  assert.notEqual(other.Table, arrow.Table); // a separate copy: its classes fail this copy's instanceof
  const schema = new other.Schema([new other.Field("id", new other.Int64(), false), new other.Field("name", new other.Utf8(), true),
    new other.Field("vector", new other.FixedSizeList(2, new other.Field("item", new other.Float32(), true)), true),
    new other.Field("tags", new other.List(new other.Field("item", new other.Utf8(), true)), true)],
  new Map([["owner", "tests"]]));
  const empty = await db.createEmptyTable("foreign_schema", schema, { mode: "overwrite" });
  const stored = await empty.schema();
  assert.deepEqual(stored.fields.map((f) => [f.name, String(f.type)]),
    [["id", "Int64"], ["name", "Utf8"], ["vector", "FixedSizeList[2]<Float32>"], ["tags", "List<Utf8>"]]);

  const rows = other.tableFromArrays({ id: new BigInt64Array([1n, 2n, 3n]), name: ["a", "b", "c"] });
  const withVectors = rows.assign(new other.Table({ vector: other.vectorFromArray([[1, 0], [0, 1], [1, 1]],
    new other.FixedSizeList(2, new other.Field("item", new other.Float32(), true))) }));
  const table = await db.createTable("foreign_rows", withVectors, { mode: "overwrite" });
  await table.add(other.tableFromArrays({ id: new BigInt64Array([4n]), name: ["d"] }).assign(new other.Table({
    vector: other.vectorFromArray([[0.9, 0.1]], new other.FixedSizeList(2, new other.Field("item", new other.Float32(), true))) })));
  assert.equal(await table.countRows(), 4);
  const nearest = await table.search([1, 0]).limit(2).toArray();
  assert.deepEqual(nearest.map((r) => r.name), ["a", "d"]);
  await empty.add(other.tableFromArrays({ id: new BigInt64Array([7n]), name: ["x"] }));
  assert.equal(await empty.countRows(), 1);
});

test("tokenize with an index's tokenizer, the index's format version, and orderBy on searches and reads", async () => {
  const rows = Array.from({ length: 30 }, (_, i) => ({ id: i, text: i % 2 ? "Running dogs in cafés" : "こんにちは世界 dogs",
    rank: (i * 7) % 11, vector: [i % 5, 1] }));
  const table = await db.createTable("tokens", rows, { mode: "overwrite" });
  await table.createIndex("text", { config: lancedb.Index.fts({ baseTokenizer: "icu", stem: false, removeStopWords: false }) });
  assert.deepEqual(await table.tokenize("Hello, こんにちは世界!", { column: "text" }),
    [{ text: "hello", position: 0 }, { text: "こんにちは", position: 1 }, { text: "世界", position: 2 }]);
  assert.deepEqual((await table.listIndices()).map((i) => [i.indexType, i.indexVersion]), [["FTS", 2]]);
  await assert.rejects(table.tokenize("x", {}), TypeError);
  await assert.rejects(table.tokenize("x", { indexName: "nope" }),
    (e: unknown) => e instanceof lancedb.VectorlaneError && e.reason === "NO_FTS_INDEX");

  const best = await table.query().fullTextSearch("dogs").limit(12).select(["id", "rank"]).toArray();
  const ordered = await table.query().fullTextSearch("dogs").orderBy([{ columnName: "rank", ascending: false }])
    .limit(12).select(["id", "rank"]).toArray();
  const expected = [...best].sort((a, b) => Number(b.rank) - Number(a.rank)).map((r) => r.id);
  assert.deepEqual(ordered.map((r) => r.id), expected);
  const read = await table.query().where("id < 10").orderBy([{ columnName: "rank" }, { columnName: "id", ascending: false }])
    .select(["id"]).toArray();
  const byRank = rows.filter((r) => r.id < 10).sort((a, b) => a.rank - b.rank || b.id - a.id).map((r) => BigInt(r.id));
  assert.deepEqual(read.map((r) => r.id), byRank);
});
