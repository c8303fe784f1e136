//! Stage params: TOML → JSON conversion, `--set stage.param=value` overrides (the value parsed as a TOML
//! value, falling back to a string; dotted sub-keys allowed), and flattening for `scan explain` diffs.
//! The canonical JSON of the params (sorted keys, `serde_json` number formatting) goes into the stage key
//! and is the file handed to the stage.

use std::collections::BTreeMap;

use serde_json::Value;

use super::pipeline::Pipeline;
use super::RunnerError;
use crate::store::canonical_json;

/// Convert a TOML value to JSON; datetimes become strings. Errors `(key path, description)` for a
/// non-finite float.
pub fn toml_to_json(v: &toml::Value) -> Result<Value, (String, String)> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => Value::Number(n),
            None => return Err((String::new(), format!("the float {f}"))),
        },
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| toml_to_json(x).map_err(|(k, f)| (join(&format!("[{i}]"), &k), f)))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => {
            let mut keys: Vec<&String> = t.keys().collect();
            keys.sort();
            let mut map = serde_json::Map::new();
            for k in keys {
                let v = toml_to_json(&t[k.as_str()]).map_err(|(sub, f)| (join(k, &sub), f))?;
                map.insert(k.clone(), v);
            }
            Value::Object(map)
        }
    })
}

fn join(a: &str, b: &str) -> String {
    if b.is_empty() {
        a.to_string()
    } else if b.starts_with('[') {
        format!("{a}{b}")
    } else {
        format!("{a}.{b}")
    }
}

/// Parse the value of `--set k=v`: a TOML value if it parses as one, else the raw string.
pub fn parse_set_value(raw: &str) -> Value {
    let parsed: Option<toml::Table> = toml::from_str(&format!("v = {raw}")).ok();
    parsed
        .and_then(|t| t.get("v").cloned())
        .and_then(|v| toml_to_json(&v).ok())
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

/// Apply `--set stage.param[.sub...]=value` overrides to the pipeline's params.
pub fn apply_sets(p: &mut Pipeline, sets: &[String]) -> Result<(), RunnerError> {
    for spec in sets {
        let usage = |m: &str| RunnerError::Usage(format!("--set `{spec}`: {m}"));
        let (lhs, raw) = spec
            .split_once('=')
            .ok_or_else(|| usage("expected STAGE.PARAM=VALUE"))?;
        let mut path: Vec<&str> = lhs.trim().split('.').collect();
        if path.len() < 2 || path.iter().any(|c| c.is_empty()) {
            return Err(usage("expected STAGE.PARAM=VALUE"));
        }
        let stage_name = path.remove(0);
        let known: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>();
        let known = known.join(", ");
        let stage = p
            .stages
            .iter_mut()
            .find(|s| s.name == stage_name)
            .ok_or_else(|| usage(&format!("no stage `{stage_name}` (stages: {known})")))?;
        let mut value = parse_set_value(raw.trim());
        let mut cur = &mut stage.written;
        for (i, key) in path.iter().enumerate() {
            let obj = cur
                .as_object_mut()
                .ok_or_else(|| usage(&format!("`{}` is not a table", path[..i].join("."))))?;
            if i + 1 == path.len() {
                // Keep a float param a float when overridden with an integer literal (`=2` for `2.0`).
                if let (Some(Value::Number(old)), Value::Number(new)) = (obj.get(*key), &value) {
                    if old.is_f64() && !new.is_f64() {
                        if let Some(n) = new.as_f64().and_then(serde_json::Number::from_f64) {
                            value = Value::Number(n);
                        }
                    }
                }
                obj.insert(key.to_string(), value.clone());
                break;
            }
            cur = obj
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Default::default()));
        }
        stage.written = crate::store::canon::sorted(&stage.written);
    }
    Ok(())
}

/// Leaves of a JSON params object as dotted paths → canonical JSON text.
pub fn flatten(v: &Value) -> BTreeMap<String, String> {
    fn go(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    go(&p, x, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), canonical_json(other));
            }
        }
    }
    let mut out = BTreeMap::new();
    if v.as_object().is_some_and(|m| !m.is_empty()) {
        go("", v, &mut out);
    }
    out
}

/// Human-readable differences between two params objects of stage `stage`.
pub fn diff(stage: &str, old: &Value, new: &Value) -> Vec<String> {
    let (a, b) = (flatten(old), flatten(new));
    let mut out = Vec::new();
    for (k, va) in &a {
        match b.get(k) {
            Some(vb) if vb != va => out.push(format!("param {stage}.{k} {va} → {vb}")),
            None => out.push(format!("param {stage}.{k} removed (was {va})")),
            _ => {}
        }
    }
    for (k, vb) in &b {
        if !a.contains_key(k) {
            out.push(format!("param {stage}.{k} added (= {vb})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_values_parse_as_toml_or_string() {
        assert_eq!(parse_set_value("2.5"), json!(2.5));
        assert_eq!(parse_set_value("7"), json!(7));
        assert_eq!(parse_set_value("true"), json!(true));
        assert_eq!(parse_set_value("[1, 2]"), json!([1, 2]));
        assert_eq!(parse_set_value("resnet18"), json!("resnet18"));
        assert_eq!(parse_set_value("\"q\""), json!("q"));
    }

    #[test]
    fn diff_names_old_and_new() {
        let d = diff(
            "scan",
            &json!({"entropy_weight": 5.0, "x": {"y": 1}}),
            &json!({"entropy_weight": 2.0, "x": {"y": 1}, "z": "a"}),
        );
        assert_eq!(
            d,
            vec![
                "param scan.entropy_weight 5.0 → 2.0".to_string(),
                "param scan.z added (= \"a\")".to_string()
            ]
        );
    }

    #[test]
    fn nan_rejected() {
        assert!(
            toml_to_json(&toml::from_str::<toml::Table>("a = { b = nan }").unwrap()["a"]).is_err()
        );
    }
}
