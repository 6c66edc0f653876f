//! The seed's Rust walkthrough: the `openai` function (here against any OpenAI-compatible endpoint the embed
//! service's operator allows), a table whose `text` the store embeds, and a search by text.
//!
//!     VECTORLANE_URI=grpc://127.0.0.1:50051 OPENAI_BASE_URL=http://127.0.0.1:8080/v1 cargo run --example openai
//!
//! Without OPENAI_BASE_URL it uses the embed service's own sentence-transformers (what `make run` serves).
use serde_json::json;
use vectorlane::{connect, EmbeddingDefinition, HostedFunction};

#[tokio::main]
async fn main() -> vectorlane::Result<()> {
    let uri = std::env::var("VECTORLANE_URI").unwrap_or_else(|_| "grpc://127.0.0.1:50051".to_string());
    let db = connect(&uri).execute().await?;
    let function = match std::env::var("OPENAI_BASE_URL") {
        Ok(base_url) => HostedFunction::new("openai").setting("name", "text-embedding-3-small")
            .setting("base_url", base_url).setting("api_key", "$var:openai_key"),
        Err(_) => HostedFunction::new("sentence-transformers"),
    };
    db.embedding_registry().register("words", function);
    let rows = vec![json!({"id": 1, "text": "hello world"}), json!({"id": 2, "text": "goodbye world"})];
    let table = db.create_table("rust_words", rows)
        .add_embedding(EmbeddingDefinition::new("text", "words", Some("vector")))?
        .mode_overwrite()
        .execute().await?;
    table.add(vec![json!({"id": 3, "text": "the stock market fell"})]).await?;
    let found = table.query().nearest_to("greetings")?.select(&["id", "text"]).limit(2).execute().await?;
    for row in &found {
        println!("{}", row);
    }
    println!("{} rows, versions: {:?}", table.count_rows(None).await?,
             table.list_versions().await?.iter().map(|v| v.operation.clone()).collect::<Vec<_>>());
    Ok(())
}
