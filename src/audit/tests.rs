//! Tests of the whole log: real files, real fsync, in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::checkpoint::tests::test_keys;
use super::record::tests::entry;
use super::segment::{list_segments, segment_file_name};
use super::*;

fn config(dir: &Path) -> AuditConfig {
    AuditConfig::new(dir)
}

/// Appends `n` records and returns them as written (read back from the files).
async fn append_n(log: &AuditLog, n: usize) -> Vec<AuditRecord> {
    for i in 0..n {
        let subject = if i % 2 == 0 { "alice" } else { "bob" };
        log.append(entry(subject)).await.unwrap();
    }
    let Reader::Files(dir) = log.reader() else {
        panic!("a file log");
    };
    let all = all_records(dir);
    all[all.len() - n..].to_vec()
}

/// The value of the log's counter `consentgate_audit_<name>_total`.
fn counter(log: &AuditLog, name: &str) -> u64 {
    let mut metrics = String::new();
    log.render_prometheus(&mut metrics);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("consentgate_audit_{name}_total ")))
        .unwrap()
        .parse()
        .unwrap()
}

/// Every record in `dir`, oldest first.
fn all_records(dir: &Path) -> Vec<AuditRecord> {
    list_segments(dir)
        .unwrap()
        .iter()
        .flat_map(|s| read_lines(&s.path))
        .map(|l| parse(&l))
        .collect()
}

/// `tasks` appenders of `each` records at once (request ids `<task>-<i>`), task `t` writing
/// its own batches when `in_caller(t)` ([`AuditLog::append_all_now_if_idle`]); then checks
/// that the log holds seqs 1..=tasks×each with each appender's records in its order.
async fn concurrent_appends(
    log: &AuditLog,
    dir: &Path,
    tasks: usize,
    each: usize,
    in_caller: fn(usize) -> bool,
) {
    let mut running = Vec::new();
    for t in 0..tasks {
        let log = log.clone();
        running.push(tokio::spawn(async move {
            for i in 0..each {
                let mut e = entry(&format!("s{t}"));
                e.request_id = format!("{t}-{i:03}");
                if in_caller(t) {
                    log.append_all_now_if_idle(&[e]).await.unwrap();
                } else {
                    log.append(e).await.unwrap();
                }
            }
        }));
    }
    for t in running {
        t.await.unwrap();
    }
    let records = all_records(dir);
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    let n = u64::try_from(tasks * each).unwrap();
    assert_eq!(seqs, (1..=n).collect::<Vec<u64>>());
    for t in 0..tasks {
        let mine: Vec<&str> = records
            .iter()
            .map(|r| r.request_id.as_str())
            .filter(|id| id.split('-').next() == Some(&t.to_string()))
            .collect();
        assert_eq!(mine.len(), each);
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
}

/// A log of `n` records in one segment; returns the segment path.
async fn single_segment_log(dir: &Path, n: usize) -> PathBuf {
    let log = AuditLog::open(config(dir)).unwrap();
    append_n(&log, n).await;
    drop(log);
    let segs = list_segments(dir).unwrap();
    assert_eq!(segs.len(), 1);
    segs[0].path.clone()
}

fn read_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

/// Verifies with the trusted key `dir/audit.pub` if there is one.
fn bad_at(dir: &Path, cp: Option<&Checkpoint>) -> Option<u64> {
    let key = fs::read(dir.join("audit.pub")).ok();
    let options = VerifyOptions {
        checkpoint: cp,
        public_key: key.as_deref(),
    };
    let report = verify_with(dir, options).unwrap();
    assert_eq!(report.ok, report.first_bad_seq.is_none());
    report.first_bad_seq
}

fn parse(line: &str) -> AuditRecord {
    serde_json::from_str(line).unwrap()
}

/// Rebuilds the chain from `lines` after `f` changed the records, as a forger would.
fn reseal(lines: &[String], f: impl Fn(&mut AuditEntry, u64)) -> Vec<String> {
    let mut prev = GENESIS_PREV.to_owned();
    lines
        .iter()
        .map(|l| {
            let r = parse(l);
            let mut e = AuditEntry {
                request_id: r.request_id,
                caller: r.caller,
                subject: r.subject,
                purpose: r.purpose,
                region: r.region,
                route: r.route,
                method: r.method,
                path: r.path,
                decision: r.decision,
                reason: r.reason,
                policy: r.policy,
                consent: r.consent,
                status: r.status,
                fields_removed: r.fields_removed,
                redactions: r.redactions,
                collection: r.collection,
            };
            f(&mut e, r.seq);
            let sealed = AuditRecord::seal(e, r.seq, r.ts, prev.clone(), None);
            prev = sealed.hash.clone();
            sealed.to_line()
        })
        .collect()
}

/// A checkpoint of `line`'s record, signed by a new key whose public half is `dir/audit.pub`.
fn checkpoint_for(dir: &Path, line: &str) -> Checkpoint {
    let (private, public) = test_keys(true);
    let key = dir.join("audit.key");
    fs::write(&key, private).unwrap();
    fs::write(dir.join("audit.pub"), public).unwrap();
    let r = parse(line);
    super::checkpoint::Signer::from_pem_file(&key)
        .unwrap()
        .checkpoint(r.seq, &r.hash, "2026-01-01T00:00:00.000Z", None)
        .unwrap()
}

#[tokio::test]
async fn chain_verifies_across_rotation_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AuditConfig {
        segment_bytes: 2000,
        ..config(dir.path())
    };
    let log = AuditLog::open(cfg.clone()).unwrap();
    let first = append_n(&log, 30).await;
    assert_eq!(first[0].seq, 1);
    assert_eq!(first[0].prev, GENESIS_PREV);
    assert_eq!(log.head_seq(), 30);
    drop(log);
    let log = AuditLog::open(cfg).unwrap();
    assert_eq!(log.recovered_torn_bytes(), 0);
    assert_eq!(log.open_problem(), None);
    let second = append_n(&log, 30).await;
    assert_eq!(second[0].seq, 31);
    assert_eq!(second[0].prev, first[29].hash);
    drop(log);
    let segs = list_segments(dir.path()).unwrap();
    assert!(segs.len() > 5, "{} segments", segs.len());
    for s in &segs {
        let lines = read_lines(&s.path);
        assert_eq!(parse(&lines[0]).seq, s.first_seq);
    }
    let report = verify(dir.path(), None).unwrap();
    assert_eq!(
        report,
        VerifyReport {
            ok: true,
            records: 60,
            first_bad_seq: None,
            reason: None,
            first_seq: 1,
            from_checkpoint: None,
            checkpoint: None,
        }
    );
}

#[tokio::test]
async fn detects_an_edited_field() {
    let dir = tempfile::tempdir().unwrap();
    let seg = single_segment_log(dir.path(), 10).await;
    let mut lines = read_lines(&seg);
    lines[4] = lines[4].replace("\"status\":200", "\"status\":404");
    write_lines(&seg, &lines);
    assert_eq!(bad_at(dir.path(), None), Some(5));
}

#[tokio::test]
async fn detects_an_edit_with_a_recomputed_hash_at_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let seg = single_segment_log(dir.path(), 10).await;
    let lines = read_lines(&seg);
    let resealed = reseal(&lines, |e, seq| {
        if seq == 5 {
            e.status = 404;
        }
    });
    let mut tampered = lines.clone();
    tampered[4] = resealed[4].clone();
    write_lines(&seg, &tampered);
    let report = verify(dir.path(), None).unwrap();
    assert_eq!(report.first_bad_seq, Some(6));
    assert_eq!(report.records, 5);
}

#[tokio::test]
async fn detects_a_deleted_line() {
    let dir = tempfile::tempdir().unwrap();
    let seg = single_segment_log(dir.path(), 10).await;
    let mut lines = read_lines(&seg);
    lines.remove(3);
    write_lines(&seg, &lines);
    assert_eq!(bad_at(dir.path(), None), Some(4));
}

#[tokio::test]
async fn detects_swapped_lines() {
    let dir = tempfile::tempdir().unwrap();
    let seg = single_segment_log(dir.path(), 10).await;
    let mut lines = read_lines(&seg);
    lines.swap(5, 6);
    write_lines(&seg, &lines);
    assert_eq!(bad_at(dir.path(), None), Some(6));
}

#[tokio::test]
async fn detects_inserted_lines() {
    let dir = tempfile::tempdir().unwrap();
    let seg = single_segment_log(dir.path(), 10).await;
    let lines = read_lines(&seg);
    // A copy with a changed field: its seq repeats at position 4.
    let mut copy = lines.clone();
    copy.insert(3, lines[2].replace("req-1", "req-x"));
    write_lines(&seg, &copy);
    assert_eq!(bad_at(dir.path(), None), Some(4));
    // A forged record that correctly continues record 3: the original 4 then breaks.
    let prev = parse(&lines[2]).hash;
    let forged = AuditRecord::seal(
        entry("mallory"),
        4,
        "2026-01-01T00:00:00.000Z".into(),
        prev,
        None,
    );
    let mut forged_log = lines.clone();
    forged_log.insert(3, forged.to_line());
    write_lines(&seg, &forged_log);
    assert_eq!(bad_at(dir.path(), None), Some(5));
}

#[tokio::test]
async fn detects_truncation_below_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let seg = single_segment_log(dir.path(), 10).await;
    let lines = read_lines(&seg);
    let cp = checkpoint_for(dir.path(), &lines[9]);
    assert_eq!(bad_at(dir.path(), Some(&cp)), None);
    write_lines(&seg, &lines[..8]);
    // The chain alone still holds; the checkpoint shows the loss.
    assert_eq!(bad_at(dir.path(), None), None);
    let report = verify(dir.path(), Some(&cp)).unwrap();
    assert_eq!(report.first_bad_seq, Some(9));
    assert_eq!(report.records, 8);
}

#[tokio::test]
async fn detects_consistently_rewritten_history_through_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let seg = single_segment_log(dir.path(), 10).await;
    let lines = read_lines(&seg);
    let cp = checkpoint_for(dir.path(), &lines[6]);
    let rewritten = reseal(&lines, |e, seq| {
        if seq == 3 {
            e.caller = Some("nobody".into());
        }
    });
    write_lines(&seg, &rewritten);
    assert_eq!(bad_at(dir.path(), None), None);
    let report = verify(dir.path(), Some(&cp)).unwrap();
    assert_eq!(report.first_bad_seq, Some(7));
    assert!(report.reason.unwrap().contains("checkpoint"));
}

#[tokio::test]
async fn detects_a_missing_segment_and_a_misnamed_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AuditConfig {
        segment_bytes: 1,
        ..config(dir.path())
    };
    let log = AuditLog::open(cfg).unwrap();
    append_n(&log, 5).await;
    drop(log);
    let seg3 = dir.path().join(segment_file_name(3));
    let moved = dir
        .path()
        .join(segment_file_name(2).replace("2.jsonl", "9.jsonl"));
    fs::rename(&seg3, &moved).unwrap();
    assert_eq!(bad_at(dir.path(), None), Some(3));
    fs::rename(&moved, &seg3).unwrap();
    // Records still in order, but a segment's name no longer matches its first record.
    fs::rename(
        dir.path().join(segment_file_name(5)),
        dir.path().join(segment_file_name(7)),
    )
    .unwrap();
    let report = verify(dir.path(), None).unwrap();
    assert_eq!(report.first_bad_seq, Some(5));
    assert!(report.reason.unwrap().contains("does not start with"));
}

#[tokio::test]
async fn torn_last_line_is_truncated_on_open_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let seg = single_segment_log(dir.path(), 5).await;
    let torn = b"{\"caller\":\"crm\",\"consent\":\"gra";
    let mut data = fs::read(&seg).unwrap();
    data.extend_from_slice(torn);
    fs::write(&seg, &data).unwrap();
    // A reader tolerates it as a record in progress.
    assert_eq!(verify(dir.path(), None).unwrap().records, 5);
    let log = AuditLog::open(config(dir.path())).unwrap();
    assert_eq!(log.recovered_torn_bytes(), torn.len() as u64);
    log.append(entry("carol")).await.unwrap();
    assert_eq!(log.head_seq(), 6);
    drop(log);
    // A whole line that is not JSON is torn too.
    let mut data = fs::read(&seg).unwrap();
    data.extend_from_slice(b"{\"seq\":7,\"ts\n");
    fs::write(&seg, &data).unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    assert_eq!(log.recovered_torn_bytes(), 13);
    log.append(entry("dave")).await.unwrap();
    assert_eq!(log.head_seq(), 7);
    drop(log);
    let report = verify(dir.path(), None).unwrap();
    assert!(report.ok);
    assert_eq!(report.records, 7);
}

#[tokio::test]
async fn a_bad_last_record_is_reported_at_open_not_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let seg = single_segment_log(dir.path(), 4).await;
    let mut lines = read_lines(&seg);
    lines[3] = lines[3].replace("\"status\":200", "\"status\":500");
    write_lines(&seg, &lines);
    let log = AuditLog::open(config(dir.path())).unwrap();
    assert!(log.open_problem().unwrap().contains("record 4"));
    log.append(entry("x")).await.unwrap();
    assert_eq!(log.head_seq(), 5);
    drop(log);
    assert_eq!(bad_at(dir.path(), None), Some(4));
    // A last line that is JSON but not a record leaves the head unknown.
    let mut lines = read_lines(&seg);
    lines.push("{\"hello\":1}".to_owned());
    write_lines(&seg, &lines);
    assert!(matches!(
        AuditLog::open(config(dir.path())),
        Err(AuditError::Corrupt { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_with_many_concurrent_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditConfig {
        segment_bytes: 256 * 1024,
        ..config(dir.path())
    })
    .unwrap();
    concurrent_appends(&log, dir.path(), 64, 100, |_| false).await;
    assert_eq!(counter(&log, "records"), 6400);
    let batches = counter(&log, "batches");
    assert!(batches < 6400, "no grouping: {batches} batches");
    drop(log);
    let report = verify(dir.path(), None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 6400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_mode_fsyncs_each_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditConfig {
        sync: SyncMode::Always,
        ..config(dir.path())
    })
    .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move { append_n(&log, 10).await }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut metrics = String::new();
    log.render_prometheus(&mut metrics);
    assert!(metrics.contains("consentgate_audit_batches_total 80\n"));
    assert!(metrics.contains("consentgate_audit_fsync_seconds_count 80\n"));
    drop(log);
    assert_eq!(verify(dir.path(), None).unwrap().records, 80);
}

/// Failure injection: with `segment_bytes = 1` every batch opens a new segment,
/// whose path the test occupies with a directory (open fails, as on EACCES/EROFS).
#[tokio::test]
async fn failed_segment_open_fails_the_batch_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditConfig {
        segment_bytes: 1,
        ..config(dir.path())
    })
    .unwrap();
    log.append(entry("a")).await.unwrap();
    assert_eq!(log.head_seq(), 1);
    let blocker = dir.path().join(segment_file_name(2));
    fs::create_dir(&blocker).unwrap();
    let err = log.append(entry("b")).await.unwrap_err();
    assert!(matches!(err, AuditError::WriteFailed(_)), "{err}");
    assert!(!log.healthy());
    assert!(log.append(entry("b")).await.is_err());
    let mut metrics = String::new();
    log.render_prometheus(&mut metrics);
    assert!(metrics.contains("consentgate_audit_write_errors_total 2\n"));
    assert!(metrics.contains("consentgate_audit_healthy 0\n"));
    fs::remove_dir(&blocker).unwrap();
    log.append(entry("c")).await.unwrap();
    assert_eq!(log.head_seq(), 2);
    assert!(log.healthy());
    drop(log);
    let report = verify(dir.path(), None).unwrap();
    assert!(report.ok);
    assert_eq!(report.records, 2);
}

/// Failure injection: the next segment is a symlink to `/dev/full`, so the write
/// itself fails with ENOSPC (and truncating a device fails, so the writer must
/// re-check the tail before the next batch).
#[tokio::test]
async fn disk_full_fails_the_batch_then_recovers() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditConfig {
        segment_bytes: 1,
        ..config(dir.path())
    })
    .unwrap();
    log.append(entry("a")).await.unwrap();
    let full = dir.path().join(segment_file_name(2));
    std::os::unix::fs::symlink("/dev/full", &full).unwrap();
    assert!(log.append(entry("b")).await.is_err());
    assert!(log.append(entry("b")).await.is_err());
    assert!(!log.healthy());
    assert_eq!(log.head_seq(), 1);
    fs::remove_file(&full).unwrap();
    log.append(entry("c")).await.unwrap();
    assert_eq!(log.head_seq(), 2);
    assert!(log.healthy());
    drop(log);
    assert_eq!(verify(dir.path(), None).unwrap().records, 2);
}

async fn query_fixture(dir: &Path) -> Vec<AuditRecord> {
    let log = AuditLog::open(AuditConfig {
        segment_bytes: 3000,
        ..config(dir)
    })
    .unwrap();
    let mut out = Vec::new();
    for i in 0..25u64 {
        let mut e = entry(if i % 3 == 0 { "alice" } else { "bob" });
        if i % 5 == 0 {
            e.decision = Decision::Deny;
            e.caller = Some("billing".into());
        }
        log.append(e).await.unwrap();
        out.push(all_records(dir).pop().unwrap());
        if i == 9 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    out
}

fn all_pages(dir: &Path, filter: &Filter) -> (Vec<u64>, usize) {
    let mut seqs = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = query(dir, filter, cursor.as_deref()).unwrap();
        pages += 1;
        assert!(!page.lines.is_empty() || pages == 1);
        seqs.extend(page.lines.iter().map(|l| parse(l).seq));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return (seqs, pages),
        }
    }
}

#[tokio::test]
async fn query_filters_and_paginates() {
    let dir = tempfile::tempdir().unwrap();
    let records = query_fixture(dir.path()).await;
    assert!(list_segments(dir.path()).unwrap().len() > 2);
    let alice: Vec<u64> = records
        .iter()
        .filter(|r| r.subject.as_deref() == Some("alice"))
        .map(|r| r.seq)
        .collect();
    assert_eq!(alice.len(), 9);
    let by_subject = Filter {
        subject: Some("alice".into()),
        limit: Some(2),
        ..Filter::default()
    };
    assert_eq!(all_pages(dir.path(), &by_subject), (alice.clone(), 5));
    // An exact multiple of the limit ends without an empty page.
    let three = Filter {
        limit: Some(3),
        ..by_subject.clone()
    };
    assert_eq!(all_pages(dir.path(), &three), (alice, 3));
    let denied = Filter {
        decision: Some(Decision::Deny),
        caller: Some("billing".into()),
        ..Filter::default()
    };
    assert_eq!(all_pages(dir.path(), &denied).0, vec![1, 6, 11, 16, 21]);
    let none = Filter {
        purpose: Some("marketing".into()),
        ..Filter::default()
    };
    assert_eq!(all_pages(dir.path(), &none), (vec![], 1));
    // Time window: [ts of 11, ts of 11 + 1 ms) holds 11 (and whatever shares its ms).
    let t11 = parse_rfc3339(&records[10].ts).unwrap();
    let window = Filter {
        from: Some(t11),
        to: Some(t11 + time::Duration::milliseconds(1)),
        ..Filter::default()
    };
    let (in_window, _) = all_pages(dir.path(), &window);
    assert!(in_window.contains(&11));
    assert!(in_window.iter().all(|&s| s >= 11));
    // Default and maximum page sizes.
    let page = query(dir.path(), &Filter::default(), None).unwrap();
    assert_eq!(page.lines.len(), 25);
    assert_eq!(page.next_cursor, None);
    let huge = Filter {
        limit: Some(1_000_000),
        ..Filter::default()
    };
    assert_eq!(query(dir.path(), &huge, None).unwrap().lines.len(), 25);
    assert!(matches!(
        query(dir.path(), &Filter::default(), Some("not-a-cursor")),
        Err(AuditError::BadCursor)
    ));
}

#[tokio::test]
async fn scan_and_export() {
    let dir = tempfile::tempdir().unwrap();
    query_fixture(dir.path()).await;
    let alice = Filter {
        subject: Some("alice".into()),
        limit: Some(1),
        ..Filter::default()
    };
    let mut seen = Vec::new();
    let n = scan(dir.path(), &alice, |_, r| {
        seen.push(r.seq);
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 9);
    assert_eq!(seen.len(), 9);

    let all = Filter::default();
    let mut jsonl = Vec::new();
    assert_eq!(
        export(dir.path(), &all, Format::Jsonl, &mut jsonl).unwrap(),
        25
    );
    let text = String::from_utf8(jsonl).unwrap();
    assert_eq!(text.lines().count(), 25);
    assert!(text.lines().all(|l| parse(l).hash.len() == 64));

    let mut csv = Vec::new();
    assert_eq!(
        export(dir.path(), &alice, Format::Csv, &mut csv).unwrap(),
        1
    );
    let text = String::from_utf8(csv).unwrap();
    let rows: Vec<&str> = text.split("\r\n").collect();
    assert!(rows[0].starts_with("seq,ts,request_id,"));
    assert!(rows[1].starts_with("1,"));
    assert!(rows[1].contains(",$.ssn,email=2,"));
    assert_eq!(rows[2], "");
}

#[tokio::test]
async fn signed_checkpoints_by_count_and_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = test_keys(true);
    let key = dir.path().join("audit.key");
    fs::write(&key, private).unwrap();
    let cfg = AuditConfig {
        checkpoint: Some(CheckpointConfig {
            key_pem_path: key,
            every_records: Some(5),
            every: None,
        }),
        ..config(&dir.path().join("log"))
    };
    let log_dir = dir.path().join("log");
    let log = AuditLog::open(cfg.clone()).unwrap();
    assert_eq!(log.latest_checkpoint(), None);
    let records = append_n(&log, 12).await;
    let cp = log.latest_checkpoint().unwrap();
    assert_eq!(cp.seq, 10);
    assert_eq!(cp.hash, records[9].hash);
    verify_checkpoint_signature(&cp, public.as_bytes()).unwrap();
    let mut metrics = String::new();
    log.render_prometheus(&mut metrics);
    assert!(metrics.contains("consentgate_audit_checkpoints_total 2\n"));
    drop(log);
    let last = read_latest_checkpoint(&log_dir).unwrap().unwrap();
    assert_eq!(last.seq, 12);
    verify_checkpoint_signature(&last, public.as_bytes()).unwrap();
    let trusted = VerifyOptions {
        checkpoint: Some(&last),
        public_key: Some(public.as_bytes()),
    };
    assert!(verify_with(&log_dir, trusted).unwrap().ok);
    // Without a trusted key the checkpoint could be forged: not ok, "unverified".
    let report = verify(&log_dir, Some(&last)).unwrap();
    assert!(!report.ok);
    assert_eq!(report.checkpoint.unwrap().signature, Signature::Unverified);
    assert!(report.reason.unwrap().contains("unverified"));
    // A forged one (another key) is invalid even though its seq and hash match.
    let (other, _) = test_keys(true);
    let other_key = dir.path().join("other.key");
    fs::write(&other_key, other).unwrap();
    let forged = super::checkpoint::Signer::from_pem_file(&other_key)
        .unwrap()
        .checkpoint(last.seq, &last.hash, &last.ts, None)
        .unwrap();
    let report = verify_with(
        &log_dir,
        VerifyOptions {
            checkpoint: Some(&forged),
            public_key: Some(public.as_bytes()),
        },
    )
    .unwrap();
    assert!(!report.ok);
    assert_eq!(report.checkpoint.unwrap().signature, Signature::Invalid);
    let file = load_checkpoint_file(&log_dir.join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(file, last);
    // Reopening knows the latest checkpoint and adds none without new records.
    let log = AuditLog::open(cfg.clone()).unwrap();
    assert_eq!(log.latest_checkpoint().unwrap().seq, 12);
    drop(log);
    let n = fs::read_to_string(log_dir.join(CHECKPOINT_FILE))
        .unwrap()
        .lines()
        .count();
    assert_eq!(n, 3);
}

#[tokio::test]
async fn signed_checkpoints_by_time_with_ed25519() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = test_keys(false);
    let key = dir.path().join("audit.key");
    fs::write(&key, private).unwrap();
    let log = AuditLog::open(AuditConfig {
        checkpoint: Some(CheckpointConfig {
            key_pem_path: key,
            every_records: None,
            every: Some(Duration::from_millis(50)),
        }),
        ..config(dir.path())
    })
    .unwrap();
    append_n(&log, 3).await;
    let mut cp = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        cp = log.latest_checkpoint();
        if cp.is_some() {
            break;
        }
    }
    let cp = cp.unwrap();
    assert_eq!((cp.seq, cp.alg.as_str()), (3, "EdDSA"));
    verify_checkpoint_signature(&cp, public.as_bytes()).unwrap();
    // No new records: no new checkpoint.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let lines = fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(lines.lines().count(), 1);
}

#[tokio::test]
async fn verify_of_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(verify(&dir.path().join("nope"), None).is_err());
    let report = verify(dir.path(), None).unwrap();
    assert!(report.ok);
    assert_eq!(report.records, 0);
}

#[tokio::test]
async fn a_byte_edit_that_parses_the_same_fails_verify_and_open() {
    let dir = tempfile::tempdir().unwrap();
    let seg = single_segment_log(dir.path(), 6).await;
    let original = read_lines(&seg);
    // Whitespace, an escaped letter, swapped keys: the same record to a parser.
    let edits = [
        original[2].replacen("\"method\":", "\"method\": ", 1),
        original[2].replacen("\"GET\"", "\"\\u0047ET\"", 1),
        original[2].replacen(
            "\"caller\":\"crm\",\"collection\":null",
            "\"collection\":null,\"caller\":\"crm\"",
            1,
        ),
    ];
    for edited in edits {
        assert_eq!(parse(&edited), parse(&original[2]));
        let mut lines = original.clone();
        lines[2] = edited;
        write_lines(&seg, &lines);
        let report = verify(dir.path(), None).unwrap();
        assert_eq!(report.first_bad_seq, Some(3), "{report:?}");
        assert!(report.reason.unwrap().contains("canonical"));
    }
    // The same kind of edit on the chain head: the log opens, but is not ready.
    let mut lines = original.clone();
    lines[5] = lines[5].replacen("\"path\":", "\"path\" :", 1);
    write_lines(&seg, &lines);
    let log = AuditLog::open(config(dir.path())).unwrap();
    assert!(log.open_problem().unwrap().contains("canonical"));
    assert!(log.healthy());
    assert!(!log.ready());
    let mut metrics = String::new();
    log.render_prometheus(&mut metrics);
    assert!(
        metrics.contains("consentgate_audit_chain_head_ok 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_dead_writer_thread_is_unhealthy_not_ready_and_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    log.append(entry("a")).await.unwrap();
    assert!(log.ready() && log.writer_alive());
    log.kill_writer();
    // The thread dies by panicking: printing a backtrace can take seconds on a loaded machine.
    for _ in 0..2000 {
        if !log.writer_alive() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!log.writer_alive());
    assert!(!log.healthy());
    assert!(!log.ready());
    assert!(matches!(
        log.append(entry("b")).await,
        Err(AuditError::Closed)
    ));
    let mut metrics = String::new();
    log.render_prometheus(&mut metrics);
    assert!(metrics.contains("consentgate_audit_writer_alive 0\n"));
    assert!(metrics.contains("consentgate_audit_healthy 0\n"));
}

#[tokio::test]
async fn lazy_appends_join_the_next_batch_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    for _ in 0..10 {
        let mut e = entry("x");
        e.subject = None;
        e.caller = None;
        e.decision = Decision::Deny;
        log.append_lazy(e).await.unwrap();
    }
    // A waiting append after them is durable only with them (tickets are in order).
    log.append(entry("y")).await.unwrap();
    assert_eq!(log.head_seq(), 11);
    assert_eq!(log.lazy_pending(), 0);
    let records = all_records(dir.path());
    assert_eq!(records.len(), 11);
    assert!(records[..10].iter().all(|r| r.subject.is_none()));
    drop(log);
    assert!(verify(dir.path(), None).unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_appends_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    let n = MAX_LAZY_PENDING * 2 + 10;
    for _ in 0..n {
        log.append_lazy(entry("x")).await.unwrap();
        assert!(log.lazy_pending() <= MAX_LAZY_PENDING);
    }
    log.append(entry("y")).await.unwrap();
    assert_eq!(log.head_seq(), n as u64 + 1);
}

#[tokio::test]
async fn retention_deletes_old_covered_segments_and_verify_starts_from_the_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = test_keys(false);
    let key = dir.path().join("audit.key");
    fs::write(&key, private).unwrap();
    let log_dir = dir.path().join("log");
    let cfg = AuditConfig {
        segment_bytes: 1,
        checkpoint: Some(CheckpointConfig {
            key_pem_path: key,
            every_records: Some(3),
            every: None,
        }),
        retention: Some(Duration::from_millis(300)),
        ..config(&log_dir)
    };
    let log = AuditLog::open(cfg.clone()).unwrap();
    append_n(&log, 6).await;
    // Young segments stay, even though checkpoints cover them.
    assert_eq!(list_segments(&log_dir).unwrap().len(), 6);
    tokio::time::sleep(Duration::from_millis(400)).await;
    append_n(&log, 3).await;
    // The checkpoint at 9 covers 1..=8, of which at least 1..=6 are old: deleted, then the
    // deletion recorded as seq 10. (Checkpoint and retention follow the batch's
    // acknowledgement on the writer thread: wait for them.)
    let mut first = 0;
    for _ in 0..500 {
        first = retained_since(&log_dir).unwrap().unwrap().0;
        if first > 1 && log.head_seq() == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!((7..=9).contains(&first), "oldest retained {first}");
    let segs: Vec<u64> = list_segments(&log_dir)
        .unwrap()
        .iter()
        .map(|s| s.first_seq)
        .collect();
    assert_eq!(segs, (first..=10).collect::<Vec<u64>>());
    let mut metrics = String::new();
    log.render_prometheus(&mut metrics);
    assert!(metrics.contains(&format!(
        "consentgate_audit_retention_deleted_segments_total {}\n",
        first - 1
    )));
    let note = all_records(&log_dir).pop().unwrap();
    assert_eq!(
        (note.seq, note.reason.as_str(), note.path),
        (10, "retention", format!("/audit/records/1-{}", first - 1))
    );
    drop(log);
    // Every deleted segment's last record has a signed checkpoint (anchors were made for
    // those without one).
    let seqs: Vec<u64> = super::checkpoint::load_all_checkpoints(&log_dir)
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    for s in (1..first).chain([9, 10]) {
        assert!(seqs.contains(&s), "{s} not in {seqs:?}");
    }
    let trusted = VerifyOptions {
        checkpoint: None,
        public_key: Some(public.as_bytes()),
    };
    let report = verify_with(&log_dir, trusted).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.first_seq, report.records), (first, 11 - first));
    assert_eq!(
        report.from_checkpoint,
        Some(CheckpointCheck {
            seq: first - 1,
            signature: Signature::Verified
        })
    );
    // Without the key, the anchor could be forged: not ok.
    let report = verify(&log_dir, None).unwrap();
    assert!(!report.ok);
    assert!(report.reason.unwrap().contains("unverified"));
    // Without its anchoring checkpoint, the retained chain cannot be trusted.
    let cp_file = log_dir.join(CHECKPOINT_FILE);
    let kept: Vec<String> = read_lines(&cp_file)
        .into_iter()
        .filter(|l| serde_json::from_str::<Checkpoint>(l).unwrap().seq != first - 1)
        .collect();
    write_lines(&cp_file, &kept);
    let report = verify_with(&log_dir, trusted).unwrap();
    assert!(!report.ok);
    assert!(report.reason.unwrap().contains("anchors"));
    // Retention without a checkpoint key is refused.
    let no_key = AuditConfig {
        checkpoint: None,
        ..cfg
    };
    assert!(matches!(AuditLog::open(no_key), Err(AuditError::Key(_))));
}

#[tokio::test]
async fn an_idle_writer_lets_the_appender_write_its_record_itself() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    for i in 0..5 {
        log.append_all_now_if_idle(&[entry(&format!("s{i}"))])
            .await
            .unwrap();
        // Written on return, before any other append.
        assert_eq!(all_records(dir.path()).len(), i + 1);
    }
    assert_eq!(counter(&log, "batches_in_caller"), 5);
    log.append(entry("queued")).await.unwrap();
    assert_eq!(counter(&log, "batches_in_caller"), 5);
    // Several records: one batch, consecutive seqs, in order.
    let many: Vec<AuditEntry> = (0..4).map(|i| entry(&format!("m{i}"))).collect();
    log.append_all_now_if_idle(&many).await.unwrap();
    log.append_all_now_if_idle(&[]).await.unwrap();
    assert_eq!(counter(&log, "batches_in_caller"), 6);
    assert_eq!(counter(&log, "batches"), 7);
    let records = all_records(dir.path());
    let tail: Vec<(u64, Option<&str>)> = records[6..]
        .iter()
        .map(|r| (r.seq, r.subject.as_deref()))
        .collect();
    assert_eq!(
        tail,
        vec![
            (7, Some("m0")),
            (8, Some("m1")),
            (9, Some("m2")),
            (10, Some("m3"))
        ]
    );
    drop(log);
    let report = verify(dir.path(), None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 10);
}

/// Appenders that write their own batch and the writer thread's batches interleave on one
/// chain: every seq once, each appender's records in its order, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_written_by_appenders_and_by_the_writer_share_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditConfig {
        segment_bytes: 64 * 1024,
        ..config(dir.path())
    })
    .unwrap();
    concurrent_appends(&log, dir.path(), 16, 50, |t| t % 2 == 0).await;
    assert!(counter(&log, "batches_in_caller") > 0);
    assert!(list_segments(dir.path()).unwrap().len() > 1, "rotated");
    drop(log);
    let report = verify(dir.path(), None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 800);
}

/// A batch the appender writes itself fails as the writer's would: an error, unhealthy,
/// nothing advanced; the next one recovers.
#[tokio::test]
async fn a_failed_batch_written_by_the_appender_is_an_error_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditConfig {
        segment_bytes: 1,
        ..config(dir.path())
    })
    .unwrap();
    log.append_all_now_if_idle(&[entry("a")]).await.unwrap();
    let blocker = dir.path().join(segment_file_name(2));
    fs::create_dir(&blocker).unwrap();
    let err = log.append_all_now_if_idle(&[entry("b")]).await.unwrap_err();
    assert!(matches!(err, AuditError::WriteFailed(_)), "{err}");
    assert!(!log.healthy());
    assert_eq!(log.head_seq(), 1);
    assert_eq!(counter(&log, "write_errors"), 1);
    fs::remove_dir(&blocker).unwrap();
    log.append_all_now_if_idle(&[entry("c")]).await.unwrap();
    assert!(log.healthy());
    assert_eq!(log.head_seq(), 2);
    assert_eq!(counter(&log, "batches_in_caller"), 2);
    drop(log);
    assert_eq!(verify(dir.path(), None).unwrap().records, 2);
}

#[tokio::test]
async fn a_dead_writer_refuses_appends_written_in_the_caller_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(config(dir.path())).unwrap();
    log.append_all_now_if_idle(&[entry("a")]).await.unwrap();
    log.kill_writer();
    for _ in 0..2000 {
        if !log.writer_alive() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(
        log.append_all_now_if_idle(&[entry("b")]).await,
        Err(AuditError::Closed)
    ));
    assert_eq!(log.head_seq(), 1);
}

/// Records an appender writes itself still count towards `every_records`: the writer thread,
/// told so, makes the checkpoint (the appender writes only its records).
#[tokio::test]
async fn checkpoints_by_count_cover_records_written_by_their_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = test_keys(true);
    let key = dir.path().join("audit.key");
    fs::write(&key, private).unwrap();
    let log = AuditLog::open(AuditConfig {
        checkpoint: Some(CheckpointConfig {
            key_pem_path: key,
            every_records: Some(3),
            every: None,
        }),
        ..config(&dir.path().join("log"))
    })
    .unwrap();
    for round in 1..=2u64 {
        // The writer is idle: each of these is written by its appender.
        for i in 0..3 {
            log.append_all_now_if_idle(&[entry(&format!("s{round}-{i}"))])
                .await
                .unwrap();
        }
        assert_eq!(counter(&log, "batches_in_caller"), 3 * round);
        // Told at once, not at its next idle probe (1 s).
        let started = std::time::Instant::now();
        while log.latest_checkpoint().map(|c| c.seq) != Some(3 * round) {
            assert!(
                started.elapsed() < Duration::from_millis(900),
                "no checkpoint at {}: {:?}",
                3 * round,
                log.latest_checkpoint()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let cp = log.latest_checkpoint().unwrap();
    verify_checkpoint_signature(&cp, public.as_bytes()).unwrap();
    assert_eq!(counter(&log, "checkpoints"), 2);
}
