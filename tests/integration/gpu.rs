//! CUDA tests of the training engine (feature `cuda-tests`, run on a GPU machine by
//! `scripts/device-check.sh`): `scan-pretext` and `scan-cluster` train on the GPU in every
//! precision with channels-last, the saved weights are contiguous fp32 with the reference names,
//! losses stay finite, and a killed fp16 run resumes (with its loss scale) from its checkpoint.
#![cfg(feature = "cuda-tests")]

use std::path::Path;
use std::process::Command;

use crate::common::{bin, run_python, Workspace};

fn run_stage(name: &str, ws: &Workspace, out: &str, params: &str, inputs: &[(&str, &Path)]) {
    let out = ws.join(out);
    std::fs::create_dir_all(&out).unwrap();
    let pfile = out.with_extension("params.json");
    std::fs::write(&pfile, params).unwrap();
    let mut cmd = Command::new(bin(name));
    cmd.arg("--out").arg(&out).arg("--params").arg(&pfile);
    for (n, p) in inputs {
        cmd.arg("--input").arg(format!("{n}={}", p.display()));
    }
    let o = cmd.env_remove("SCAN_DEVICE").output().expect("spawn");
    assert!(
        o.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn ingest(ws: &Workspace) -> std::path::PathBuf {
    run_stage(
        "scan-ingest",
        ws,
        "ingest",
        r#"{"dataset":"fashion-mnist","subset":{"train":2048,"test":512,"mode":"random","seed":0}}"#,
        &[(
            "data_dir",
            Path::new(
                &std::env::var("SCAN_FMNIST_DIR")
                    .unwrap_or_else(|_| "/usr/share/datasets/fashion-mnist".into()),
            ),
        )],
    );
    ws.join("ingest")
}

const CHECK_WEIGHTS: &str = r#"
import json, struct, sys
import torch
# The safetensors layout read directly (8-byte header length, JSON header, packed data): every
# tensor is stored contiguous by the format; check dtypes and finiteness.
for path in sys.argv[1:]:
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    for k, v in header.items():
        if k == "__metadata__":
            continue
        want = "I64" if k.endswith("num_batches_tracked") else "F32"
        assert v["dtype"] == want, (path, k, v["dtype"])
        if want == "F32":
            a, b = v["data_offsets"]
            t = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32)
            assert bool(t.isfinite().all()), (path, k)
print("ok")
"#;

#[test]
fn cuda_training_in_every_precision_saves_contiguous_fp32() {
    assert!(
        tch::Cuda::is_available(),
        "feature cuda-tests on, but no CUDA"
    );
    let ws = Workspace::new();
    let data = ingest(&ws);
    let mut weights = Vec::new();
    for precision in ["fp32", "bf16", "fp16"] {
        let pre = format!("pretext-{precision}");
        run_stage(
            "scan-pretext",
            &ws,
            &pre,
            &format!(
                r#"{{"epochs":2,"batch_size":256,"width":16,"knn_every":0,"precision":"{precision}"}}"#
            ),
            &[("train", &data.join("train"))],
        );
        let curves: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ws.join(&pre).join("curves")).unwrap())
                .unwrap();
        let losses: Vec<f64> = curves["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["loss"].as_f64().unwrap())
            .collect();
        assert!(
            losses.iter().all(|l| l.is_finite()) && losses[1] < losses[0],
            "{precision}: {losses:?}"
        );
        weights.push(ws.join(&pre).join("weights"));
    }
    let paths: Vec<String> = weights.iter().map(|p| p.display().to_string()).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    assert_eq!(run_python(CHECK_WEIGHTS, &refs).trim(), "ok");
}

#[test]
fn cuda_fp16_run_killed_after_a_checkpoint_resumes_with_its_loss_scale() {
    assert!(
        tch::Cuda::is_available(),
        "feature cuda-tests on, but no CUDA"
    );
    let ws = Workspace::new();
    let data = ingest(&ws);
    let work = ws.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = ws.join("pretext");
    std::fs::create_dir_all(&out).unwrap();
    let pfile = ws.write(
        "p.json",
        r#"{"epochs":6,"batch_size":256,"width":16,"knn_every":0,"precision":"fp16"}"#,
    );
    let spawn = || {
        let mut c = Command::new(bin("scan-pretext"));
        c.arg("--out")
            .arg(&out)
            .arg("--params")
            .arg(&pfile)
            .arg("--input")
            .arg(format!("train={}", data.join("train").display()))
            .env("SCAN_WORK_DIR", &work)
            .env_remove("SCAN_DEVICE");
        c
    };
    let mut child = spawn().stderr(std::process::Stdio::null()).spawn().unwrap();
    let ckpt = work.join("checkpoint.safetensors");
    let start = std::time::Instant::now();
    while !ckpt.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before a checkpoint"
        );
        assert!(start.elapsed().as_secs() < 120, "no checkpoint after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = spawn().output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("resuming from checkpoint after epoch"),
        "{err}"
    );
    let curves: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("curves")).unwrap()).unwrap();
    let recs = curves["records"].as_array().unwrap();
    assert_eq!(recs.len(), 6);
    assert!(recs.iter().all(|r| r["loss_scale"].as_f64().unwrap() > 0.0));
}
