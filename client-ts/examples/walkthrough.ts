// LanceDB's TypeScript embedding walkthrough against vectorlane: only the import and the connect line differ.
// Against `make run`: `npm run build && node dist/examples/walkthrough.js` (VECTORLANE_URI to point elsewhere).
import * as lancedb from "../src/index.js";                          // was: "@lancedb/lancedb"
import { getRegistry, LanceSchema } from "../src/embeddings/index.js"; // was: "@lancedb/lancedb/embeddings"
import { Utf8 } from "apache-arrow";

const db = await lancedb.connect(process.env.VECTORLANE_URI ?? "grpc://localhost:50051"); // was: a directory
const func = getRegistry().get("sentence-transformers").create();  // hosted: the store embeds rows and queries
const schema = LanceSchema({ text: func.sourceField(new Utf8()), vector: func.vectorField() });
const table = await db.createEmptyTable("words", schema, { mode: "overwrite" });
await table.add([{ text: "hello world" }, { text: "goodbye world" }]);
const rows = await table.search("greetings").limit(1).toArray();
console.log(rows.map((r) => ({ text: r.text, _distance: r._distance })));
console.log(JSON.parse((await table.schema()).metadata.get("embedding_functions")!));
db.close();
