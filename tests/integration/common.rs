//! Shared fixture: a temporary workspace, paths to the built binaries and the test venv's Python.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary workspace directory, removed on drop.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::Builder::new()
                .prefix("scan-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn write(&self, p: &str, content: &str) -> PathBuf {
        let path = self.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, content).expect("write");
        path
    }
    /// A `scan` command running in this workspace with its own store.
    pub fn scan(&self) -> Command {
        let mut c = Command::new(bin("scan"));
        c.current_dir(self.path()).env_remove("SCAN_STORE");
        c
    }
}

/// Path of a binary of this package (cargo builds them for integration tests).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/integration-xxxx -> target/<profile>/<name>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name)
}

/// The test venv's Python (the oracles: torch, scikit-learn, scipy, pyarrow, Pillow, safetensors).
/// Tests that need it fail (never skip) when it is missing: `make test` installs it.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SCAN_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run `make test` (it runs scripts/setup-venv.sh)",
        p.display()
    );
    p
}

/// Run a Python snippet with the test venv and return stdout; panics with stderr on failure.
pub fn run_python(code: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("spawn python");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// Write the weights of an untrained width-8 Fashion-MNIST network to `path`: a SimCLR model
/// (`num_classes` = 0) or a one-head clustering model with `num_classes` clusters, initialised with
/// `seed` — the random-initialisation baselines of the learning tests.
pub fn random_fmnist_weights(path: &Path, num_classes: i64, seed: i64) {
    use scan::nn::{self, Arch, Model, ModelConfig, NormMeta, WeightsMeta};
    tch::manual_seed(seed);
    let simclr = num_classes == 0;
    let config = ModelConfig {
        arch: Arch::Cifar,
        in_channels: 1,
        width: 8,
        proj_dim: 128,
        num_heads: usize::from(!simclr),
        num_classes,
    };
    let model = if simclr {
        Model::simclr(config.clone(), tch::Device::Cpu)
    } else {
        Model::cluster(config.clone(), tch::Device::Cpu)
    };
    let (mean, std) = scan::data::norm_stats("fashion-mnist", 1);
    let meta = WeightsMeta {
        format_version: nn::weights::FORMAT_VERSION,
        kind: if simclr { "simclr" } else { "scan" }.into(),
        model: config,
        best_head: 0,
        normalize: NormMeta { mean, std },
        dataset: "fashion-mnist".into(),
        num_batches_tracked: 0,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    nn::weights::save(&model, &meta, path).expect("save");
}
