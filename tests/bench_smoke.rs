//! A small smoke run of `microcash bench --json`: it runs, every measurement is there, and
//! the batched engine is faster than verifying one at a time. (Real figures come from
//! `microcash bench` on an idle machine; timings are never asserted tightly in tests.)

#[test]
fn bench_reports_every_figure() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_microcash"))
        .args(["bench", "--coins", "128", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    for key in [
        "engine_1t_us",
        "engine_all_us",
        "kernels_1t_us",
        "kernels_all_us",
        "one_at_a_time_1t_us",
        "one_at_a_time_all_us",
    ] {
        assert!(v["per_coin"][key].as_f64().unwrap() > 0.0, "{key}");
    }
    for key in [
        "hash_to_g1",
        "g1_decompress",
        "g1_subgroup_check",
        "pallas_decompress",
        "blst_verify",
    ] {
        assert!(v["primitives_us"][key].as_f64().unwrap() > 0.0, "{key}");
    }
    // The per-stage table: every stage of verification was timed, and together they are
    // the kernel-only run they were measured in (not a separate guess).
    let stages = &v["stages_1t_us"];
    let mut verify_sum = 0.0;
    for key in [
        "walk",
        "hash_to_g1",
        "bls_check",
        "pallas_prepare",
        "pallas_check",
        "replay",
    ] {
        let us = stages[key].as_f64().unwrap();
        assert!(us > 0.0, "{key}");
        verify_sum += us;
    }
    assert!(stages["decode"].as_f64().unwrap() > 0.0);
    assert!(stages["settle_and_pipeline"].as_f64().unwrap() >= 0.0);
    let kernels = v["per_coin"]["kernels_1t_us"].as_f64().unwrap();
    assert!(
        verify_sum <= kernels * 1.01,
        "stages {verify_sum} within the run {kernels}"
    );
    assert!(v["ratios"]["speedup_vs_one_at_a_time_1t"].as_f64().unwrap() > 1.0);
    assert!(v["ratios"]["forged_over_valid"].as_f64().unwrap() > 0.0);
    assert!(v["spentset_probe_insert_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["recovery_rebuild_entries_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["recovery_sealed_open_entries_per_s"].as_f64().unwrap() > 0.0);
}
