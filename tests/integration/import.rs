//! Integration tests: stage `import-weights` (METHOD.md §3.8) on checkpoints that PyTorch writes in
//! every form the reference saves — a plain state_dict, `{'model', 'head'}`, `{'model', 'optimizer',
//! 'epoch', …}`, with and without DataParallel's `module.` prefix, in the zip format and in the
//! legacy format of PyTorch < 1.6 (the reference's published files), including tensors that are
//! strided views or start at an offset of their storage. Every imported tensor must equal the
//! PyTorch tensor bit for bit; a missing, mis-shaped or unexpected tensor is an error naming it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{bin, run_python, Workspace};

/// Builds the checkpoints with the reference models of `reference.py`; writes, for each good form,
/// `<name>.pth.tar` and `<name>.expect.safetensors` (the state_dict it holds, prefix stripped).
const MAKE_PY: &str = r#"
out = sys.argv[1]
torch.manual_seed(0)
def perturb(m):
    with torch.no_grad():
        for k, v in m.state_dict().items():
            if v.dtype == torch.float32: v.add_(torch.randn_like(v) * 0.1)
            else: v.fill_(37)
    return m
simclr = perturb(Contrastive(3, 4, 16))
scan3 = perturb(Clustering(3, 4, 3, 5))
self1 = perturb(Clustering(3, 4, 1, 5))
def expect(name, sd):
    save_file({k.removeprefix("module."): v.contiguous().clone() for k, v in sd.items()}, f"{out}/{name}.expect.safetensors")
def save(name, obj, sd, legacy=False):
    torch.save(obj, f"{out}/{name}.pth.tar", _use_new_zipfile_serialization=not legacy)
    expect(name, sd)
sd = simclr.state_dict()
save("simclr_plain_zip", sd, sd)
save("simclr_plain_legacy", sd, sd, legacy=True)
opt = torch.optim.SGD(simclr.parameters(), lr=0.1, momentum=0.9)
simclr(torch.randn(4, 3, 16, 16)).sum().backward(); opt.step()
sd = simclr.state_dict()
save("simclr_training_zip", {"optimizer": opt.state_dict(), "model": sd, "epoch": 3}, sd)
dp = nn.DataParallel(simclr).state_dict()
assert all(k.startswith("module.") for k in dp)
save("simclr_module_legacy", dp, dp, legacy=True)
# Strided and offset tensors: a transposed view and a slice of a larger storage.
odd = dict(sd)
w = sd["contrastive_head.0.weight"]
odd["contrastive_head.0.weight"] = w.t().contiguous().t()
b = sd["contrastive_head.2.bias"]
odd["contrastive_head.2.bias"] = torch.cat([torch.zeros(5), b])[5:]
assert not odd["contrastive_head.0.weight"].is_contiguous() and odd["contrastive_head.2.bias"].storage_offset() == 5
save("simclr_strided_zip", odd, odd)
save("simclr_strided_legacy", odd, odd, legacy=True)
sd = scan3.state_dict()
save("scan_head_zip", {"model": sd, "head": 2}, sd)
adam = torch.optim.Adam(scan3.parameters(), lr=1e-4, weight_decay=1e-4)
sum(o.sum() for o in scan3(torch.randn(4, 3, 16, 16))).backward(); adam.step()
sd = scan3.state_dict()
dp = nn.DataParallel(scan3).state_dict()
save("scan_training_legacy", {"optimizer": adam.state_dict(), "model": dp, "epoch": 5, "best_loss": -1.5, "best_loss_head": 1}, dp, legacy=True)
sd = self1.state_dict()
save("selflabel_plain_zip", sd, sd)
# Broken ones.
sd = dict(simclr.state_dict())
del sd["backbone.layer2.1.bn2.running_var"]
torch.save(sd, f"{out}/missing.pth.tar")
sd = dict(simclr.state_dict()); sd["contrastive_head.2.bias"] = torch.zeros(17)
torch.save(sd, f"{out}/misshaped.pth.tar")
sd = dict(simclr.state_dict()); sd["extra.weight"] = torch.zeros(3)
torch.save(sd, f"{out}/unexpected.pth.tar")
"#;

/// Run `scan-import-weights` on `checkpoint` with `params`; returns (success, stderr).
fn import(ws: &Workspace, name: &str, params: &str) -> (bool, String) {
    let out = ws.join(&format!("{name}.out"));
    std::fs::create_dir_all(&out).unwrap();
    let pfile = ws.join(&format!("{name}.params.json"));
    std::fs::write(&pfile, params).unwrap();
    let o = std::process::Command::new(bin("scan-import-weights"))
        .arg("--out")
        .arg(&out)
        .arg("--params")
        .arg(&pfile)
        .arg("--input")
        .arg(format!(
            "checkpoint={}",
            ws.join(&format!("{name}.pth.tar")).display()
        ))
        .env_remove("SCAN_WORK_DIR")
        .output()
        .expect("spawn");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// Name → (dtype, shape, bytes) of a safetensors file.
fn tensors(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                (
                    format!("{:?}", v.dtype()),
                    v.shape().to_vec(),
                    v.data().to_vec(),
                ),
            )
        })
        .collect()
}

fn meta(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let (_, h) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    serde_json::from_str(&h.metadata().as_ref().unwrap()["scan"]).unwrap()
}

#[test]
fn every_reference_checkpoint_form_imports_bit_for_bit() {
    let ws = Workspace::new();
    run_python(
        &format!("{}\n{MAKE_PY}", crate::fidelity::REFERENCE),
        &[ws.path().to_str().unwrap()],
    );
    // (checkpoint, params, expected kind, heads, best head)
    let cases = [
        ("simclr_plain_zip", r#"{}"#, "simclr", 0, 0),
        (
            "simclr_plain_legacy",
            r#"{"kind":"simclr"}"#,
            "simclr",
            0,
            0,
        ),
        ("simclr_training_zip", r#"{}"#, "simclr", 0, 0),
        ("simclr_module_legacy", r#"{}"#, "simclr", 0, 0),
        ("simclr_strided_zip", r#"{}"#, "simclr", 0, 0),
        (
            "simclr_strided_legacy",
            r#"{"arch":"stl","dataset":"stl10"}"#,
            "simclr",
            0,
            0,
        ),
        ("scan_head_zip", r#"{}"#, "scan", 3, 2),
        ("scan_training_legacy", r#"{}"#, "scan", 3, 1),
        (
            "selflabel_plain_zip",
            r#"{"dataset":"cifar100-20"}"#,
            "selflabel",
            1,
            0,
        ),
    ];
    for (name, params, kind, heads, best) in cases {
        let (ok, err) = import(&ws, name, params);
        assert!(ok, "{name}: {err}");
        let weights = ws.join(&format!("{name}.out/weights"));
        let ours = tensors(&weights);
        let want = tensors(&ws.join(&format!("{name}.expect.safetensors")));
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}: tensor names"
        );
        for (k, (dtype, shape, data)) in &want {
            let (od, os, odata) = &ours[k];
            if k.ends_with("num_batches_tracked") {
                // One counter for every BN in our format: the checkpoint's (all equal here).
                assert_eq!((od, os, odata), (dtype, shape, data), "{name}: {k}");
                continue;
            }
            assert_eq!((od, os), (dtype, shape), "{name}: {k}");
            assert!(odata == data, "{name}: {k} differs from the PyTorch tensor");
        }
        let m = meta(&weights);
        assert_eq!(m["kind"], kind, "{name}: {m}");
        assert_eq!(m["model"]["width"], 4, "{name}");
        assert_eq!(m["model"]["in_channels"], 3, "{name}");
        assert_eq!(m["model"]["num_heads"], heads, "{name}");
        if kind == "simclr" {
            assert_eq!(m["model"]["proj_dim"], 16, "{name}");
        } else {
            assert_eq!(m["model"]["num_classes"], 5, "{name}");
            assert_eq!(m["best_head"], best, "{name}");
        }
        let (stem, mean0) = match name {
            "simclr_strided_legacy" => ("stl", 0.485),
            "selflabel_plain_zip" => ("cifar", 0.5071),
            _ => ("cifar", 0.4914),
        };
        assert_eq!(m["model"]["arch"], stem, "{name}");
        assert_eq!(m["normalize"]["mean"][0], mean0, "{name}");
        // The file loads strictly into our model.
        scan::nn::weights::load_model(&weights, tch::Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The head can be chosen by param.
    let (ok, err) = import(&ws, "scan_head_zip", r#"{"best_head":0}"#);
    assert!(ok, "{err}");
    assert_eq!(meta(&ws.join("scan_head_zip.out/weights"))["best_head"], 0);
    let (ok, err) = import(&ws, "scan_head_zip", r#"{"best_head":3}"#);
    assert!(!ok && err.contains("best head 3"), "{err}");
}

#[test]
fn broken_checkpoints_are_errors_naming_the_tensor() {
    let ws = Workspace::new();
    run_python(
        &format!("{}\n{MAKE_PY}", crate::fidelity::REFERENCE),
        &[ws.path().to_str().unwrap()],
    );
    for (name, params, needle) in [
        (
            "missing",
            "{}",
            "missing `backbone.layer2.1.bn2.running_var`",
        ),
        (
            "misshaped",
            "{}",
            "`contrastive_head.2.bias` has shape [17]",
        ),
        ("unexpected", "{}", "unexpected `extra.weight`"),
        // A SimCLR checkpoint read as a clustering model.
        (
            "simclr_plain_zip",
            r#"{"kind":"scan"}"#,
            "cluster_head.0.weight",
        ),
    ] {
        let (ok, err) = import(&ws, name, params);
        assert!(!ok, "{name} imported");
        assert!(
            err.contains(needle) && err.contains(&format!("{name}.pth.tar")),
            "{name}: {err}"
        );
    }
    // Not a checkpoint at all.
    std::fs::write(ws.join("garbage.pth.tar"), b"not torch").unwrap();
    let (ok, err) = import(&ws, "garbage", "{}");
    assert!(!ok && err.contains("not a PyTorch checkpoint"), "{err}");
}
