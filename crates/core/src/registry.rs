// The built-in stages: one line each, `Variant => binary, package, main file, params schema;`.
// This list is the only one: the `Builtin` enum, the binary names, the params schemas the runner
// resolves, and the code identities `build.rs` computes are all derived from it. A test checks that
// every binary here is a `[[bin]]` of its package.
builtin_stages! {
    Ingest => "scan-ingest", "scan", "stages/ingest.rs", IngestParams;
    ImportWeights => "scan-import-weights", "scan", "stages/import_weights.rs", ImportParams;
    Pretext => "scan-pretext", "scan", "stages/pretext.rs", PretextParams;
    Embed => "scan-embed", "scan", "stages/embed.rs", EmbedParams;
    Mine => "scan-mine", "scan", "stages/mine.rs", MineParams;
    Kmeans => "scan-kmeans", "scan", "stages/kmeans.rs", KmeansParams;
    Cluster => "scan-cluster", "scan", "stages/cluster.rs", ScanParams;
    Selflabel => "scan-selflabel", "scan", "stages/selflabel.rs", SelflabelParams;
    Evaluate => "scan-evaluate", "scan-evaluate", "stages/evaluate.rs", EvalParams;
}
