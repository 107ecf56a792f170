//! Group commit vs one transaction per transfer, on the real store with
//! `synchronous=FULL`, on a real disk, measured in the same run.
//!
//!     cargo bench -p pooldesk-daemon --bench ledger_commit
//!
//! Group commit: many writers submit transfers concurrently; the writer
//! thread folds whatever is queued into one transaction and one fsync.
//! Baseline: one writer, each transfer awaited before the next, so every
//! transfer is its own transaction and its own fsync.

use std::time::{Duration, Instant};

use pooldeskd::ledger::{self, TransferKind, TransferRequest};
use pooldeskd::metrics::StoreMetrics;
use pooldeskd::store::{Durability, Store, StoreOptions};

const GROUP_TRANSFERS: usize = 40_000;
const GROUP_WRITERS: usize = 256;
const SINGLE_TRANSFERS: usize = 400;

fn request(key: String, miner: usize) -> TransferRequest {
    TransferRequest {
        idempotency_key: key,
        debit: ledger::POOL_REWARDS.into(),
        credit: format!("miner:bench{}", miner % 1000),
        amount_msat: 1_000,
        kind: TransferKind::Adjustment,
        reference: None,
    }
}

fn open(dir: &std::path::Path, name: &str, durability: Durability) -> Store {
    let opts = StoreOptions {
        durability,
        ..StoreOptions::default()
    };
    Store::open(&dir.join(name), opts, StoreMetrics::new()).expect("open store")
}

fn main() {
    for durability in [Durability::Full, Durability::Pipelined] {
        run(durability);
    }
}

fn run(durability: Durability) {
    // A directory on the same disk as the build, not tmpfs: fsync must
    // mean something for the comparison to be honest.
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("bench dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // One transaction per transfer.
    let single = open(dir.path(), "single.sqlite", durability);
    let started = Instant::now();
    runtime.block_on(async {
        for i in 0..SINGLE_TRANSFERS {
            let r = request(format!("single:{i}"), i);
            single
                .write(move |ctx| ledger::post(ctx, &r))
                .await
                .expect("post");
        }
    });
    let single_elapsed = started.elapsed();
    let single_rate = SINGLE_TRANSFERS as f64 / single_elapsed.as_secs_f64();
    let single_commits = single.commits();
    runtime.block_on(single.close());

    // Group commit.
    let group = open(dir.path(), "group.sqlite", durability);
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::with_capacity(GROUP_WRITERS);
        for w in 0..GROUP_WRITERS {
            let store = group.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = w;
                while i < GROUP_TRANSFERS {
                    let r = request(format!("group:{i}"), i);
                    store
                        .write(move |ctx| ledger::post(ctx, &r))
                        .await
                        .expect("post");
                    i += GROUP_WRITERS;
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer");
        }
    });
    let group_elapsed = started.elapsed();
    let group_rate = GROUP_TRANSFERS as f64 / group_elapsed.as_secs_f64();
    let group_commits = group.commits();
    let violations = group.read_blocking(ledger::verify).expect("verify");
    assert!(violations.is_empty(), "{violations:?}");
    runtime.block_on(group.close());

    println!(
        "ledger_commit, durability {durability:?} (acknowledged = fsynced), WAL, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "  one transaction per transfer: {SINGLE_TRANSFERS} transfers in {} → {:.0} transfers/s ({single_commits} commits)",
        fmt(single_elapsed),
        single_rate
    );
    println!(
        "  group commit ({GROUP_WRITERS} writers):  {GROUP_TRANSFERS} transfers in {} → {:.0} transfers/s ({group_commits} commits, {:.1} transfers/commit)",
        fmt(group_elapsed),
        group_rate,
        GROUP_TRANSFERS as f64 / group_commits.max(1) as f64
    );
    println!(
        "  ratio group/single: {:.1}x (target ≥ 50x)",
        group_rate / single_rate
    );
}

fn fmt(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
