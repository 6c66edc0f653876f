//! The Rust client against real services started here (the embed service with the real MiniLM, a store, and a
//! second store requiring a token): LanceDB's walkthrough shape, every table method, errors with the
//! service's reasons, deadlines, auth, and the same search through the Python client giving the same rows
//! and distances. One test function: the services (and MiniLM) start once.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use vectorlane::{connect, DataType, EmbeddingDefinition, Error, Field, HostedFunction, Index, TlsOptions};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    std::env::var("VECTORLANE_PYTHON").map(PathBuf::from).unwrap_or_else(|_| repo().join(".venv/bin/python"))
}

struct Service {
    child: Child,
    address: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python -m <package> --port 0 ...`, once it has printed its address (and, for the embed service, that it
/// serves: MiniLM preloaded).
fn start(package: &str, args: &[&str], ready: &str) -> Service {
    let mut child = Command::new(python()).arg("-m").arg(package).args(["--port", "0", "--metrics-port", "0"])
        .args(args).current_dir(repo())
        .env("HF_HUB_OFFLINE", "1").env("TRANSFORMERS_OFFLINE", "1").env("TOKENIZERS_PARALLELISM", "false")
        .stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start a service");
    let seen = Arc::new(Mutex::new(String::new()));
    for stream in [Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                   Box::new(child.stderr.take().unwrap())] {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().flatten() {
                seen.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    let banner = format!("vectorlane {} service on ", if package == "embed_service" { "embed" } else { "store" });
    let began = Instant::now();
    loop {
        let text = seen.lock().unwrap().clone();
        if let Some(at) = text.find(&banner) {
            let address = text[at + banner.len()..].split_whitespace().next().unwrap().to_string();
            if text.contains(ready) {
                return Service { child, address };
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{} exited ({}):\n{}", package, status, text);
        }
        if began.elapsed() > Duration::from_secs(240) {
            panic!("{} did not start in 240 s:\n{}", package, text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn reason(error: &Error) -> &str {
    error.reason()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_against_real_services() {
    let data = std::env::temp_dir().join(format!("vectorlane-rs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let embed = start("embed_service", &["--preload", "sentence-transformers"], "health SERVING");
    let data_dir = data.join("data").to_string_lossy().to_string();
    let store = start("store_service", &["--data-dir", &data_dir, "--embed-address", &embed.address], "");
    let uri = format!("grpc://{}", store.address);
    let db = connect(&uri).execute().await.expect("connect");

    // ----- LanceDB's walkthrough: a registered function, rows without vectors, a search by text
    db.embedding_registry().register("minilm", HostedFunction::new("sentence-transformers"));
    let rows = vec![json!({"id": 1, "text": "hello world"}), json!({"id": 2, "text": "goodbye world"})];
    let table = db.create_table("words", rows)
        .add_embedding(EmbeddingDefinition::new("text", "minilm", Some("vector"))).unwrap()
        .execute().await.expect("create_table");
    assert_eq!(table.embedding_functions()[0].name, "sentence-transformers");
    assert_eq!(table.embedding_functions()[0].source_column, "text");
    table.add(vec![json!({"id": 3, "text": "the stock market fell"})]).await.expect("add");
    assert_eq!(table.count_rows(None).await.unwrap(), 3);
    assert_eq!(table.count_rows(Some("id > 1")).await.unwrap(), 2);
    let found = table.query().nearest_to("greetings").unwrap().limit(2).execute().await.expect("search");
    assert_eq!(found[0]["text"], "hello world");
    assert_eq!(found[0]["vector"].as_array().unwrap().len(), 384);
    assert!(found[0]["_distance"].as_f64().unwrap() < found[1]["_distance"].as_f64().unwrap());
    let selected = table.query().nearest_to("markets").unwrap().select(&["id"]).limit(1).execute().await.unwrap();
    assert_eq!(selected, vec![json!({"id": 3, "_distance": selected[0]["_distance"]})]);
    let filtered = table.query().nearest_to("greetings").unwrap().only_if("id >= 2").limit(5).execute().await.unwrap();
    assert!(filtered.iter().all(|r| r["id"].as_i64().unwrap() >= 2) && filtered.len() == 2);
    assert!(db.table_names().await.unwrap().contains(&"words".to_string()));

    // ----- the same search through the Python client: the same rows and distances
    let script = format!(
        "import json, vectorlane\n\
         t = vectorlane.connect('{}').open_table('words')\n\
         print(json.dumps([[r['id'], r['_distance']] for r in t.search('greetings').limit(3).to_list()]))", uri);
    let output = Command::new(python()).args(["-c", &script]).current_dir(repo()).output().expect("python");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let python_rows: Vec<(i64, f64)> = serde_json::from_slice(&output.stdout).unwrap();
    let rust_rows = table.query().nearest_to("greetings").unwrap().limit(3).execute().await.unwrap();
    assert_eq!(rust_rows.len(), python_rows.len());
    for (ours, (id, distance)) in rust_rows.iter().zip(&python_rows) {
        assert_eq!(ours["id"].as_i64().unwrap(), *id);
        assert!((ours["_distance"].as_f64().unwrap() - distance).abs() < 1e-5);
    }

    // ----- update, delete, versions, checkout, restore, an index
    let (_, updated) = table.update().only_if("id = 2").column("text", "'farewell world'").execute().await.unwrap();
    assert_eq!(updated, 1);
    let read = table.query().only_if("id = 2").execute().await.unwrap();
    assert_eq!(read[0]["text"], "farewell world");
    let before_delete = table.version().await.unwrap();
    table.delete("id = 3").await.unwrap();
    assert_eq!(table.count_rows(None).await.unwrap(), 2);
    let operations: Vec<String> = table.list_versions().await.unwrap().into_iter().map(|v| v.operation).collect();
    assert_eq!(operations.first().map(String::as_str), Some("create"));
    assert!(operations.contains(&"update".to_string()) && operations.contains(&"delete".to_string()));
    let mut old = db.open_table("words").await.unwrap();
    old.checkout(before_delete).await.unwrap();
    assert_eq!(old.count_rows(None).await.unwrap(), 3);
    assert!(matches!(old.add(vec![json!({"id": 9, "text": "x"})]).await, Err(Error::Usage(_))));
    let restored = old.restore().await.unwrap();
    assert!(restored > before_delete);
    assert_eq!(table.count_rows(None).await.unwrap(), 3);
    table.create_index("vector", Index::Flat).await.expect("create_index");
    let after = table.list_versions().await.unwrap();
    assert_eq!(after.last().unwrap().operation, "create_index");
    assert_eq!(table.query().nearest_to("greetings").unwrap().limit(1).execute().await.unwrap()[0]["id"], 1);

    // ----- an empty table from a schema, searched by vector
    let plain = db.create_empty_table("plain", vec![Field::new("id", DataType::Int64, false),
                                                     Field::new("vector", DataType::Vector(2), true)])
        .execute().await.expect("create_empty_table");
    assert_eq!(plain.count_rows(None).await.unwrap(), 0);
    plain.add(vec![json!({"id": 1, "vector": [1.0, 0.0]}), json!({"id": 2, "vector": [0.0, 1.0]})]).await.unwrap();
    let nearest = plain.query().nearest_to(vec![0.9f32, 0.1]).unwrap().limit(1).execute().await.unwrap();
    assert_eq!(nearest[0]["id"], 1);
    let everything = plain.query().execute().await.unwrap();
    assert_eq!(everything.len(), 2);

    // ----- errors carry the service's reasons
    let missing = db.open_table("nope").await.err().expect("a missing table");
    assert!(matches!(missing, Error::NotFound(_)) && reason(&missing) == "TABLE_NOT_FOUND", "{:?}", missing);
    let bad = table.count_rows(Some("id >")).await.err().expect("a bad filter");
    assert!(matches!(bad, Error::InvalidArgument(_)) && reason(&bad) == "INVALID_FILTER", "{:?}", bad);
    let again = db.create_table("plain", vec![json!({"id": 1})]).execute().await.err().expect("a taken name");
    assert!(matches!(again, Error::AlreadyExists(_)), "{:?}", again);
    let wrong = plain.query().nearest_to(vec![1.0f32, 2.0, 3.0]).unwrap().execute().await.err().expect("3 dims");
    assert!(matches!(wrong, Error::InvalidArgument(_)) && reason(&wrong) == "WRONG_DIMENSION", "{:?}", wrong);
    let unregistered = db.create_table("x", vec![json!({"text": "a"})])
        .add_embedding(EmbeddingDefinition::new("text", "not-registered", None)).err().expect("unregistered");
    assert!(matches!(unregistered, Error::Usage(_)));
    assert!(matches!(connect("http://x:1").execute().await, Err(Error::Usage(_))));
    db.embedding_registry().register("leaky", HostedFunction::new("openai").setting("api_key", "sk-plain-key-123"));
    let leaky = db.create_table("leaky", vec![json!({"text": "x"})])
        .add_embedding(EmbeddingDefinition::new("text", "leaky", None)).unwrap().execute().await.err()
        .expect("a key given as a value");
    assert!(matches!(leaky, Error::InvalidArgument(_)) && reason(&leaky) == "LITERAL_SECRET", "{:?}", leaky);
    assert!(!leaky.to_string().contains("sk-plain-key-123"));
    db.drop_table("plain").await.unwrap();
    assert!(matches!(db.open_table("plain").await, Err(Error::NotFound(_))));

    // ----- deadlines: a call that cannot finish in time is DEADLINE_EXCEEDED
    let hurried = connect(&uri).timeout(Some(Duration::from_millis(1))).execute().await.unwrap();
    let late = match hurried.open_table("words").await {
        Err(error) => error,
        Ok(words) => words.query().nearest_to("a text the store must have embedded first").unwrap().execute().await
            .err().expect("1 ms is too short for a search by text"),
    };
    assert!(matches!(late, Error::DeadlineExceeded(_)), "{:?}", late);

    // ----- auth: a store requiring a token refuses a call without it, with the reason
    let secured_dir = data.join("secured").to_string_lossy().to_string();
    let secured = start("store_service", &["--data-dir", &secured_dir, "--embed-address", &embed.address,
                                           "--auth-tokens", "rust-token"], "");
    let secured_uri = format!("grpc://{}", secured.address);
    let anonymous = connect(&secured_uri).execute().await.unwrap();
    let refused = anonymous.table_names().await.err().expect("no token");
    assert!(matches!(refused, Error::Unauthenticated(_)), "{:?}", refused);
    let wrong_key = connect(&secured_uri).api_key("nope").execute().await.unwrap();
    assert!(matches!(wrong_key.table_names().await, Err(Error::Unauthenticated(_))));
    let keyed = connect(&secured_uri).api_key("rust-token").execute().await.unwrap();
    assert_eq!(keyed.table_names().await.unwrap(), Vec::<String>::new());

    // ----- mutual TLS and a token (certificates from the Python tests' throwaway CA)
    let certs_dir = data.join("certs");
    let script = format!(
        "import json, pathlib\nfrom tests.security_certs import make_certificates\n\
         c = make_certificates(pathlib.Path({:?}))\n\
         print(json.dumps({{k: str(getattr(c, k)) for k in ('ca', 'server_cert', 'server_key', 'client_cert', \
         'client_key')}}))", certs_dir.to_string_lossy());
    let output = Command::new(python()).args(["-c", &script]).current_dir(repo()).output().expect("python");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let certs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let path = |k: &str| certs[k].as_str().unwrap().to_string();
    let tls_dir = data.join("tls").to_string_lossy().to_string();
    let tls_store = start("store_service", &["--data-dir", &tls_dir, "--embed-address", &embed.address,
                                             "--tls-cert", &path("server_cert"), "--tls-key", &path("server_key"),
                                             "--tls-client-ca", &path("ca"), "--auth-tokens", "rust-token"], "");
    let tls_uri = format!("grpcs://{}", tls_store.address);
    let read = |k: &str| std::fs::read(path(k)).unwrap();
    let mutual = TlsOptions { ca_pem: read("ca"), client_cert_pem: Some(read("client_cert")),
                              client_key_pem: Some(read("client_key")), server_name: Some("localhost".into()) };
    let by_address = TlsOptions { server_name: None, ..mutual.clone() };
    assert!(matches!(connect(&tls_uri).tls(by_address).execute().await, Err(Error::Usage(_))));
    let over_tls = connect(&tls_uri).tls(mutual.clone()).api_key("rust-token").execute().await.expect("mTLS");
    over_tls.embedding_registry().register("minilm", HostedFunction::new("sentence-transformers"));
    let secure_table = over_tls.create_table("secure", vec![json!({"text": "hello over TLS"})])
        .add_embedding(EmbeddingDefinition::new("text", "minilm", None)).unwrap().execute().await.expect("create over TLS");
    assert_eq!(secure_table.query().nearest_to("hello").unwrap().limit(1).execute().await.unwrap()[0]["text"],
               "hello over TLS");
    let no_client_cert = TlsOptions { ca_pem: read("ca"), server_name: Some("localhost".into()),
                                      ..TlsOptions::default() };
    let refused = match connect(&tls_uri).tls(no_client_cert).api_key("rust-token").execute().await {
        Err(error) => error,
        Ok(connection) => connection.table_names().await.err().expect("the store asks for a client certificate"),
    };
    assert!(matches!(refused, Error::Transport(_) | Error::Unavailable(_)), "{:?}", refused);
    assert!(matches!(connect(&tls_uri).execute().await, Err(Error::Usage(_))));  // grpcs:// needs TLS options
    let no_token = connect(&tls_uri).tls(mutual).execute().await.unwrap();
    assert!(matches!(no_token.table_names().await, Err(Error::Unauthenticated(_))));

    drop(tls_store);
    drop(secured);
    drop(store);
    drop(embed);
    let _ = std::fs::remove_dir_all(&data);
}
