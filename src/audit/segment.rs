//! Segment files: naming, listing, streaming lines, and reading a segment's tail.
//!
//! A segment is `<dir>/<20-digit seq of its first record>.jsonl`. Only regular files
//! with exactly that name shape are segments (symlinks and directories are ignored).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::error::AuditError;

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The seq in its name (the seq of its first record).
    pub(crate) first_seq: u64,
    /// Its path.
    pub(crate) path: PathBuf,
}

/// The file name of the segment whose first record is `seq`.
pub(crate) fn segment_file_name(seq: u64) -> String {
    format!("{seq:020}.jsonl")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".jsonl")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lists the segments of `dir`, oldest first. A missing directory has none.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<Segment>, AuditError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuditError::io(dir, e)),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io(dir, e))?;
        let Some(first_seq) = entry.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        let is_file = entry
            .file_type()
            .map_err(|e| AuditError::io(entry.path(), e))?
            .is_file();
        if is_file {
            segments.push(Segment {
                first_seq,
                path: entry.path(),
            });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// One line met while streaming segments.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    /// The line without its trailing newline.
    pub(crate) bytes: &'a [u8],
    /// False when the line has no trailing newline (torn, or being written).
    pub(crate) complete: bool,
    /// True for the first line of a segment.
    pub(crate) first_in_segment: bool,
    /// True when the line is in the last segment listed.
    pub(crate) in_last_segment: bool,
    /// The segment it is in.
    pub(crate) segment: &'a Segment,
}

/// Streams every line of `segments` in order, one at a time, until `f` breaks.
pub(crate) fn stream_lines<B>(
    segments: &[Segment],
    mut f: impl FnMut(&Line<'_>) -> Result<ControlFlow<B>, AuditError>,
) -> Result<Option<B>, AuditError> {
    let mut buf = Vec::with_capacity(1024);
    for (i, segment) in segments.iter().enumerate() {
        let file = File::open(&segment.path).map_err(|e| AuditError::io(&segment.path, e))?;
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut first = true;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| AuditError::io(&segment.path, e))?;
            if n == 0 {
                break;
            }
            let complete = buf.last() == Some(&b'\n');
            let bytes = if complete {
                buf.get(..buf.len() - 1).unwrap_or_default()
            } else {
                &buf[..]
            };
            let line = Line {
                bytes,
                complete,
                first_in_segment: first,
                in_last_segment: i + 1 == segments.len(),
                segment,
            };
            first = false;
            if let ControlFlow::Break(b) = f(&line)? {
                return Ok(Some(b));
            }
        }
    }
    Ok(None)
}

/// The segments that can hold records with seq ≥ `seq`: from the last one whose
/// name is ≤ `seq` on.
pub(crate) fn segments_from(segments: &[Segment], seq: u64) -> &[Segment] {
    let start = segments
        .iter()
        .rposition(|s| s.first_seq <= seq)
        .unwrap_or(0);
    segments.get(start..).unwrap_or_default()
}

const TAIL_BLOCK: u64 = 8 * 1024;

/// Where the line ending at `end` (exclusive; `end` is just past its newline, if any)
/// starts: just after the previous newline, or 0.
pub(crate) fn line_start(file: &mut File, end: u64) -> io::Result<u64> {
    // The byte at end-1 is the line's own newline (or its last byte): search before it.
    let mut search_end = end.saturating_sub(1);
    let mut block = Vec::new();
    while search_end > 0 {
        let start = search_end.saturating_sub(TAIL_BLOCK);
        let len = usize::try_from(search_end - start).unwrap_or(0);
        block.resize(len, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        if let Some(pos) = block.iter().rposition(|&b| b == b'\n') {
            return Ok(start + pos as u64 + 1);
        }
        search_end = start;
    }
    Ok(0)
}

/// Reads bytes `[start, end)` of `file`.
pub(crate) fn read_range(file: &mut File, start: u64, end: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(end.saturating_sub(start))
        .map_err(|_| io::Error::other("line too long"))?;
    let mut buf = vec![0; len];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

/// The last byte of `file` (of length `len > 0`).
pub(crate) fn last_byte(file: &mut File, len: u64) -> io::Result<u8> {
    let mut b = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut b)?;
    Ok(b[0])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(segment_file_name(12), "00000000000000000012.jsonl");
        for seq in [12u64, 1, 5] {
            File::create(dir.path().join(segment_file_name(seq))).unwrap();
        }
        std::fs::create_dir(dir.path().join(segment_file_name(20))).unwrap();
        File::create(dir.path().join("checkpoints.jsonl")).unwrap();
        File::create(dir.path().join("123.jsonl")).unwrap();
        let segs = list_segments(dir.path()).unwrap();
        let firsts: Vec<u64> = segs.iter().map(|s| s.first_seq).collect();
        assert_eq!(firsts, vec![1, 5, 12]);
        let from: Vec<u64> = segments_from(&segs, 7)
            .iter()
            .map(|s| s.first_seq)
            .collect();
        assert_eq!(from, vec![5, 12]);
        assert_eq!(segments_from(&segs, 0).len(), 3);
        assert!(
            list_segments(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn line_start_finds_previous_newline_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let long = "x".repeat(20_000);
        let mut f = File::create(&path).unwrap();
        write!(f, "a\n{long}\nbc").unwrap();
        drop(f);
        let mut f = File::open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let start = line_start(&mut f, len).unwrap();
        assert_eq!(read_range(&mut f, start, len).unwrap(), b"bc");
        let start2 = line_start(&mut f, start).unwrap();
        assert_eq!(start2, 2);
        assert_eq!(line_start(&mut f, start2).unwrap(), 0);
        assert_eq!(last_byte(&mut f, len).unwrap(), b'c');
    }
}
