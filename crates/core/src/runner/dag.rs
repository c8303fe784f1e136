//! Dependency order of the stages (Kahn's algorithm) and cycle reporting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::pipeline::{PipelineError, Stage};

/// Kahn's algorithm, ties broken by name; a cycle is reported as `a → b → a`.
#[allow(clippy::result_large_err)]
pub(super) fn topo_order(
    path: &Path,
    stages: &BTreeMap<String, Stage>,
) -> Result<Vec<String>, PipelineError> {
    let mut indegree: BTreeMap<&str, usize> = stages.keys().map(|k| (k.as_str(), 0)).collect();
    for s in stages.values() {
        *indegree.entry(&s.name).or_default() = s.deps().len();
    }
    let mut ready: BTreeSet<&str> = indegree
        .iter()
        .filter(|(_, &d)| d == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut order = Vec::new();
    while let Some(n) = ready.pop_first() {
        order.push(n.to_string());
        for s in stages.values() {
            if s.deps().contains(n) {
                let d = indegree.entry(&s.name).or_default();
                *d -= 1;
                if *d == 0 {
                    ready.insert(&s.name);
                }
            }
        }
    }
    if order.len() == stages.len() {
        return Ok(order);
    }
    // Walk dependencies from a stage left over until a stage repeats.
    let left: BTreeSet<&str> = stages
        .keys()
        .map(String::as_str)
        .filter(|k| !order.iter().any(|o| o == k))
        .collect();
    let mut walk = vec![*left.iter().next().unwrap_or(&"?")];
    loop {
        let cur = walk[walk.len() - 1];
        let next = stages
            .get(cur)
            .and_then(|s| s.deps().into_iter().find(|d| left.contains(d)));
        let Some(next) = next else { break };
        if let Some(pos) = walk.iter().position(|w| *w == next) {
            let mut cycle: Vec<&str> = walk[pos..].to_vec();
            cycle.push(cycle[0]);
            return Err(PipelineError::Cycle {
                path: path.to_path_buf(),
                cycle: cycle.join(" → "),
            });
        }
        walk.push(next);
    }
    Err(PipelineError::Cycle {
        path: path.to_path_buf(),
        cycle: left.into_iter().collect::<Vec<_>>().join(", "),
    })
}
