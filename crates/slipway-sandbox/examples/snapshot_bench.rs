//! Snapshot save and restore by descriptor against the `cp -a --reflink=auto` they replaced,
//! on the same tree: a `node_modules`-like directory of many small files.
//! Usage: cargo run --release -p slipway-sandbox --example snapshot_bench [FILES]

use slipway_sandbox::snapshot::{key, Manifest, Scope, Snapshots};
use slipway_sandbox::Quotas;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn make_tree(root: &Path, files: usize) {
    for i in 0..files {
        let dir = root.join(format!("node_modules/pkg{}/lib/d{}", i / 40, i % 4));
        std::fs::create_dir_all(&dir).unwrap();
        let body = vec![b'x'; 512 + (i * 97) % 7_000];
        std::fs::write(dir.join(format!("f{i}.js")), body).unwrap();
        if i % 500 == 0 {
            std::os::unix::fs::symlink("../lib", dir.join("link")).unwrap();
        }
    }
}

fn cp(args: &[&str], from: &str, to: &Path) {
    let status = Command::new("cp")
        .args(args)
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let files: usize = std::env::args()
        .nth(1)
        .map_or(20_000, |n| n.parse().expect("FILES is a number"));
    let work = tempfile::tempdir().unwrap();
    let ws = work.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let before = Manifest::scan(&ws, Default::default()).unwrap();
    make_tree(&ws, files);
    let scope = Scope::branch("bench", "main");
    let (mut save, mut save_cp, mut restore, mut restore_cp) = (vec![], vec![], vec![], vec![]);
    for run in 0..RUNS {
        // Save: what setup made, into a snapshot store.
        let store = work.path().join(format!("store{run}"));
        let snapshots = Snapshots::new(store.clone(), u64::MAX);
        let k = key(&ws, &scope, &[], &[format!("run {run}")]);
        let t = Instant::now();
        snapshots
            .save(&k, &ws, &before, None, &Quotas::default())
            .unwrap();
        save.push(t.elapsed());
        let baseline = work.path().join(format!("cp-save{run}"));
        std::fs::create_dir(&baseline).unwrap();
        let from = ws.join("node_modules");
        let t = Instant::now();
        cp(&["-a", "--reflink=auto"], from.to_str().unwrap(), &baseline);
        save_cp.push(t.elapsed());

        // Restore by copy: a checkout that already has node_modules/ (no overlay possible).
        let target = work.path().join(format!("target{run}"));
        std::fs::create_dir_all(target.join("node_modules")).unwrap();
        let checkout = Manifest::scan(&target, Default::default()).unwrap();
        let layers = work.path().join(format!("layers{run}"));
        let t = Instant::now();
        let restored = snapshots
            .restore(&k, &target, &layers, None, &checkout)
            .unwrap()
            .expect("saved");
        restore.push(t.elapsed());
        assert_eq!(restored.mechanism, "copy");
        snapshots.release(restored);
        let cp_target = work.path().join(format!("cp-target{run}"));
        std::fs::create_dir_all(cp_target.join("node_modules")).unwrap();
        let source = format!("{}/files/node_modules/.", store.join(&k).display());
        let t = Instant::now();
        cp(
            &["-a", "--reflink=auto", "--remove-destination"],
            &source,
            &cp_target.join("node_modules"),
        );
        restore_cp.push(t.elapsed());
    }
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let (s, sc, r, rc) = (
        median(save),
        median(save_cp),
        median(restore),
        median(restore_cp),
    );
    println!("{files} files, median of {RUNS} runs");
    println!(
        "save:    by descriptor {} | cp -a {} | ratio {:.2}",
        ms(s),
        ms(sc),
        s.as_secs_f64() / sc.as_secs_f64()
    );
    println!(
        "restore: by descriptor {} | cp -a {} | ratio {:.2}",
        ms(r),
        ms(rc),
        r.as_secs_f64() / rc.as_secs_f64()
    );
}
