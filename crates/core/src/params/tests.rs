use serde_json::json;

use super::*;

#[test]
fn resolve_fills_defaults_and_sorts() {
    let v = resolve::<MineParams>(&json!({"k_train": 5})).unwrap();
    assert_eq!(v, json!({"device": "auto", "k_test": 5, "k_train": 5}));
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"device":"auto","k_test":5,"k_train":5}"#
    );
}

#[test]
fn explicit_default_equals_omitted() {
    let a = resolve::<PretextParams>(&json!({"momentum": 0.9})).unwrap();
    let b = resolve::<PretextParams>(&json!({})).unwrap();
    assert_eq!(a, b);
}

#[test]
fn unknown_key_wrong_type_and_range_name_the_key() {
    let e = parse::<PretextParams>(&json!({"epochz": 3})).unwrap_err();
    assert_eq!(e.key, "epochz");
    assert!(e.message.contains("epochz"), "{e}");
    let e = parse::<PretextParams>(&json!({"lr": "fast"})).unwrap_err();
    assert_eq!(e.key, "lr");
    let e = parse::<PretextParams>(&json!({"lr": -1.0})).unwrap_err();
    assert_eq!(e.key, "lr");
    let e = parse::<ScanParams>(&json!({"augmentation": "weak"})).unwrap_err();
    assert_eq!(e.key, "augmentation");
    let e = parse::<IngestParams>(&json!({"subset": {"train": 0}})).unwrap_err();
    assert_eq!(e.key, "subset.train");
    let e = parse::<IngestParams>(&json!({"subset": {"trian": 1}})).unwrap_err();
    assert!(e.key.starts_with("subset"), "{e}");
}

#[test]
fn integer_literal_is_accepted_for_floats() {
    let p = parse::<ScanParams>(&json!({"entropy_weight": 2})).unwrap();
    assert_eq!(p.entropy_weight, 2.0);
    assert_eq!(
        resolve::<ScanParams>(&json!({"entropy_weight": 2})).unwrap(),
        resolve::<ScanParams>(&json!({"entropy_weight": 2.0})).unwrap()
    );
}

#[test]
fn resolved_params_have_no_nulls() {
    // TOML (pipeline.lock) has no null: an unset optional param is left out.
    let v = resolve::<IngestParams>(&json!({})).unwrap();
    assert!(!v.to_string().contains("null"), "{v}");
    let v = resolve::<EvalParams>(&json!({})).unwrap();
    assert!(!v.to_string().contains("null"), "{v}");
    let v = resolve::<ImportParams>(&json!({})).unwrap();
    assert!(!v.to_string().contains("null"), "{v}");
}

#[test]
fn new_flags_stay_out_of_resolved_params_when_off() {
    // `download` and `normalize` appear only when set, so pipelines that do not use them keep
    // their resolved params (and keys).
    let v = resolve::<IngestParams>(&json!({"dataset": "cifar10"})).unwrap();
    assert!(v.get("download").is_none(), "{v}");
    let v = resolve::<IngestParams>(&json!({"dataset": "cifar10", "download": true})).unwrap();
    assert_eq!(v["download"], json!(true));
    let v = resolve::<MineParams>(&json!({"normalize": true})).unwrap();
    assert_eq!(v["normalize"], json!(true));
    let e = parse::<IngestParams>(&json!({"dataset": "folder", "download": true})).unwrap_err();
    assert_eq!(e.key, "download");
}
