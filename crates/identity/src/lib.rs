//! Code identity of the built-in stage binaries, computed from the source tree.
//!
//! A stage key must change exactly when the stage's result could, and a result depends on the code
//! compiled into the stage's binary. That code is, at crate granularity:
//!
//! - the binary's own `main` file;
//! - every workspace crate in the binary's dependency closure (normal and build dependencies, never
//!   dev-dependencies): all files of its package directory (for the root package: `Cargo.toml`,
//!   `build.rs` and `src/`);
//! - every registry crate in that closure, as `name version checksum` from `Cargo.lock`;
//! - the libtorch version, when `torch-sys` is in the closure.
//!
//! The identity is the BLAKE3 of the sorted list of those lines, with paths relative to the
//! workspace root, so two clones of one commit get the same identities wherever they are built.
//! `scan-core`'s build script computes the identities of every built-in stage once per build and bakes
//! them into the `scan` binary (a no-op run starts no stage binary) and into every stage binary (which
//! refuses to run under a key computed for another identity). The compiler version is not part of the
//! identity: Rust does not change floating-point results across releases, and teammates with
//! slightly different toolchains should share results.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// One built-in stage binary: its name, the workspace package that builds it and its `main` file
/// (relative to the workspace root).
#[derive(Debug, Clone, Copy)]
pub struct StageSpec<'a> {
    pub binary: &'a str,
    pub package: &'a str,
    pub main: &'a str,
}

/// Errors name the file that could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The identities and every path they were computed from (for `cargo:rerun-if-changed`).
#[derive(Debug, Clone, Default)]
pub struct Computed {
    /// Binary name → 64 hex digits.
    pub identities: BTreeMap<String, String>,
    /// Files and directories read, absolute.
    pub watched: BTreeSet<PathBuf>,
}

/// A package of `Cargo.lock`.
#[derive(Debug, Clone)]
struct LockPackage {
    name: String,
    version: String,
    /// `None` for workspace (path) packages.
    source: Option<String>,
    checksum: Option<String>,
    deps: Vec<String>,
}

fn read(path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_toml(path: &Path) -> Result<toml::Table, IdentityError> {
    toml::from_str(&read(path)?).map_err(|source| IdentityError::Toml {
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, message: impl Into<String>) -> IdentityError {
    IdentityError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_lock(path: &Path) -> Result<Vec<LockPackage>, IdentityError> {
    let t = parse_toml(path)?;
    let pkgs = t
        .get("package")
        .and_then(|p| p.as_array())
        .ok_or_else(|| invalid(path, "no [[package]] entries"))?;
    let s = |v: &toml::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    pkgs.iter()
        .map(|p| {
            Ok(LockPackage {
                name: s(p, "name").ok_or_else(|| invalid(path, "package without name"))?,
                version: s(p, "version").unwrap_or_default(),
                source: s(p, "source"),
                checksum: s(p, "checksum"),
                deps: p
                    .get("dependencies")
                    .and_then(|d| d.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// A workspace member: its directory (relative) and the package names it depends on outside
/// `[dev-dependencies]`.
#[derive(Debug, Clone)]
struct Member {
    dir: String,
    build_deps: BTreeSet<String>,
}

/// Package names of the dependency tables of a manifest (the `package = …` rename honoured).
fn dep_names(table: Option<&toml::Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(t) = table.and_then(|t| t.as_table()) {
        for (k, v) in t {
            let name = v
                .get("package")
                .and_then(|p| p.as_str())
                .unwrap_or(k.as_str());
            out.insert(name.to_string());
        }
    }
    out
}

fn members(root: &Path) -> Result<BTreeMap<String, Member>, IdentityError> {
    let manifest = root.join("Cargo.toml");
    let t = parse_toml(&manifest)?;
    let dirs: Vec<String> = t
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| vec![".".into()]);
    let mut out = BTreeMap::new();
    for dir in dirs {
        let path = root.join(&dir).join("Cargo.toml");
        let m = parse_toml(&path)?;
        let name = m
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| invalid(&path, "no [package] name"))?
            .to_string();
        let mut build_deps = dep_names(m.get("dependencies"));
        build_deps.extend(dep_names(m.get("build-dependencies")));
        if let Some(targets) = m.get("target").and_then(|t| t.as_table()) {
            for cfg in targets.values() {
                build_deps.extend(dep_names(cfg.get("dependencies")));
                build_deps.extend(dep_names(cfg.get("build-dependencies")));
            }
        }
        out.insert(
            name,
            Member {
                dir: dir.trim_end_matches('/').to_string(),
                build_deps,
            },
        );
    }
    Ok(out)
}

/// Every file below `dir` (sorted, relative to `root`), skipping `target/` and hidden entries.
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else if path.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// The files of a workspace package, relative to the workspace root.
fn package_files(root: &Path, dir: &str) -> Result<(Vec<PathBuf>, Vec<PathBuf>), IdentityError> {
    let mut files = Vec::new();
    let base = root.join(dir);
    let watched = if dir == "." || dir.is_empty() {
        for f in ["Cargo.toml", "build.rs"] {
            if base.join(f).is_file() {
                files.push(PathBuf::from(f));
            }
        }
        walk(root, &base.join("src"), &mut files)?;
        vec![
            base.join("Cargo.toml"),
            base.join("build.rs"),
            base.join("src"),
        ]
    } else {
        walk(root, &base, &mut files)?;
        vec![base]
    };
    Ok((files, watched))
}

fn hash_file(root: &Path, rel: &Path) -> Result<String, IdentityError> {
    let path = root.join(rel);
    let bytes = std::fs::read(&path).map_err(|source| IdentityError::Io { path, source })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// Resolve a `Cargo.lock` dependency string (`name`, `name version` or `name version (source)`).
fn resolve_dep<'a>(
    lock: &'a [LockPackage],
    dep: &str,
    lock_path: &Path,
) -> Result<&'a LockPackage, IdentityError> {
    let mut parts = dep.split_whitespace();
    let name = parts.next().unwrap_or_default();
    let version = parts.next();
    let mut found = lock
        .iter()
        .filter(|p| p.name == name && version.is_none_or(|v| p.version == v));
    let first = found.next().ok_or_else(|| {
        invalid(
            lock_path,
            format!("dependency `{dep}` has no package entry"),
        )
    })?;
    if found.next().is_some() {
        return Err(invalid(
            lock_path,
            format!("dependency `{dep}` is ambiguous"),
        ));
    }
    Ok(first)
}

/// Compute the identity of each stage in `stages` from the workspace at `root` (which holds
/// `Cargo.toml` and `Cargo.lock`). `libtorch` is the libtorch version the binaries link.
pub fn compute(
    root: &Path,
    stages: &[StageSpec],
    libtorch: &str,
) -> Result<Computed, IdentityError> {
    let lock_path = root.join("Cargo.lock");
    let lock = read_lock(&lock_path)?;
    let members = members(root)?;
    let mut computed = Computed::default();
    computed.watched.insert(lock_path.clone());
    computed.watched.insert(root.join("Cargo.toml"));
    let mut file_hashes: BTreeMap<PathBuf, String> = BTreeMap::new();
    for stage in stages {
        let mut lines: Vec<String> = vec![format!("binary {}", stage.binary)];
        let main = PathBuf::from(stage.main);
        lines.push(format!("file {} {}", stage.main, hash_file(root, &main)?));
        computed.watched.insert(root.join(&main));
        // Breadth-first over the dependency graph, dev-dependencies of members excluded.
        let start = resolve_dep(&lock, stage.package, &lock_path)?;
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        let mut queue: VecDeque<&LockPackage> = VecDeque::from([start]);
        while let Some(pkg) = queue.pop_front() {
            if !seen.insert((pkg.name.clone(), pkg.version.clone())) {
                continue;
            }
            let member = members.get(&pkg.name).filter(|_| pkg.source.is_none());
            match member {
                Some(m) => {
                    let (files, watched) = package_files(root, &m.dir)?;
                    computed.watched.extend(watched);
                    for f in files {
                        let h = match file_hashes.get(&f) {
                            Some(h) => h.clone(),
                            None => {
                                let h = hash_file(root, &f)?;
                                file_hashes.insert(f.clone(), h.clone());
                                h
                            }
                        };
                        lines.push(format!("file {} {h}", f.to_string_lossy()));
                    }
                }
                None => lines.push(format!(
                    "crate {} {} {}",
                    pkg.name,
                    pkg.version,
                    pkg.checksum
                        .as_deref()
                        .or(pkg.source.as_deref())
                        .unwrap_or("-")
                )),
            }
            if pkg.name == "torch-sys" {
                lines.push(format!("libtorch {libtorch}"));
            }
            for dep in &pkg.deps {
                let d = resolve_dep(&lock, dep, &lock_path)?;
                if member.is_some_and(|m| !m.build_deps.contains(&d.name)) {
                    continue;
                }
                queue.push_back(d);
            }
        }
        lines.sort();
        lines.dedup();
        let mut h = blake3::Hasher::new();
        for l in &lines {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
        computed
            .identities
            .insert(stage.binary.to_string(), h.finalize().to_hex().to_string());
    }
    Ok(computed)
}

/// The libtorch version the torch crates link, found the way `torch-sys` finds libtorch:
/// `$LIBTORCH/build-version`, else (with `LIBTORCH_USE_PYTORCH`) the `torch/version.py` of the Python
/// on `PATH` (or `$PYTHON_SYS_EXECUTABLE`). Returns the version and the file it came from; `"none"`
/// when no libtorch is found (the torch binaries then do not build either).
pub fn libtorch_version() -> (String, Option<PathBuf>) {
    if let Some(dir) = std::env::var_os("LIBTORCH") {
        let f = PathBuf::from(dir).join("build-version");
        if let Ok(v) = std::fs::read_to_string(&f) {
            return (v.trim().to_string(), Some(f));
        }
    }
    let python = std::env::var_os("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|| "python3".into());
    let script = "import importlib.util as u, os\ns = u.find_spec('torch')\n\
                  print(os.path.join(os.path.dirname(s.origin), 'version.py') if s else '')";
    let found = std::process::Command::new(python)
        .args(["-c", script])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(f) = found.filter(|f| f.is_file()) {
        if let Ok(text) = std::fs::read_to_string(&f) {
            if let Some(v) = text.lines().find_map(|l| {
                l.strip_prefix("__version__")
                    .and_then(|r| r.split_once('='))
                    .map(|(_, v)| v.trim().trim_matches(['\'', '"']).to_string())
            }) {
                return (v, Some(f));
            }
        }
    }
    ("none".into(), None)
}

#[cfg(test)]
mod tests;
