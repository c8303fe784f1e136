//! Integration tests: the artifact store (`scan verify`, `gc`, `export`, `import`).

use std::path::PathBuf;
use std::process::Command;

use crate::common::{run_python, Workspace};
use crate::runner::{ok, ran, scan, setup, text};

fn chmod_w(p: &std::path::Path) {
    let _ = Command::new("chmod").args(["-R", "u+w"]).arg(p).status();
}

#[test]
fn verify_quarantines_corrupt_blob_and_run_rebuilds_it() {
    let ws = setup();
    ok(&ws, &["run"]);
    ran(&ws);
    assert!(ok(&ws, &["verify"]).contains(" 0 corrupt"));
    let blob = PathBuf::from(ok(&ws, &["show", "b.feat"]).trim());
    let hash = blob.file_name().unwrap().to_string_lossy().into_owned();
    chmod_w(&blob);
    std::fs::write(&blob, "bit rot").unwrap();
    let o = scan(&ws, &["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("corrupt blob {hash}")), "{out}");
    assert!(ws.join("artifacts/quarantine").join(&hash).exists());
    assert!(!blob.exists());
    assert!(ok(&ws, &["explain", "b"]).contains("output feat missing from store"));
    // The next run rebuilds b; its output is identical again, so c and d stay cached.
    ok(&ws, &["run"]);
    assert_eq!(ran(&ws), ["b"]);
    assert!(ok(&ws, &["verify"]).contains(" 0 corrupt"));
}

#[test]
fn export_one_stage_import_into_empty_store_reuses_it() {
    let ws = setup();
    ok(&ws, &["run"]);
    ran(&ws);
    let file = ws.join("c.scanpack");
    ok(&ws, &["export", "c", "-o", file.to_str().unwrap()]);
    // A teammate: same pipeline and inputs, empty store.
    let mate = Workspace::new();
    for f in ["stage.py", "raw.txt", "pipeline.toml"] {
        std::fs::copy(ws.join(f), mate.join(f)).unwrap();
    }
    let out = ok(&mate, &["import", file.to_str().unwrap()]);
    assert!(out.contains("imported 3 action records"), "{out}");
    let out = ok(&mate, &["run"]);
    assert_eq!(ran(&mate), ["d"], "{out}");
    assert_eq!(
        std::fs::read(ws.join("pipeline.lock")).unwrap(),
        std::fs::read(mate.join("pipeline.lock")).unwrap()
    );
    // Importing twice is harmless; exporting a stage that is not built is refused.
    ok(&mate, &["import", file.to_str().unwrap()]);
    let fresh = setup();
    let o = scan(&fresh, &["export", "a", "-o", "x.tar"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!fresh.join("x.tar").exists());
}

/// A tar file with the given (name, bytes, kind) entries, written by Python's tarfile.
fn craft_tar(ws: &Workspace, entries: &[(&str, &[u8], &str)]) -> PathBuf {
    let path = ws.join("evil.tar");
    let spec: Vec<String> = entries
        .iter()
        .map(|(n, b, k)| format!("({n:?}, bytes.fromhex({:?}), {k:?})", hex::encode(b)))
        .collect();
    let code = format!(
        r#"
import tarfile, io, sys
with tarfile.open(sys.argv[1], "w") as t:
    for name, data, kind in [{}]:
        info = tarfile.TarInfo(name)
        if kind == "sym":
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            t.addfile(info)
        else:
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
"#,
        spec.join(", ")
    );
    run_python(&code, &[path.to_str().unwrap()]);
    path
}

#[test]
fn import_refuses_path_traversal_and_bad_hashes_leaving_nothing() {
    let ws = setup();
    let good = blake3::hash(b"ok").to_hex().to_string();
    let good_entry = format!("blobs/{}/{good}", &good[..2]);
    type Entry = (String, Vec<u8>, &'static str);
    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (
            vec![
                (good_entry.clone(), b"ok".to_vec(), "file"),
                ("../escape".into(), b"x".to_vec(), "file"),
            ],
            "../escape",
        ),
        (
            vec![("blobs/../../escape".into(), b"x".to_vec(), "file")],
            "blobs/../../escape",
        ),
        (vec![("/tmp/abs".into(), b"x".to_vec(), "file")], "/tmp/abs"),
        (
            vec![(good_entry.clone(), b"tampered".to_vec(), "file")],
            "contents hash to",
        ),
        (
            vec![(format!("actions/{good}.json"), b"{}".to_vec(), "file")],
            "actions/",
        ),
        (
            vec![(good_entry.clone(), Vec::new(), "sym")],
            "not a regular file",
        ),
    ];
    for (entries, want) in cases {
        let refs: Vec<(&str, &[u8], &str)> = entries
            .iter()
            .map(|(n, b, k)| (n.as_str(), b.as_slice(), *k))
            .collect();
        let tar = craft_tar(&ws, &refs);
        let o = scan(&ws, &["import", tar.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{want}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{want}: {}",
            text(&o)
        );
        assert!(
            !ws.join("artifacts/blobs").exists(),
            "{want}: partial import left blobs"
        );
        assert!(
            !ws.join("escape").exists() && !ws.path().parent().unwrap().join("escape").exists()
        );
        let tmp = ws.join("artifacts/tmp");
        assert_eq!(
            std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
            0,
            "{want}: staging left"
        );
    }
}

#[test]
fn gc_keeps_what_lock_and_recent_runs_reference() {
    let ws = setup();
    ok(&ws, &["run"]);
    crate::runner::edit(&ws, "value = 3", "value = 30");
    ok(&ws, &["run"]);
    crate::runner::edit(&ws, "value = 30", "value = 31");
    ok(&ws, &["run"]);
    ran(&ws);
    // keep-runs 1: the value=3 and value=30 results of c and d go; the lock's stay.
    let dry = ok(&ws, &["gc", "--dry-run", "--keep-runs", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(v["removed_actions"].as_array().unwrap().len(), 4, "{dry}");
    let before = std::fs::read_dir(ws.join("artifacts/actions"))
        .unwrap()
        .count();
    assert_eq!(before, 8);
    ok(&ws, &["gc", "--keep-runs", "1"]);
    assert_eq!(
        std::fs::read_dir(ws.join("artifacts/actions"))
            .unwrap()
            .count(),
        4
    );
    ok(&ws, &["run"]);
    assert!(ran(&ws).is_empty());
    assert!(ok(&ws, &["verify"]).contains(" 0 corrupt"));
    // Going back to an old param after gc rebuilds.
    crate::runner::edit(&ws, "value = 31", "value = 3");
    ok(&ws, &["run"]);
    assert_eq!(ran(&ws), ["c", "d"]);
}
