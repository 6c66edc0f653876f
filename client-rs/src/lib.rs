//! vectorlane's Rust client: LanceDB's Rust SDK shape over the store's gRPC contract.
//!
//! ```no_run
//! # async fn run() -> vectorlane::Result<()> {
//! use vectorlane::{connect, EmbeddingDefinition, HostedFunction};
//! let db = connect("grpc://127.0.0.1:50051").execute().await?;
//! db.embedding_registry().register("minilm", HostedFunction::new("sentence-transformers"));
//! let rows = vec![serde_json::json!({"text": "hello world"})];
//! let table = db.create_table("words", rows)
//!     .add_embedding(EmbeddingDefinition::new("text", "minilm", Some("vector")))?
//!     .execute().await?;
//! let found = table.query().nearest_to("greetings")?.limit(1).execute().await?;
//! # Ok(()) }
//! ```
//!
//! Rows are JSON objects (`serde_json::Value`): no Arrow crate is packaged where this builds. The store embeds
//! rows without vectors and text queries with the table's hosted functions, so every function the embed service
//! hosts is available by name, with its settings (secrets only as `$var:name` references).

pub mod error;
pub mod grpc;
pub mod rows;

#[allow(clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/vectorlane.store.v1.rs"));
}

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;

pub use error::{Details, Error, Result};
pub use grpc::TlsOptions;
use grpc::Channel;
use proto::search_request::Query as SearchQuery;

const SERVICE: &str = "/vectorlane.store.v1.StorageService/";

fn method(name: &str) -> String {
    format!("{}{}", SERVICE, name)
}

/// LanceDB's `connect(uri)`: `grpc://host:port` (or `grpcs://` with `.tls(...)`), then `.execute().await`.
pub fn connect(uri: &str) -> ConnectBuilder {
    ConnectBuilder { uri: uri.to_string(), api_key: None, timeout: Some(Duration::from_secs(60)), tls: None }
}

pub struct ConnectBuilder {
    uri: String,
    api_key: Option<String>,
    timeout: Option<Duration>,
    tls: Option<TlsOptions>,
}

impl ConnectBuilder {
    /// The store's API token, sent as `authorization: Bearer <key>` on every call.
    pub fn api_key(mut self, key: &str) -> Self {
        self.api_key = Some(key.to_string());
        self
    }

    /// Each call's deadline (default 60 s; None: none).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// TLS for a `grpcs://` URI: the CA that signs the store's certificate, and a client certificate for mTLS.
    pub fn tls(mut self, options: TlsOptions) -> Self {
        self.tls = Some(options);
        self
    }

    pub async fn execute(self) -> Result<Connection> {
        let (secure, authority) = if let Some(rest) = self.uri.strip_prefix("grpc://") {
            (false, rest)
        } else if let Some(rest) = self.uri.strip_prefix("grpcs://") {
            (true, rest)
        } else {
            return Err(Error::Usage(format!("{:?}: a store URI is grpc://host:port or grpcs://host:port", self.uri)));
        };
        let authority = authority.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
            return Err(Error::Usage(format!("{:?}: a store URI is grpc://host:port or grpcs://host:port", self.uri)));
        }
        let tls = match (secure, self.tls) {
            (true, Some(options)) => Some(options),
            (true, None) => return Err(Error::Usage("grpcs:// needs .tls(TlsOptions { ca_pem, .. })".into())),
            (false, Some(_)) => return Err(Error::Usage("TLS options given for a grpc:// (plaintext) URI".into())),
            (false, None) => None,
        };
        let channel = Channel::connect(authority, tls, self.api_key, self.timeout).await?;
        Ok(Connection { channel, registry: EmbeddingRegistry::default() })
    }
}

/// A function the embed service hosts, by its registry name with settings (LanceDB's embedding function
/// object, registered on the connection under a name of the user's choosing).
#[derive(Clone, Debug)]
pub struct HostedFunction {
    pub name: String,
    pub settings: BTreeMap<String, Json>,
}

impl HostedFunction {
    pub fn new(name: &str) -> Self {
        HostedFunction { name: name.to_string(), settings: BTreeMap::new() }
    }

    /// One setting (`"model"`, `"device"`, ...). A secret only as a `"$var:name"` reference: the embed service
    /// resolves it, and keys never travel in requests or land in table metadata.
    pub fn setting(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.settings.insert(key.to_string(), value.into());
        self
    }
}

/// The connection's registered functions (LanceDB's `db.embedding_registry()`).
#[derive(Clone, Default)]
pub struct EmbeddingRegistry {
    functions: Arc<Mutex<HashMap<String, HostedFunction>>>,
}

impl EmbeddingRegistry {
    pub fn register(&self, name: &str, function: HostedFunction) {
        self.functions.lock().expect("registry lock").insert(name.to_string(), function);
    }

    pub fn get(&self, name: &str) -> Option<HostedFunction> {
        self.functions.lock().expect("registry lock").get(name).cloned()
    }

    pub fn functions(&self) -> Vec<String> {
        let mut names: Vec<String> = self.functions.lock().expect("registry lock").keys().cloned().collect();
        names.sort();
        names
    }
}

/// LanceDB's `EmbeddingDefinition`: which column a registered function embeds into which vector column.
#[derive(Clone, Debug)]
pub struct EmbeddingDefinition {
    pub source_column: String,
    pub embedding_name: String,
    pub dest_column: Option<String>,
}

impl EmbeddingDefinition {
    pub fn new(source_column: &str, embedding_name: &str, dest_column: Option<&str>) -> Self {
        EmbeddingDefinition { source_column: source_column.to_string(), embedding_name: embedding_name.to_string(),
                              dest_column: dest_column.map(str::to_string) }
    }
}

/// A column of an empty table's schema.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
}

impl Field {
    pub fn new(name: &str, data_type: DataType, nullable: bool) -> Self {
        Field { name: name.to_string(), data_type, nullable }
    }
}

/// The column types the store's field schema names (an Arrow schema goes as Arrow IPC bytes instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Int64,
    Float64,
    Utf8,
    Bool,
    /// A vector of this many float32s; 0 for one whose length the embedding function gives.
    Vector(i32),
}

pub struct Connection {
    channel: Channel,
    registry: EmbeddingRegistry,
}

impl Connection {
    pub fn embedding_registry(&self) -> &EmbeddingRegistry {
        &self.registry
    }

    /// Every table name, in order.
    pub async fn table_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut token = String::new();
        for _ in 0..100_000 {
            let reply: proto::ListTablesResponse = self.channel.unary(&method("ListTables"), &proto::ListTablesRequest {
                page_size: 1000, page_token: token.clone() }).await?;
            names.extend(reply.names);
            if reply.next_page_token.is_empty() {
                return Ok(names);
            }
            if reply.next_page_token == token {
                return Err(Error::Usage("the store repeated a page token".into()));
            }
            token = reply.next_page_token;
        }
        Err(Error::Usage("the store's table list did not end".into()))
    }

    /// A new table from rows (JSON objects); `.add_embedding(...)` first to have the store embed a column.
    pub fn create_table(&self, name: &str, rows: Vec<Json>) -> CreateTableBuilder<'_> {
        CreateTableBuilder { connection: self, name: name.to_string(), rows, fields: Vec::new(), functions: Vec::new(),
                             mode: proto::CreateMode::Create }
    }

    /// A new table with these columns and no rows.
    pub fn create_empty_table(&self, name: &str, fields: Vec<Field>) -> CreateTableBuilder<'_> {
        CreateTableBuilder { connection: self, name: name.to_string(), rows: Vec::new(), fields, functions: Vec::new(),
                             mode: proto::CreateMode::Create }
    }

    pub async fn open_table(&self, name: &str) -> Result<Table> {
        let reply: proto::GetTableResponse = self.channel.unary(&method("GetTable"),
                                                                 &proto::GetTableRequest { name: name.to_string() }).await?;
        Ok(Table::new(self.channel.clone(), reply.table.unwrap_or_default()))
    }

    pub async fn drop_table(&self, name: &str) -> Result<()> {
        let _: proto::DropTableResponse = self.channel.unary(&method("DropTable"),
                                                              &proto::DropTableRequest { name: name.to_string() }).await?;
        Ok(())
    }
}

pub struct CreateTableBuilder<'a> {
    connection: &'a Connection,
    name: String,
    rows: Vec<Json>,
    fields: Vec<Field>,
    functions: Vec<proto::EmbeddingFunctionConfig>,
    mode: proto::CreateMode,
}

impl<'a> CreateTableBuilder<'a> {
    /// The store fills `dest_column` (default "vector") from `source_column` with the function registered as
    /// `embedding_name`, for these rows and every row added later, and embeds text queries with it.
    pub fn add_embedding(mut self, definition: EmbeddingDefinition) -> Result<Self> {
        let function = self.connection.registry.get(&definition.embedding_name).ok_or_else(|| {
            Error::Usage(format!("no embedding function registered as {:?} (registered: {:?})",
                                 definition.embedding_name, self.connection.registry.functions()))
        })?;
        let vector = definition.dest_column.unwrap_or_else(|| "vector".to_string());
        if !self.fields.is_empty() && !self.fields.iter().any(|f| f.name == vector) {
            self.fields.push(Field::new(&vector, DataType::Vector(0), true));
        }
        self.functions.push(proto::EmbeddingFunctionConfig {
            name: function.name.clone(),
            model: Some(rows::to_struct(&Json::Object(function.settings.clone().into_iter().collect()))?),
            source_column: definition.source_column,
            vector_column: vector,
            source_type: 0,
        });
        Ok(self)
    }

    /// Replace a table of that name (LanceDB's `CreateTableMode::Overwrite`).
    pub fn mode_overwrite(mut self) -> Self {
        self.mode = proto::CreateMode::Overwrite;
        self
    }

    pub async fn execute(self) -> Result<Table> {
        let schema = if self.fields.is_empty() { None } else {
            Some(proto::Schema { fields: self.fields.iter().map(field_message).collect(), arrow_schema: Vec::new() })
        };
        let rows = if self.rows.is_empty() { None } else { Some(json_rows(&self.rows)?) };
        let reply: proto::CreateTableResponse = self.connection.channel.unary(&method("CreateTable"),
            &proto::CreateTableRequest { name: self.name, schema, embedding_functions: self.functions, rows,
                                         mode: self.mode as i32, on_bad_vectors: 0, fill_value: 0.0 }).await?;
        Ok(Table::new(self.connection.channel.clone(), reply.table.unwrap_or_default()))
    }
}

fn field_message(field: &Field) -> proto::Field {
    let (kind, dimensions) = match field.data_type {
        DataType::Int64 => (proto::DataType::Int64, 0),
        DataType::Float64 => (proto::DataType::Float64, 0),
        DataType::Utf8 => (proto::DataType::String, 0),
        DataType::Bool => (proto::DataType::Bool, 0),
        DataType::Vector(n) => (proto::DataType::Vector, n),
    };
    proto::Field { name: field.name.clone(), r#type: kind as i32, dimensions, nullable: field.nullable }
}

fn json_rows(rows: &[Json]) -> Result<proto::Rows> {
    let structs = rows.iter().map(rows::to_struct).collect::<Result<Vec<_>>>()?;
    Ok(proto::Rows { format: Some(proto::rows::Format::Json(proto::JsonRows { rows: structs })) })
}

fn rows_of(rows: Option<proto::Rows>) -> Result<Vec<Json>> {
    match rows.and_then(|r| r.format) {
        Some(proto::rows::Format::Json(json)) => Ok(json.rows.iter().map(rows::from_struct).collect()),
        Some(proto::rows::Format::ArrowIpc(_)) => Err(Error::Transport("the store answered Arrow IPC; JSON was asked".into())),
        None => Ok(Vec::new()),
    }
}

/// A version of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub version: i64,
    /// Seconds since the epoch.
    pub timestamp: f64,
    /// What made it (create, append, delete, update, create_index, restore:N, ...).
    pub operation: String,
    pub num_rows: i64,
}

/// The kinds of vector index `create_index` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    Flat,
    IvfFlat,
    IvfPq,
    Hnsw,
}

#[derive(Clone)]
pub struct Table {
    channel: Channel,
    name: String,
    info: proto::Table,
    checked_out: i64,
}

impl Table {
    fn new(channel: Channel, info: proto::Table) -> Table {
        Table { channel, name: info.name.clone(), info, checked_out: 0 }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table's columns as the store described them when it was opened.
    pub fn schema(&self) -> Vec<proto::Field> {
        self.info.schema.as_ref().map(|s| s.fields.clone()).unwrap_or_default()
    }

    /// Its embedding functions, as kept in the table's metadata.
    pub fn embedding_functions(&self) -> Vec<proto::EmbeddingFunctionConfig> {
        self.info.embedding_functions.clone()
    }

    fn writable(&self, what: &str) -> Result<()> {
        if self.checked_out != 0 {
            return Err(Error::Usage(format!("{}: the table is checked out at version {}; checkout_latest() first",
                                            what, self.checked_out)));
        }
        Ok(())
    }

    /// Adds rows (JSON objects); the store embeds the ones without vectors. Returns the new version.
    pub async fn add(&self, rows: Vec<Json>) -> Result<i64> {
        self.writable("add")?;
        let reply: proto::AddRowsResponse = self.channel.streaming(&method("AddRows"), &[proto::AddRowsRequest {
            table: self.name.clone(), rows: Some(json_rows(&rows)?), ..Default::default() }]).await?;
        Ok(reply.version)
    }

    pub async fn count_rows(&self, filter: Option<&str>) -> Result<i64> {
        let reply: proto::CountRowsResponse = self.channel.unary(&method("CountRows"), &proto::CountRowsRequest {
            table: self.name.clone(), r#where: filter.unwrap_or("").to_string(), version: self.checked_out }).await?;
        Ok(reply.count)
    }

    /// Deletes the rows `predicate` matches; returns the new version.
    pub async fn delete(&self, predicate: &str) -> Result<i64> {
        self.writable("delete")?;
        let reply: proto::DeleteRowsResponse = self.channel.unary(&method("DeleteRows"), &proto::DeleteRowsRequest {
            table: self.name.clone(), r#where: predicate.to_string() }).await?;
        Ok(reply.version)
    }

    /// LanceDB's `update()`: `.only_if(filter)`, `.column(name, sql_expression)`, `.execute()`.
    pub fn update(&self) -> UpdateBuilder<'_> {
        UpdateBuilder { table: self, filter: String::new(), columns: HashMap::new() }
    }

    pub fn query(&self) -> Query<'_> {
        Query { table: self, query: None, filter: String::new(), columns: Vec::new(), limit: None, offset: 0,
                postfilter: false }
    }

    /// Builds a vector index on `column` (LanceDB's `create_index(&["vector"], Index::Auto)`); returns the
    /// version that lists it.
    pub async fn create_index(&self, column: &str, index: Index) -> Result<i64> {
        self.writable("create_index")?;
        let kind = match index {
            Index::Flat => proto::IndexType::Flat,
            Index::IvfFlat => proto::IndexType::IvfFlat,
            Index::IvfPq => proto::IndexType::IvfPq,
            Index::Hnsw => proto::IndexType::Hnsw,
        };
        let reply: proto::CreateIndexResponse = self.channel.unary(&method("CreateIndex"), &proto::CreateIndexRequest {
            table: self.name.clone(), vector_column: column.to_string(), index_type: kind as i32, ..Default::default()
        }).await?;
        Ok(reply.version)
    }

    pub async fn list_versions(&self) -> Result<Vec<Version>> {
        let mut versions = Vec::new();
        let mut token = String::new();
        loop {
            let reply: proto::ListVersionsResponse = self.channel.unary(&method("ListVersions"),
                &proto::ListVersionsRequest { table: self.name.clone(), page_size: 1000, page_token: token.clone() }).await?;
            versions.extend(reply.versions.into_iter().map(|v| Version {
                version: v.version, timestamp: v.timestamp, operation: v.operation, num_rows: v.num_rows }));
            if reply.next_page_token.is_empty() || reply.next_page_token == token {
                return Ok(versions);
            }
            token = reply.next_page_token;
        }
    }

    /// The latest version number.
    pub async fn version(&self) -> Result<i64> {
        if self.checked_out != 0 {
            return Ok(self.checked_out);
        }
        Ok(self.list_versions().await?.iter().map(|v| v.version).max().unwrap_or(0))
    }

    /// Reads (and searches) this version from now on; writes are refused until `checkout_latest`.
    pub async fn checkout(&mut self, version: i64) -> Result<()> {
        self.count_rows_at(version).await?; // VERSION_NOT_FOUND now rather than at the next read
        self.checked_out = version;
        Ok(())
    }

    pub fn checkout_latest(&mut self) {
        self.checked_out = 0;
    }

    async fn count_rows_at(&self, version: i64) -> Result<i64> {
        let reply: proto::CountRowsResponse = self.channel.unary(&method("CountRows"), &proto::CountRowsRequest {
            table: self.name.clone(), r#where: String::new(), version }).await?;
        Ok(reply.count)
    }

    /// Makes the checked-out version the latest, as a new version (LanceDB's `restore()`), and checks out the
    /// latest again.
    pub async fn restore(&mut self) -> Result<i64> {
        if self.checked_out == 0 {
            return Err(Error::Usage("restore() restores the checked-out version: checkout(version) first".into()));
        }
        let reply: proto::RestoreVersionResponse = self.channel.unary(&method("RestoreVersion"),
            &proto::RestoreVersionRequest { table: self.name.clone(), version: self.checked_out }).await?;
        self.checked_out = 0;
        Ok(reply.version)
    }
}

pub struct UpdateBuilder<'a> {
    table: &'a Table,
    filter: String,
    columns: HashMap<String, String>,
}

impl<'a> UpdateBuilder<'a> {
    pub fn only_if(mut self, filter: &str) -> Self {
        self.filter = filter.to_string();
        self
    }

    /// The column's new value: a SQL expression ("price * 2", "'new'").
    pub fn column(mut self, name: &str, value_sql: &str) -> Self {
        self.columns.insert(name.to_string(), value_sql.to_string());
        self
    }

    /// Returns (the new version, the rows updated).
    pub async fn execute(self) -> Result<(i64, i64)> {
        self.table.writable("update")?;
        let reply: proto::UpdateRowsResponse = self.table.channel.unary(&method("UpdateRows"), &proto::UpdateRowsRequest {
            table: self.table.name.clone(), r#where: self.filter, values: None, values_sql: self.columns,
            value_row: None }).await?;
        Ok((reply.version, reply.rows_updated))
    }
}

/// What a query searches for.
#[derive(Clone, Debug)]
pub enum QueryInput {
    /// A text, embedded by the store with the vector column's function.
    Text(String),
    Vector(Vec<f32>),
}

impl From<&str> for QueryInput {
    fn from(text: &str) -> Self {
        QueryInput::Text(text.to_string())
    }
}

impl From<String> for QueryInput {
    fn from(text: String) -> Self {
        QueryInput::Text(text)
    }
}

impl From<Vec<f32>> for QueryInput {
    fn from(vector: Vec<f32>) -> Self {
        QueryInput::Vector(vector)
    }
}

impl From<&[f32]> for QueryInput {
    fn from(vector: &[f32]) -> Self {
        QueryInput::Vector(vector.to_vec())
    }
}

/// LanceDB's query builder: a plain read, or with `nearest_to` the nearest rows (with `_distance`).
pub struct Query<'a> {
    table: &'a Table,
    query: Option<QueryInput>,
    filter: String,
    columns: Vec<String>,
    limit: Option<i32>,
    offset: i32,
    postfilter: bool,
}

impl<'a> Query<'a> {
    /// The rows nearest to a text (embedded by the store) or a vector. (LanceDB returns a `VectorQuery`; here
    /// it is the same builder.)
    pub fn nearest_to(mut self, query: impl Into<QueryInput>) -> Result<Self> {
        self.query = Some(query.into());
        Ok(self)
    }

    /// A SQL filter on scalar columns.
    pub fn only_if(mut self, filter: &str) -> Self {
        self.filter = filter.to_string();
        self
    }

    /// Apply the filter after the nearest rows are found (a vector search; before, by default).
    pub fn postfilter(mut self) -> Self {
        self.postfilter = true;
        self
    }

    pub fn select(mut self, columns: &[&str]) -> Self {
        self.columns = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit.min(i32::MAX as usize) as i32);
        self
    }

    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset.min(i32::MAX as usize) as i32;
        self
    }

    /// The rows, as JSON objects (vectors as arrays of numbers; a search's with `_distance`).
    pub async fn execute(self) -> Result<Vec<Json>> {
        let table = self.table;
        match self.query {
            Some(query) => {
                let query = match query {
                    QueryInput::Text(text) => SearchQuery::Text(text),
                    QueryInput::Vector(values) => SearchQuery::Vector(proto::Vector { values }),
                };
                let reply: proto::SearchResponse = table.channel.unary(&method("Search"), &proto::SearchRequest {
                    table: table.name.clone(), query: Some(query), r#where: self.filter, postfilter: self.postfilter,
                    select: self.columns, limit: self.limit.unwrap_or(10), offset: self.offset,
                    version: table.checked_out, format: proto::RowFormat::Json as i32, ..Default::default()
                }).await?;
                rows_of(reply.rows)
            }
            None => {
                let mut found = Vec::new();
                let mut offset = self.offset;
                let mut version = table.checked_out;
                let wanted = self.limit.unwrap_or(0);
                loop {
                    let left = if wanted > 0 { wanted - found.len() as i32 } else { 0 };
                    let reply: proto::ReadRowsResponse = table.channel.unary(&method("ReadRows"), &proto::ReadRowsRequest {
                        table: table.name.clone(), r#where: self.filter.clone(), select: self.columns.clone(),
                        limit: left, offset, version, format: proto::RowFormat::Json as i32, ..Default::default()
                    }).await?;
                    found.extend(rows_of(reply.rows)?);
                    version = reply.version; // every page reads the version the first one read
                    if reply.next_offset == 0 || (wanted > 0 && found.len() as i32 >= wanted) {
                        return Ok(found);
                    }
                    if reply.next_offset <= offset as i64 {
                        return Err(Error::Usage("the store's read did not move forward".into()));
                    }
                    offset = reply.next_offset.min(i32::MAX as i64) as i32;
                }
            }
        }
    }
}
