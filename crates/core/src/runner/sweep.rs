//! Sweeps: `--set STAGE.PARAM=V1,V2,…` or `=A..B` (an inclusive integer range) on several params make a
//! grid, `--seeds N` repeats every grid point with seeds `0..N-1`, and each point is a [`Variant`]: a
//! named list of overrides applied to the base pipeline. A `[sweep]` table in the pipeline file declares
//! the same thing (`scan run --sweep`), plus named `[sweep.variants]` (ablations).
//!
//! Names are derived from what differs between the variants (`entropy_weight=2,seed=1`), or given with
//! `--name PREFIX`; a group is a variant's name without its seed, over which `scan exp show` aggregates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::params::parse_set_value;
use super::RunnerError;
use crate::store::canonical_json;

/// `STAGE.PARAM` → value pairs.
pub type Overrides = Vec<(String, Value)>;

/// One point of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    /// Name without the seed: the seeds of a group are aggregated.
    pub group: String,
    /// `STAGE.PARAM[.SUB]` → value, in the order given.
    pub overrides: Vec<(String, Value)>,
    pub seed: Option<u64>,
}

impl Variant {
    /// The overrides as `--set` strings (`k=<canonical JSON value>`), for [`super::Ctx::load`].
    pub fn sets(&self) -> Vec<String> {
        self.overrides
            .iter()
            .map(|(k, v)| format!("{k}={}", toml_literal(v)))
            .collect()
    }
}

/// A JSON value as the TOML literal `--set` parses back to the same value.
fn toml_literal(v: &Value) -> String {
    match v {
        Value::String(s) => canonical_json(&Value::String(s.clone())),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(toml_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, x)| format!(
                    "{} = {}",
                    canonical_json(&Value::String(k.clone())),
                    toml_literal(x)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{f:.1}")
            } else {
                n.to_string()
            }
        }
        other => other.to_string(),
    }
}

/// `--seeds N`: seeds `0..N` on the `seed` param of `stages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeds {
    pub count: u64,
    pub stages: Vec<String>,
}

/// The values of one `--set` right-hand side: `A..B` (inclusive integers), `v1,v2,…` (top-level
/// commas), or one value.
pub fn set_values(raw: &str) -> Result<Vec<Value>, String> {
    let raw = raw.trim();
    if let Some((a, b)) = raw.split_once("..") {
        if let (Ok(a), Ok(b)) = (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
            if a > b {
                return Err(format!("range `{raw}` is empty ({a} > {b})"));
            }
            if b - a >= 10_000 {
                return Err(format!("range `{raw}` has more than 10000 values"));
            }
            return Ok((a..=b).map(Value::from).collect());
        }
    }
    Ok(split_top_level(raw)
        .into_iter()
        .map(|p| parse_set_value(p.trim()))
        .collect())
}

/// Split on commas outside brackets, braces and quotes.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0usize);
    let mut out = Vec::new();
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Short form of a param path for names: the last component (`scan.entropy_weight` →
/// `entropy_weight`), or the whole path when two swept params share a last component.
fn short_names(keys: &[String]) -> BTreeMap<String, String> {
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
    keys.iter()
        .map(|k| {
            let clash = keys.iter().filter(|o| last(o) == last(k)).count() > 1;
            (k.clone(), if clash { k.clone() } else { last(k) })
        })
        .collect()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => canonical_json(other),
    }
}

/// The axes of `--set STAGE.PARAM=VALUES` arguments, in order.
pub fn parse_sets(sets: &[String]) -> Result<Vec<(String, Vec<Value>)>, RunnerError> {
    let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
    for spec in sets {
        let usage = |m: &str| RunnerError::Usage(format!("--set `{spec}`: {m}"));
        let (lhs, raw) = spec
            .split_once('=')
            .ok_or_else(|| usage("expected STAGE.PARAM=VALUE"))?;
        let values = set_values(raw).map_err(|m| usage(&m))?;
        let key = lhs.trim().to_string();
        if axes.iter().any(|(k, _)| *k == key) {
            return Err(usage("this param is set twice"));
        }
        axes.push((key, values));
    }
    Ok(axes)
}

/// Expand `axes` (a grid) and `seeds` into variants, each starting from the `fixed` overrides;
/// `prefix` names them (plus the varying values) instead of the derived names.
pub fn expand(
    axes: &[(String, Vec<Value>)],
    seeds: Option<&Seeds>,
    fixed: &[(String, Value)],
    prefix: Option<&str>,
) -> Result<Vec<Variant>, RunnerError> {
    if let Some((k, _)) = axes.iter().find(|(_, v)| v.is_empty()) {
        return Err(RunnerError::Usage(format!("`{k}` has no values")));
    }
    let varying: Vec<String> = axes
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k.clone())
        .collect();
    let short = short_names(&varying);
    let mut points: Vec<Vec<(String, Value)>> = vec![fixed.to_vec()];
    for (key, values) in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((key.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for point in points {
        let label: Vec<String> = point
            .iter()
            .filter(|(k, _)| varying.contains(k))
            .map(|(k, v)| format!("{}={}", short[k], value_text(v)))
            .collect();
        let group = match (prefix, label.is_empty()) {
            (Some(p), true) => p.to_string(),
            (Some(p), false) => format!("{p},{}", label.join(",")),
            (None, true) if point.is_empty() => "base".to_string(),
            (None, true) => point
                .iter()
                .map(|(k, v)| format!("{k}={}", value_text(v)))
                .collect::<Vec<_>>()
                .join(","),
            (None, false) => label.join(","),
        };
        match seeds {
            None => out.push(Variant {
                name: group.clone(),
                group,
                overrides: point,
                seed: None,
            }),
            Some(s) => {
                for seed in 0..s.count {
                    let mut overrides = point.clone();
                    for stage in &s.stages {
                        overrides.retain(|(k, _)| *k != format!("{stage}.seed"));
                        overrides.push((format!("{stage}.seed"), Value::from(seed)));
                    }
                    out.push(Variant {
                        name: format!("{group},seed={seed}"),
                        group: group.clone(),
                        overrides,
                        seed: Some(seed),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The `[sweep]` table of a pipeline file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// `"STAGE.PARAM" = [values]`: a grid over these values (a value that is itself an array is
    /// written `[[1, 2], [3]]`).
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    /// Repeat every point with seeds `0..seeds`.
    pub seeds: Option<u64>,
    /// Stages whose `seed` param the seeds set (default: see [`default_seed_stages`]).
    pub seed_stages: Option<Vec<String>>,
    /// Named variants, each a table of overrides (`"scan.augmentation" = "simclr"`); each is crossed
    /// with the grid.
    #[serde(default)]
    pub variants: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

/// The stages `--seeds` varies by default: the built-in SCAN and self-labeling stages (SCAN's own
/// randomness; the expensive, shared pretext is kept fixed).
pub fn default_seed_stages(p: &super::Pipeline) -> Vec<String> {
    use crate::builtin::Builtin;
    p.stages
        .iter()
        .filter(|s| matches!(s.builtin, Some(Builtin::Cluster | Builtin::Selflabel)))
        .map(|s| s.name.clone())
        .collect()
}

/// The variants a `[sweep]` table declares: each named variant (or the base, when none is named)
/// crossed with the grid and the seeds.
pub fn from_file(
    sweep: &SweepFile,
    pipeline: &super::Pipeline,
) -> Result<Vec<Variant>, RunnerError> {
    let json = |v: &toml::Value| {
        super::params::toml_to_json(v)
            .map_err(|(k, f)| RunnerError::Usage(format!("[sweep]: `{k}`: {f} is not allowed")))
    };
    let axes: Vec<(String, Vec<Value>)> = sweep
        .grid
        .iter()
        .map(|(k, vs)| Ok((k.clone(), vs.iter().map(json).collect::<Result<_, _>>()?)))
        .collect::<Result<_, RunnerError>>()?;
    let seeds = sweep.seeds.map(|count| Seeds {
        count,
        stages: sweep
            .seed_stages
            .clone()
            .unwrap_or_else(|| default_seed_stages(pipeline)),
    });
    let named: Vec<(Option<&str>, Overrides)> = if sweep.variants.is_empty() {
        vec![(None, Vec::new())]
    } else {
        sweep
            .variants
            .iter()
            .map(|(name, sets)| {
                let fixed = sets
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), json(v)?)))
                    .collect::<Result<_, RunnerError>>()?;
                Ok((Some(name.as_str()), fixed))
            })
            .collect::<Result<_, RunnerError>>()?
    };
    let mut out = Vec::new();
    for (name, fixed) in named {
        out.extend(expand(&axes, seeds.as_ref(), &fixed, name)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(v: &[Variant]) -> Vec<&str> {
        v.iter().map(|x| x.name.as_str()).collect()
    }

    #[test]
    fn values_lists_ranges_and_single() {
        assert_eq!(
            set_values("2,5,10").unwrap(),
            vec![json!(2), json!(5), json!(10)]
        );
        assert_eq!(
            set_values("0..3").unwrap(),
            vec![json!(0), json!(1), json!(2), json!(3)]
        );
        assert_eq!(set_values("0.5").unwrap(), vec![json!(0.5)]);
        assert_eq!(set_values("[1, 2]").unwrap(), vec![json!([1, 2])]);
        assert_eq!(
            set_values("[1,2],[3]").unwrap(),
            vec![json!([1, 2]), json!([3])]
        );
        assert_eq!(set_values("\"a,b\"").unwrap(), vec![json!("a,b")]);
        assert!(set_values("3..1").is_err());
    }

    #[test]
    fn grid_times_seeds_with_derived_names() {
        let seeds = Seeds {
            count: 2,
            stages: vec!["scan".into(), "selflabel".into()],
        };
        let axes = parse_sets(&["scan.entropy_weight=2,5".into(), "scan.lr=1e-4".into()]).unwrap();
        let v = expand(&axes, Some(&seeds), &[], None).unwrap();
        assert_eq!(
            names(&v),
            [
                "entropy_weight=2,seed=0",
                "entropy_weight=2,seed=1",
                "entropy_weight=5,seed=0",
                "entropy_weight=5,seed=1"
            ]
        );
        assert_eq!(v[1].group, "entropy_weight=2");
        assert_eq!(
            v[1].sets(),
            [
                "scan.entropy_weight=2",
                "scan.lr=0.0001",
                "scan.seed=1",
                "selflabel.seed=1"
            ]
        );
    }

    #[test]
    fn single_set_is_one_named_variant() {
        let axes = parse_sets(&["scan.entropy_weight=2.0".into()]).unwrap();
        let v = expand(&axes, None, &[], None).unwrap();
        assert_eq!(names(&v), ["scan.entropy_weight=2.0"]);
        assert_eq!(v[0].sets(), ["scan.entropy_weight=2.0"]);
        let v = expand(&[], None, &[], Some("mine")).unwrap();
        assert_eq!(names(&v), ["mine"]);
    }

    #[test]
    fn literals_round_trip_through_set_parsing() {
        for v in [
            json!(2.0),
            json!(1e-4),
            json!("strong"),
            json!([1, 2]),
            json!(true),
            json!(7),
        ] {
            assert_eq!(parse_set_value(&toml_literal(&v)), v, "{v}");
        }
    }
}
