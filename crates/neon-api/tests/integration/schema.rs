//! A small JSON-schema validator for the subset of OpenAPI 3.0 the Neon spec
//! uses (type, format date-time, required, properties, additionalProperties,
//! enum, items, `$ref` to `#/components/schemas`, allOf/oneOf/anyOf, nullable,
//! minimum/maximum, minLength/maxLength), a generator of sample instances, and
//! the loader of the spec itself. `pattern` is not checked (no regex crate).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

/// The OpenAPI document.
pub(crate) struct Spec {
    pub(crate) root: Value,
}

/// Loads the spec from `NEON_OPENAPI_SPEC` or `../shared/neon-api/openapi-v2.json`.
/// Returns `None` (after printing why) when it is missing, unless
/// `STRATA_REQUIRE_SERVICES=1`, under which a missing spec fails the test.
pub(crate) fn load_spec() -> Option<Spec> {
    let path = std::env::var_os("NEON_OPENAPI_SPEC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/neon-api/openapi-v2.json"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(Spec { root: serde_json::from_str(&text).expect("the OpenAPI spec is valid JSON") }),
        Err(error) => {
            let message = format!(
                "the Neon OpenAPI spec is not at {} ({error}); set NEON_OPENAPI_SPEC or fetch it as described in \
                 ../shared/neon-api/PROVENANCE.md (npm pack @neondatabase/api-client@2.7.3)",
                path.display()
            );
            if std::env::var("STRATA_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("STRATA_REQUIRE_SERVICES=1 and {message}");
            }
            eprintln!("SKIPPED: {message}");
            None
        }
    }
}

impl Spec {
    /// A component schema by name.
    pub(crate) fn schema(&self, name: &str) -> &Value {
        self.root["components"]["schemas"].get(name).unwrap_or_else(|| panic!("the spec has no schema {name}"))
    }

    /// Follows `$ref`s (schemas, responses, parameters) to the target.
    pub(crate) fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            let mut target = &self.root;
            for part in reference.trim_start_matches("#/").split('/') {
                target = &target[part];
            }
            assert!(!target.is_null(), "dangling $ref {reference}");
            value = target;
        }
        value
    }

    /// The operation for a method and a concrete path, preferring literal segments over templates.
    pub(crate) fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let wanted: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut best: Option<(usize, &str, &Value)> = None;
        for (template, item) in self.root["paths"].as_object()? {
            let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
            if parts.len() != wanted.len() {
                continue;
            }
            let mut literal = 0;
            let matches = parts.iter().zip(&wanted).all(|(part, segment)| {
                if part.starts_with('{') {
                    true
                } else {
                    literal += 1;
                    part == segment
                }
            });
            let Some(operation) = item.get(method.to_ascii_lowercase()) else { continue };
            if matches && best.as_ref().is_none_or(|(score, _, _)| literal > *score) {
                best = Some((literal, template.as_str(), operation));
            }
        }
        best.map(|(_, template, operation)| (template, operation))
    }

    /// Names of every property a schema allows, through `$ref` and `allOf`/`oneOf`/`anyOf`.
    /// `None` when it allows any (additionalProperties) or is not an object schema.
    fn known_properties(&self, schema: &Value) -> Option<BTreeSet<String>> {
        let schema = self.resolve(schema);
        if schema.get("additionalProperties").is_some_and(|additional| additional != &Value::Bool(false)) {
            return None;
        }
        let mut names: BTreeSet<String> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default();
        for combinator in ["allOf", "oneOf", "anyOf"] {
            for part in schema.get(combinator).and_then(Value::as_array).into_iter().flatten() {
                names.extend(self.known_properties(part)?);
            }
        }
        Some(names)
    }
}

/// Validates `value` against `schema`; `strict` also refuses properties the schema does not name.
pub(crate) fn validate(spec: &Spec, schema: &Value, value: &Value, strict: bool) -> Vec<String> {
    let mut errors = Vec::new();
    check(spec, schema, value, "$", strict, true, &mut errors);
    errors
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(
    spec: &Spec,
    schema: &Value,
    value: &Value,
    at: &str,
    strict: bool,
    check_extra: bool,
    errors: &mut Vec<String>,
) {
    let schema = spec.resolve(schema);
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            check(spec, part, value, at, strict, false, errors);
        }
    }
    for (combinator, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(parts) = schema.get(combinator).and_then(Value::as_array) {
            let matching = parts.iter().filter(|part| validate(spec, part, value, strict).is_empty()).count();
            if matching == 0 || (exactly_one && matching > 1) {
                errors.push(format!("{at}: matches {matching} of the {combinator} alternatives"));
            }
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let ok = actual == expected || (expected == "number" && actual == "integer");
        if !ok {
            errors.push(format!("{at}: expected {expected}, got {actual} ({value})"));
            return;
        }
    }
    match value {
        Value::String(text) => {
            if schema.get("format").and_then(Value::as_str) == Some("date-time")
                && chrono::DateTime::parse_from_rfc3339(text).is_err()
            {
                errors.push(format!("{at}: {text:?} is not an RFC 3339 date-time"));
            }
            let length = text.chars().count() as u64;
            if schema.get("minLength").and_then(Value::as_u64).is_some_and(|min| length < min) {
                errors.push(format!("{at}: shorter than minLength"));
            }
            if schema.get("maxLength").and_then(Value::as_u64).is_some_and(|max| length > max) {
                errors.push(format!("{at}: longer than maxLength"));
            }
        }
        Value::Number(number) => {
            let number = number.as_f64().unwrap_or_default();
            if schema.get("minimum").and_then(Value::as_f64).is_some_and(|min| number < min) {
                errors.push(format!("{at}: {number} is below the minimum"));
            }
            if schema.get("maximum").and_then(Value::as_f64).is_some_and(|max| number > max) {
                errors.push(format!("{at}: {number} is above the maximum"));
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check(spec, item_schema, item, &format!("{at}[{index}]"), strict, true, errors);
                }
            }
        }
        Value::Object(object) => check_object(spec, schema, object, at, strict, check_extra, errors),
        _ => {}
    }
}

fn check_object(
    spec: &Spec,
    schema: &Value,
    object: &Map<String, Value>,
    at: &str,
    strict: bool,
    check_extra: bool,
    errors: &mut Vec<String>,
) {
    for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !object.contains_key(name) {
            errors.push(format!("{at}: required property {name:?} is missing"));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, value) in object {
        let path = format!("{at}.{name}");
        match properties.and_then(|properties| properties.get(name)) {
            Some(property) => check(spec, property, value, &path, strict, true, errors),
            None => {
                if let Some(additional) = schema.get("additionalProperties").filter(|additional| additional.is_object())
                {
                    check(spec, additional, value, &path, strict, true, errors);
                }
            }
        }
    }
    if strict
        && check_extra
        && let Some(known) = spec.known_properties(schema)
    {
        for name in object.keys().filter(|name| !known.contains(*name)) {
            errors.push(format!("{at}: property {name:?} is not in the spec"));
        }
    }
}

/// A sample instance of a schema: every property when `all`, else only the required ones.
pub(crate) fn sample(spec: &Spec, schema: &Value, all: bool, depth: usize) -> Value {
    let schema = spec.resolve(schema);
    if depth > 8 {
        return Value::Null;
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(object) = sample(spec, part, all, depth + 1) {
                merged.extend(object);
            }
        }
        if let Value::Object(own) = sample_object(spec, schema, all, depth) {
            merged.extend(own);
        }
        return Value::Object(merged);
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(first) = schema.get(combinator).and_then(Value::as_array).and_then(|parts| parts.first()) {
            return sample(spec, first, all, depth + 1);
        }
    }
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|values| values.first()) {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2024-02-03T04:05:06Z"),
            Some("uuid") => json!("00000000-0000-4000-8000-000000000001"),
            Some("email") => json!("user@example.com"),
            _ => json!("x"),
        },
        Some("integer") => json!(schema.get("minimum").and_then(Value::as_i64).unwrap_or(1).max(1)),
        Some("number") => json!(schema.get("minimum").and_then(Value::as_f64).unwrap_or(1.5)),
        Some("boolean") => json!(true),
        Some("array") => match schema.get("items") {
            Some(items) => {
                let item = sample(spec, items, all, depth + 1);
                if item.is_null() { json!([]) } else { json!([item]) }
            }
            None => json!([]),
        },
        _ => sample_object(spec, schema, all, depth),
    }
}

fn sample_object(spec: &Spec, schema: &Value, all: bool, depth: usize) -> Value {
    let mut object = Map::new();
    let required: BTreeSet<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        if all || required.contains(name.as_str()) {
            let value = sample(spec, property, all, depth + 1);
            if !value.is_null() || required.contains(name.as_str()) {
                object.insert(name.clone(), value);
            }
        }
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|additional| additional.is_object()) {
        object.insert("key".into(), sample(spec, additional, all, depth + 1));
    }
    Value::Object(object)
}

#[test]
fn the_validator_catches_what_it_claims_to() {
    let Some(spec) = load_spec() else { return };
    let schema = spec.schema("DatabaseCreateRequest");
    assert!(validate(&spec, schema, &json!({"database": {"name": "d", "owner_name": "o"}}), true).is_empty());
    let missing = validate(&spec, schema, &json!({"database": {"name": "d"}}), true);
    assert!(missing[0].contains("owner_name"), "{missing:?}");
    let wrong_type = validate(&spec, schema, &json!({"database": {"name": 7, "owner_name": "o"}}), true);
    assert!(wrong_type[0].contains("expected string"), "{wrong_type:?}");
    let extra = validate(&spec, schema, &json!({"database": {"name": "d", "owner_name": "o", "size": 1}}), true);
    assert!(extra[0].contains("\"size\" is not in the spec"), "{extra:?}");
    assert!(
        validate(&spec, schema, &json!({"database": {"name": "d", "owner_name": "o", "size": 1}}), false).is_empty()
    );
    let endpoint = spec.schema("EndpointType");
    assert!(!validate(&spec, endpoint, &json!("read_maybe"), true).is_empty());
    let compute = spec.schema("ComputeUnit");
    assert!(!validate(&spec, compute, &json!(0.1), true).is_empty());
    let operation = spec.schema("Operation");
    let mut sampled = sample(&spec, operation, true, 0);
    assert!(validate(&spec, operation, &sampled, true).is_empty());
    sampled["created_at"] = json!("yesterday");
    assert!(!validate(&spec, operation, &sampled, true).is_empty());
    // allOf with strictness over the union of the parts.
    let branch_operations = spec.schema("BranchOperations");
    let instance = sample(&spec, branch_operations, false, 0);
    assert!(validate(&spec, branch_operations, &instance, true).is_empty(), "{instance}");
}
