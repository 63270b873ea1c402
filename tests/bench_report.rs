//! `benches/report.py summary` with goalloc's lock reports (`--locks-dir`, as
//! `scripts/bench.sh` writes them): the locks' section of summary.txt and summary.md, its
//! per-million figures and the model of utilisation on many cores, from made-up runs.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// One run's `GOALLOC_STATS=json` line: calls and `(lock, acquisitions, contended, held_ns)`.
fn report_line(calls: u64, locks: &[(&str, u64, u64, u64)]) -> String {
    let by_lock: Vec<String> = locks
        .iter()
        .map(|(name, a, c, h)| {
            format!(
                "{{\"lock\":\"{name}\",\"acquisitions\":{a},\"contended\":{c},\"held_ns\":{h}}}"
            )
        })
        .collect();
    format!(
        "{{\"allocator\":\"goalloc\",\"locks\":{{\"calls\":{calls},\"elapsed_ns\":1,\"by_lock\":[{}]}}}}\n",
        by_lock.join(",")
    )
}

#[test]
fn summary_models_the_locks() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target").join("bench-report-test");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("locks")).unwrap();
    fs::write(
        dir.join("results.csv"),
        "round,workload,allocator,wall_s,user_s,sys_s,cpu_s,maxrss_kib,status,output_ok\n\
         1,prodcons,goalloc,1.0,1.5,0.5,2.0,1024,0,1\n\
         1,prodcons@16,goalloc,2.0,3.5,0.5,4.0,2048,0,1\n",
    )
    .unwrap();
    fs::write(dir.join("meta.txt"), "rounds: 1\nthreads: 2\n").unwrap();
    // 2 threads: mheap held 100 ns a time; mcentral[5] 500 ns
    fs::write(
        dir.join("locks/prodcons-goalloc-r1.json"),
        report_line(
            1_000_000,
            &[
                ("mheap", 1000, 10, 100_000),
                ("caches", 0, 0, 0),
                ("profile", 0, 0, 0),
                ("mcentral", 2000, 0, 1_000_000),
                ("mcentral[5]", 2000, 0, 1_000_000),
            ],
        ),
    )
    .unwrap();
    // 16 threads in two processes: 4000 mheap acquisitions in 4 CPU-seconds, 200 ns each
    fs::write(
        dir.join("locks/prodcons@16-goalloc-r1.json"),
        report_line(600_000, &[("mheap", 3000, 0, 600_000)])
            + &report_line(400_000, &[("mheap", 1000, 0, 200_000)]),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg(root.join("benches/report.py"))
        .args(["summary", "--csv"])
        .arg(dir.join("results.csv"))
        .arg("--meta")
        .arg(dir.join("meta.txt"))
        .arg("--locks-dir")
        .arg(dir.join("locks"))
        .arg("--out")
        .arg(&dir)
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let txt = fs::read_to_string(dir.join("summary.txt")).unwrap();
    let rows: Vec<Vec<&str>> = txt
        .lines()
        .skip_while(|l| !l.starts_with("Locks under goalloc"))
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .take_while(|r: &Vec<&str>| r.len() >= 6)
        .collect();
    // util N = N x (acquisitions per CPU-second of the run with the most threads up to N)
    //          x (the shortest mean hold): mheap 16 x 1000/s x 100 ns = 0.16 %
    assert_eq!(
        rows,
        [
            vec![
                "prodcons", "mheap", "1000.0", "10.00", "100", "0.010%", "0.16%", "0.64%", "1.28%"
            ],
            vec![
                "prodcons", "mcentral", "2000.0", "0.00", "500", "0.100%", "0.80%", "3.20%",
                "6.40%"
            ],
            vec![
                "prodcons",
                "mcentral[5]",
                "2000.0",
                "0.00",
                "500",
                "0.100%",
                "0.80%",
                "3.20%",
                "6.40%"
            ],
            vec!["prodcons@16", "mheap", "4000.0", "0.00", "200", "0.040%"],
        ],
        "{txt}"
    );
    let md = fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        md.contains("| prodcons | mheap | 1000.0 | 10.00 | 100 | 0.010% | 0.16% | 0.64% | 1.28% |"),
        "{md}"
    );
    assert!(fs::read_to_string(dir.join("locks.csv"))
        .unwrap()
        .starts_with("workload,base,threads,lock,"));
}
