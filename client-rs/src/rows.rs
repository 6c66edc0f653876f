//! Rows as JSON (serde_json values) in and out of `google.protobuf.Struct`, the store's JSON row format.
//! Numbers travel as doubles; a whole number that a double holds exactly comes back as an integer.

use std::collections::BTreeMap;

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Number, Value as Json};

use crate::error::{Error, Result};

pub fn to_struct(row: &Json) -> Result<Struct> {
    match row {
        Json::Object(fields) => Ok(Struct {
            fields: fields.iter().map(|(k, v)| (k.clone(), to_value(v))).collect::<BTreeMap<_, _>>(),
        }),
        other => Err(Error::Usage(format!("a row is a JSON object, not {}", kind_of(other)))),
    }
}

pub fn to_value(value: &Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue { values: items.iter().map(to_value).collect() }),
        Json::Object(_) => Kind::StructValue(to_struct(value).expect("an object")),
    };
    Value { kind: Some(kind) }
}

pub fn from_struct(row: &Struct) -> Json {
    Json::Object(row.fields.iter().map(|(k, v)| (k.clone(), from_value(v))).collect::<Map<_, _>>())
}

pub fn from_value(value: &Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
                Json::Number(Number::from(*n as i64))
            } else {
                Number::from_f64(*n).map(Json::Number).unwrap_or(Json::Null)
            }
        }
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(from_value).collect()),
        Some(Kind::StructValue(s)) => from_struct(s),
    }
}

fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
