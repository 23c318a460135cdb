use std::io::Write;

use super::*;

fn payloads(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range
        .map(|i| format!("event {i} {}", "x".repeat(200)).into_bytes())
        .collect()
}

fn append(appender: &mut Appender, records: &[Vec<u8>]) -> u64 {
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    appender.append(&refs).unwrap()
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

/// The offsets `read(from, to)` gives back.
fn offsets(log: &Opened, from: u64, to: u64) -> Vec<u64> {
    let got = log.segments.read(from, to, 10_000).unwrap();
    got.iter().map(|r| r.0).collect()
}

/// The bytes the records of [`payloads`] in `range` take.
fn records_len(range: std::ops::Range<u64>) -> u64 {
    payloads(range)
        .iter()
        .map(|p| (HEADER + p.len()) as u64)
        .sum()
}

/// The bytes one record of [`payloads`] takes.
fn record_len() -> usize {
    HEADER + payloads(0..1)[0].len()
}

/// Changes segment 0 on disk as `damage` says; the bytes it holds then.
fn damage_segment(dir: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let segment = segment_path(dir, 0);
    let mut bytes = std::fs::read(&segment).unwrap();
    damage(&mut bytes);
    std::fs::write(&segment, &bytes).unwrap();
    bytes
}

#[test]
fn records_read_back_in_order_across_segments_and_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let all = payloads(0..500);
    {
        let mut log = open_with(dir.path(), 4096).unwrap();
        for group in all.chunks(7) {
            append(&mut log.appender, group);
        }
        assert_eq!(log.appender.next(), 500);
        assert!(segment_count(dir.path()) > 10, "small segments rolled");
        // Any window, from any offset, in chunks.
        let got = log.segments.read(123, 400, 50).unwrap();
        assert_eq!(got.len(), 50);
        assert_eq!(got[0], (123, all[123].clone()));
        assert_eq!(got[49].0, 172);
        let got = log.segments.read(390, 400, 1000).unwrap();
        let offsets: Vec<u64> = got.iter().map(|r| r.0).collect();
        assert_eq!(offsets, (390..400).collect::<Vec<_>>(), "stops below `to`");
    }
    let mut log = open_with(dir.path(), 4096).unwrap();
    assert_eq!(log.appender.next(), 500, "the next offset survives");
    assert_eq!(append(&mut log.appender, &payloads(500..501)), 500);
    let got = log.segments.read(0, 501, 10_000).unwrap();
    assert_eq!(got.len(), 501);
    for (i, (offset, payload)) in got.iter().enumerate() {
        assert_eq!(*offset, i as u64);
        assert_eq!(payload, &payloads(i as u64..i as u64 + 1)[0]);
    }
}

/// A group cut short by a crash was never acknowledged: it is cut off at
/// open, and the next append takes its offsets.
#[test]
fn an_append_cut_short_is_cut_off_the_end_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path()).unwrap();
        append(&mut log.appender, &payloads(0..3));
    }
    let segment = segment_path(dir.path(), 0);
    let whole = std::fs::metadata(&segment).unwrap().len();
    // Half of a fourth record: a header and a few payload bytes.
    let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&[1, 2, 3, 4]).unwrap();
    f.write_all(&3u64.to_le_bytes()).unwrap();
    f.write_all(b"partial").unwrap();
    drop(f);

    let mut log = open(dir.path()).unwrap();
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), whole);
    assert_eq!(log.appender.next(), 3);
    append(&mut log.appender, &[b"fourth".to_vec()]);
    let got = log.segments.read(0, 10, 100).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[3], (3, b"fourth".to_vec()));
}

/// A record whose bytes changed on disk is not handed over as an event;
/// the records after it still are, and reopening cuts none of them.
#[test]
fn a_damaged_record_is_skipped_and_the_records_after_it_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = {
        let mut log = open(dir.path()).unwrap();
        // Three writes of one record each.
        for p in payloads(0..3) {
            append(&mut log.appender, &[p]);
        }
        log
    };
    damage_segment(dir.path(), |bytes| bytes[record_len() + HEADER + 3] ^= 0xff);
    assert_eq!(
        offsets(&log, 0, 10),
        [0, 2],
        "only the damaged record is skipped"
    );
    drop(log);
    let mut log = open(dir.path()).unwrap();
    assert_eq!(log.appender.next(), 3, "nothing after the damage was cut");
    append(&mut log.appender, &payloads(3..4));
    assert_eq!(offsets(&log, 0, 10), [0, 2, 3]);
}

/// Bytes past what the writer synced (a write in progress) are not read,
/// even when they form a whole record.
#[test]
fn readers_stop_at_what_the_writer_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append(&mut log.appender, &payloads(0..2));
    // Right after the synced records, in the room.
    let end = records_len(0..2);
    write_at(
        segment_path(dir.path(), 0),
        &record_bytes(2, 0, b"not yet acknowledged", true),
        end,
    );
    let got = log.segments.read(0, u64::MAX, 100).unwrap();
    assert_eq!(got.len(), 2);
}

/// A whole record's bytes.
fn record_bytes(offset: u64, index: u32, payload: &[u8], end_of_group: bool) -> Vec<u8> {
    let mut word = payload.len() as u32;
    if end_of_group {
        word |= END_OF_GROUP;
    }
    let mut b = Vec::new();
    b.extend_from_slice(&word.to_le_bytes());
    b.extend_from_slice(&crc(word, offset, index, payload).to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    b.extend_from_slice(&index.to_le_bytes());
    b.extend_from_slice(payload);
    b
}

/// Writes a whole record straight onto the end of segment 0, as a write
/// in progress.
fn raw_record(dir: &Path, offset: u64, index: u32, payload: &[u8], end_of_group: bool) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(segment_path(dir, 0))
        .unwrap();
    f.write_all(&record_bytes(offset, index, payload, end_of_group))
        .unwrap();
}

/// A copy of the log's files as a crash would leave them (taken while
/// the writer is still running).
fn crash_image(dir: &Path) -> tempfile::TempDir {
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), image.path().join(entry.file_name())).unwrap();
    }
    image
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Writes `bytes` into the file at `path` at byte `at`, as a disk might
/// have left them.
fn write_at(path: impl AsRef<Path>, bytes: &[u8], at: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(bytes, at)
        .unwrap();
}

/// The segment being written is zero-filled ahead of its records; a
/// crash leaves that room behind, and reopening reads it as the clean
/// end: every record, nothing cut aside as damage, appends going on where
/// the records end.
#[test]
fn the_zero_filled_room_a_crash_leaves_is_the_clean_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append(&mut log.appender, &payloads(0..3));
    append(&mut log.appender, &payloads(3..5));
    let records = 5 * record_len() as u64;
    let segment = segment_path(dir.path(), 0);
    assert_eq!(file_len(&segment), ROOM_BYTES, "zero-filled ahead");
    let image = crash_image(dir.path());
    drop(log);
    assert_eq!(
        file_len(&segment),
        records,
        "the room is cut off at shutdown"
    );

    let mut log = open(image.path()).unwrap();
    let segment = segment_path(image.path(), 0);
    assert!(
        !segment.with_extension("cut").exists(),
        "nothing was damage"
    );
    assert_eq!(file_len(&segment), records, "the room is cut off at open");
    assert_eq!(log.appender.next(), 5);
    append(&mut log.appender, &payloads(5..6));
    let got = log.segments.read(0, 10, 100).unwrap();
    let want: Vec<Record> = payloads(0..6)
        .into_iter()
        .enumerate()
        .map(|(i, p)| (i as u64, p))
        .collect();
    assert_eq!(got, want);
}

/// Zeros too few for a record's header (a zero-fill a full disk cut
/// short) lose nothing and leave nothing aside: cut off at open like the
/// rest of the room.
#[test]
fn a_few_zeros_at_the_end_are_the_clean_end() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path()).unwrap();
        append(&mut log.appender, &payloads(0..3));
    }
    let segment = segment_path(dir.path(), 0);
    let records = file_len(&segment);
    write_at(&segment, &[0; 7], records);
    let log = open(dir.path()).unwrap();
    assert!(
        !segment.with_extension("cut").exists(),
        "nothing was damage"
    );
    assert_eq!(file_len(&segment), records);
    assert_eq!(log.appender.next(), 3);
    assert_eq!(offsets(&log, 0, 10), [0, 1, 2]);
}

/// A write a crash cut short inside the zero-filled room (its first block
/// never reached the disk, a later one did) is cut whole at open, and the
/// room is filled anew: its leftovers never come back behind later writes.
#[test]
fn a_write_cut_short_in_the_zero_filled_room_never_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    append(&mut log.appender, &payloads(0..2));
    let image = crash_image(dir.path());
    drop(log);
    // The write of offsets 2 and 3: only its second record, a block on,
    // reached the disk.
    let end = 2 * record_len() as u64;
    let segment = segment_path(image.path(), 0);
    let stale = record_bytes(3, 1, b"never acknowledged", true);
    write_at(&segment, &stale, end + 4096);

    let mut log = open(image.path()).unwrap();
    assert_eq!(log.appender.next(), 2, "the write is gone");
    assert_eq!(file_len(&segment), end);
    assert_eq!(
        std::fs::read(segment.with_extension("cut")).unwrap(),
        [vec![0; 4096], stale].concat(),
        "its bytes are kept aside, without the zeros after them"
    );
    // A short write where it was, then a restart.
    append(&mut log.appender, &[b"short".to_vec()]);
    drop(log);
    let log = open(image.path()).unwrap();
    assert_eq!(offsets(&log, 0, 10), [0, 1, 2]);
    assert_eq!(log.appender.next(), 3);
}

/// A closed segment ends at its records (readers read it to its length);
/// one a crash left with its room is cut at open and reads the same.
#[test]
fn closed_segments_end_at_their_records() {
    let dir = tempfile::tempdir().unwrap();
    // A size that is not a multiple of a block.
    let size = 4000;
    let mut log = open_with(dir.path(), size).unwrap();
    for group in payloads(0..100).chunks(3) {
        append(&mut log.appender, group);
        let a = &log.appender;
        let file = file_len(&segment_path(dir.path(), a.base));
        assert!(
            file <= size.max(a.len),
            "no room past the segment's size: {file} bytes for {} of records",
            a.len
        );
    }
    let bases: Vec<u64> = lock(&log.segments.bases).iter().copied().collect();
    assert!(bases.len() > 3);
    for w in bases.windows(2) {
        let len = file_len(&segment_path(dir.path(), w[0]));
        let records = records_len(w[0]..w[1]);
        assert_eq!(len, records, "segment {} holds its records only", w[0]);
    }
    let image = crash_image(dir.path());
    drop(log);
    // As if the crash came between closing segment 0 and cutting its room.
    let first = segment_path(image.path(), 0);
    let len = file_len(&first);
    write_at(&first, &[0; 5000], len);

    let log = open_with(image.path(), size).unwrap();
    assert_eq!(file_len(&first), len, "cut at open");
    assert!(!first.with_extension("cut").exists());
    assert_eq!(offsets(&log, 0, 1000), (0..100).collect::<Vec<_>>());
}

/// A crash in the middle of a write may leave later records of it on
/// disk without earlier ones (or without its last): the whole write is
/// cut at open, so none of it is delivered ahead of the rest.
#[test]
fn a_write_a_crash_cut_short_is_cut_whole_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path()).unwrap();
        append(&mut log.appender, &payloads(0..2));
        append(&mut log.appender, &payloads(2..5));
    }
    // The disk kept the write's last two records but not its first.
    let one = record_len();
    let bytes = damage_segment(dir.path(), |bytes| bytes[2 * one..3 * one].fill(0));
    let segment = segment_path(dir.path(), 0);
    let mut log = open(dir.path()).unwrap();
    assert_eq!(log.appender.next(), 2, "the whole write is gone");
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), 2 * one as u64);
    let aside = std::fs::read(segment.with_extension("cut")).unwrap();
    assert_eq!(aside, bytes[2 * one..], "the cut bytes are kept aside");
    append(&mut log.appender, &payloads(2..3));
    assert_eq!(offsets(&log, 0, 10), [0, 1, 2]);
    drop(log);

    // Whole records of a write whose last never reached the disk.
    raw_record(dir.path(), 3, 0, b"first of a write", false);
    raw_record(dir.path(), 4, 1, b"second of it", false);
    let log = open(dir.path()).unwrap();
    assert_eq!(log.appender.next(), 3);
    assert_eq!(log.segments.read(0, 10, 100).unwrap().len(), 3);
}

#[test]
fn a_record_over_the_limit_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path()).unwrap();
    let big = vec![b'x'; MAX_RECORD + 1];
    let err = log.appender.append(&[b"small", &big]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(log.appender.next(), 0);
    assert_eq!(append(&mut log.appender, &payloads(0..1)), 0);
    assert_eq!(log.segments.read(0, 10, 10).unwrap().len(), 1);
}

#[test]
fn the_resume_offset_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path()).unwrap();
        append(&mut log.appender, &payloads(0..10));
        log.appender.commit(8, false).unwrap();
        log.appender.commit(5, true).unwrap();
    }
    assert_eq!(open(dir.path()).unwrap().committed, 8);
}

#[test]
fn committing_deletes_only_segments_wholly_below_the_resume_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_with(dir.path(), 1024).unwrap();
    for group in payloads(0..40).chunks(4) {
        append(&mut log.appender, group);
    }
    let before = segment_count(dir.path());
    assert!(before >= 5, "{before} segments");
    log.appender.commit(21, true).unwrap();
    let after = segment_count(dir.path());
    assert!(after < before, "consumed segments deleted");
    assert_eq!(
        offsets(&log, 21, 40),
        (21..40).collect::<Vec<_>>(),
        "nothing at or past 21 lost"
    );
    // Everything consumed: only the segment being written stays.
    log.appender.commit(40, true).unwrap();
    assert_eq!(segment_count(dir.path()), 1);
    drop(log);
    let mut log = open_with(dir.path(), 1024).unwrap();
    assert_eq!(log.committed, 40);
    assert_eq!(log.appender.next(), 40);
    assert_eq!(append(&mut log.appender, &payloads(40..41)), 40);
}

#[test]
fn an_unreadable_resume_offset_replays_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path()).unwrap();
        append(&mut log.appender, &payloads(0..5));
        log.appender.commit(3, true).unwrap();
    }
    assert_eq!(open(dir.path()).unwrap().committed, 3);
    // A torn write of the resume offset.
    let path = dir.path().join("committed");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] = 9;
    std::fs::write(&path, bytes).unwrap();
    let log = open(dir.path()).unwrap();
    assert_eq!(log.committed, 0);
    assert_eq!(log.appender.next(), 5);
    assert_eq!(log.segments.read(0, 5, 100).unwrap().len(), 5);
}

#[test]
fn a_log_in_use_is_not_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).unwrap();
    let err = open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(first);
    assert!(open(dir.path()).is_ok(), "free once the first is closed");
}

/// A cut at open leaves no read position pointing into what was cut: the
/// records appended after it are read (the resume offset was past the cut
/// write, which had been consumed).
#[test]
fn records_appended_after_a_cut_are_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path()).unwrap();
        append(&mut log.appender, &payloads(0..100));
        log.appender.commit(100, true).unwrap();
    }
    damage_segment(dir.path(), |bytes| {
        bytes[70 * record_len() + HEADER + 1] ^= 0xff;
    });
    let mut log = open(dir.path()).unwrap();
    assert_eq!(log.appender.next(), 100);
    append(&mut log.appender, &payloads(100..103));
    assert_eq!(offsets(&log, 100, 200), [100, 101, 102]);
}

/// A crash cut the last write short and garbled the end of the write
/// before it (a block both shared): the earlier write's undamaged records
/// stay; only the last write goes.
#[test]
fn only_the_last_write_is_cut_when_the_one_before_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path()).unwrap();
        append(&mut log.appender, &payloads(0..2));
        append(&mut log.appender, &payloads(2..4));
        append(&mut log.appender, &payloads(4..7));
    }
    let one = record_len();
    damage_segment(dir.path(), |bytes| {
        bytes[3 * one + HEADER + 1] ^= 0xff;
        bytes[4 * one..5 * one].fill(0);
    });
    let log = open(dir.path()).unwrap();
    assert_eq!(log.appender.next(), 3);
    assert_eq!(offsets(&log, 0, 10), [0, 1, 2]);
}
