//! Reading a backfill file, CSV or JSON lines, row by row: each row's
//! fields as text with its line number, or why the line cannot be read.

use std::io::{BufRead, BufReader, Read};

use super::{reject, BackfillError, RawRow, Rejection, COLUMNS};
use crate::json::{ObjectError, SentObject};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    /// `text/csv`; `application/x-ndjson`, `application/jsonl` (and the
    /// common `application/json-lines`, `application/ndjson`).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/csv" => Some(Format::Csv),
            "application/x-ndjson"
            | "application/jsonl"
            | "application/json-lines"
            | "application/ndjson"
            | "application/x-jsonlines" => Some(Format::JsonLines),
            _ => None,
        }
    }

    /// From a file name: `.csv`, or `.jsonl` / `.ndjson`.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// Yields `(line, row or rejection)` and how many bytes have been read.
pub trait RowSource {
    fn next_row(&mut self) -> Option<(u64, Result<RawRow, Rejection>)>;
    fn bytes_read(&self) -> u64;
}

/// Turns `\r\n` and a lone `\r` into `\n` as the bytes stream by, and ends
/// the last line with one, so the CSV reader counts lines the way an editor
/// shows them whatever the file mixes; also counts the bytes read, for
/// progress.
pub struct UnifyLineEnds<R: Read> {
    inner: R,
    after_cr: bool,
    /// The last byte handed out; `None` before the first and after the end.
    last: Option<u8>,
    raw_bytes: u64,
}

impl<R: Read> UnifyLineEnds<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            after_cr: false,
            last: None,
            raw_bytes: 0,
        }
    }
}

impl<R: Read> Read for UnifyLineEnds<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Ok(match self.last.take() {
                    Some(b) if b != b'\n' => {
                        buf[0] = b'\n';
                        1
                    }
                    _ => 0,
                });
            }
            self.raw_bytes += n as u64;
            let mut out = 0;
            for i in 0..n {
                let b = buf[i];
                if self.after_cr && b == b'\n' {
                    self.after_cr = false;
                    continue;
                }
                self.after_cr = b == b'\r';
                buf[out] = if b == b'\r' { b'\n' } else { b };
                out += 1;
            }
            // A read of only the `\n` of a `\r\n` yields nothing; 0 would mean EOF.
            if out > 0 {
                self.last = Some(buf[out - 1]);
                return Ok(out);
            }
        }
    }
}

/// CSV with a header line naming the columns (any order; `comment` may be
/// left out). A UTF-8 BOM is skipped; `\n`, `\r\n` and `\r` all end lines.
pub struct CsvRows<R: Read> {
    reader: csv::Reader<UnifyLineEnds<R>>,
    /// Column index of each of [`COLUMNS`].
    index: [Option<usize>; 6],
    width: usize,
    record: csv::ByteRecord,
}

impl<R: Read> CsvRows<R> {
    pub fn new(input: R) -> Result<Self, BackfillError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(UnifyLineEnds::new(input));
        let mut header = csv::ByteRecord::new();
        let read = reader.read_byte_record(&mut header).map_err(|e| {
            BackfillError::InvalidHeader(format!("line 1 cannot be read as CSV: {e}"))
        })?;
        if !read {
            return Err(BackfillError::InvalidHeader(format!(
                "the file is empty; the first line must be the header {}",
                COLUMNS.join(",")
            )));
        }
        let mut index = [None; 6];
        for (i, field) in header.iter().enumerate() {
            let name = std::str::from_utf8(field)
                .map_err(|_| BackfillError::InvalidHeader("the header is not UTF-8".into()))?;
            let name = name
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let Some(col) = COLUMNS.iter().position(|c| *c == name) else {
                return Err(BackfillError::InvalidHeader(format!(
                    "unknown column {name:?} in the header; the columns are {}",
                    COLUMNS.join(",")
                )));
            };
            if index[col].replace(i).is_some() {
                return Err(BackfillError::InvalidHeader(format!(
                    "column {name:?} appears twice in the header"
                )));
            }
        }
        let missing: Vec<&str> = COLUMNS[..5]
            .iter()
            .zip(&index)
            .filter(|(_, i)| i.is_none())
            .map(|(c, _)| *c)
            .collect();
        if !missing.is_empty() {
            return Err(BackfillError::InvalidHeader(format!(
                "the header lacks {}; the first line must be {}",
                missing.join(", "),
                COLUMNS.join(",")
            )));
        }
        Ok(Self {
            reader,
            index,
            width: header.len(),
            record: csv::ByteRecord::new(),
        })
    }

    fn field(&self, line: u64, col: usize) -> Result<Option<String>, Rejection> {
        let Some(i) = self.index[col] else {
            return Ok(None);
        };
        let bytes = self.record.get(i).unwrap_or_default();
        std::str::from_utf8(bytes)
            .map(|s| Some(s.to_string()))
            .map_err(|_| {
                reject(
                    line,
                    "csv_error",
                    format!("{} is not valid UTF-8", COLUMNS[col]),
                )
            })
    }
}

impl<R: Read> RowSource for CsvRows<R> {
    fn next_row(&mut self) -> Option<(u64, Result<RawRow, Rejection>)> {
        let mut record = std::mem::take(&mut self.record);
        let read = self.reader.read_byte_record(&mut record);
        self.record = record;
        match read {
            Ok(false) => None,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                // An IO error ends the file; a malformed record is one rejection.
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Some((
                        line,
                        Err(reject(
                            line,
                            "csv_error",
                            format!("the file could not be read further: {e}"),
                        )),
                    ));
                }
                Some((line, Err(reject(line, "csv_error", e.to_string()))))
            }
            Ok(true) => {
                // The reader dates a record from before the blank lines that
                // precede it; its end, less the lines inside it, is exact
                // (every record ends with a line break, see UnifyLineEnds).
                let start = self.record.position().map_or(0, |p| p.line());
                let inside: u64 = self
                    .record
                    .iter()
                    .map(|f| f.iter().filter(|b| **b == b'\n').count() as u64)
                    .sum();
                let end = self.reader.position().line();
                let line = start.max(end.saturating_sub(inside + 1));
                if self.record.len() != self.width {
                    return Some((
                        line,
                        Err(reject(
                            line,
                            "csv_error",
                            format!(
                                "the line has {} fields but the header has {} (check quoting and commas)",
                                self.record.len(),
                                self.width
                            ),
                        )),
                    ));
                }
                let row = (|| {
                    Ok(RawRow {
                        line_item_id: self.field(line, 0)?.unwrap_or_default(),
                        user_id: self.field(line, 1)?.unwrap_or_default(),
                        score_given: self.field(line, 2)?.unwrap_or_default(),
                        score_maximum: self.field(line, 3)?.unwrap_or_default(),
                        timestamp: self.field(line, 4)?.unwrap_or_default(),
                        comment: self.field(line, 5)?,
                    })
                })();
                Some((line, row))
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.reader.get_ref().raw_bytes
    }
}

/// One JSON object per line with the [`COLUMNS`] as keys; numbers may be
/// JSON numbers or strings. Blank lines are skipped (and counted).
pub struct JsonLines<R: Read> {
    reader: BufReader<R>,
    line: u64,
    bytes: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: Read> JsonLines<R> {
    pub fn new(input: R) -> Self {
        Self {
            reader: BufReader::new(input),
            line: 0,
            bytes: 0,
            buf: Vec::new(),
            done: false,
        }
    }
}

fn json_text(obj: &SentObject, key: &str) -> Option<String> {
    match obj.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        // A number's own digits, as sent: serde_json's reading of it went
        // through a binary float.
        serde_json::Value::Number(_) => obj.text(key).map(str::to_string),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl<R: Read> RowSource for JsonLines<R> {
    fn next_row(&mut self) -> Option<(u64, Result<RawRow, Rejection>)> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            let n = match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    self.line += 1;
                    return Some((
                        self.line,
                        Err(reject(
                            self.line,
                            "invalid_json",
                            format!("the file could not be read further: {e}"),
                        )),
                    ));
                }
            };
            self.bytes += n as u64;
            self.line += 1;
            let line = self.line;
            let mut bytes: &[u8] = &self.buf;
            if line == 1 {
                bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
            }
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Some((
                    line,
                    Err(reject(line, "invalid_json", "the line is not valid UTF-8")),
                ));
            };
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let obj = match SentObject::from_slice(text.as_bytes()) {
                Ok(o) => o,
                Err(ObjectError::NotAnObject) => {
                    return Some((
                        line,
                        Err(reject(
                            line,
                            "invalid_json",
                            "each line must be one JSON object",
                        )),
                    ))
                }
                Err(ObjectError::Json(e)) => {
                    return Some((
                        line,
                        Err(reject(
                            line,
                            "invalid_json",
                            format!("the line is not valid JSON: {e}"),
                        )),
                    ))
                }
            };
            if let Some(k) = obj.values().keys().find(|k| !COLUMNS.contains(&k.as_str())) {
                return Some((
                    line,
                    Err(reject(
                        line,
                        "invalid_json",
                        format!("unknown key {k:?}; the keys are {}", COLUMNS.join(", ")),
                    )),
                ));
            }
            let row = RawRow {
                line_item_id: json_text(&obj, "line_item_id").unwrap_or_default(),
                user_id: json_text(&obj, "user_id").unwrap_or_default(),
                score_given: json_text(&obj, "score_given").unwrap_or_default(),
                score_maximum: json_text(&obj, "score_maximum").unwrap_or_default(),
                timestamp: json_text(&obj, "timestamp").unwrap_or_default(),
                comment: json_text(&obj, "comment"),
            };
            return Some((line, Ok(row)));
        }
    }

    fn bytes_read(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(src: &mut dyn RowSource) -> Vec<(u64, Result<RawRow, Rejection>)> {
        std::iter::from_fn(|| src.next_row()).collect()
    }

    #[test]
    fn csv_with_a_bom_and_mixed_line_endings_reads_every_row_with_its_line() {
        let text = "\u{feff}line_item_id,user_id,score_given,score_maximum,timestamp,comment\r\nhw1,ada,9,10,2026-09-10T10:00:00Z,\nhw2,ada,\"8.5\",10,2026-09-17T10:00:00Z,\"late, but fine\"\r\n";
        let mut src = CsvRows::new(text.as_bytes()).unwrap();
        let got = rows(&mut src);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 2);
        assert_eq!(got[1].0, 3);
        let second = got[1].1.clone().unwrap();
        assert_eq!(second.score_given, "8.5");
        assert_eq!(second.comment.as_deref(), Some("late, but fine"));
        assert_eq!(src.bytes_read(), text.len() as u64);
    }

    #[test]
    fn csv_line_numbers_count_blank_lines_and_lone_carriage_returns() {
        let text = "line_item_id,user_id,score_given,score_maximum,timestamp,comment\r\rhw1,ada,9,10,2026-09-10T10:00:00Z,\"two\nlines\"\n\nhw2,ada,9,10,2026-09-10T10:00:00Z,\r\n";
        let mut src = CsvRows::new(text.as_bytes()).unwrap();
        let got = rows(&mut src);
        let lines: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(lines, vec![3, 6]);
    }

    #[test]
    fn csv_columns_may_come_in_any_order_and_comment_may_be_left_out() {
        let text = "user_id,line_item_id,timestamp,score_maximum,score_given\nada,hw1,2026-09-10T10:00:00Z,10,9\n";
        let mut src = CsvRows::new(text.as_bytes()).unwrap();
        let row = rows(&mut src).remove(0).1.unwrap();
        assert_eq!(row.line_item_id, "hw1");
        assert_eq!(row.user_id, "ada");
        assert_eq!(row.score_given, "9");
        assert_eq!(row.comment, None);
    }

    #[test]
    fn a_csv_line_with_the_wrong_number_of_fields_is_rejected_with_its_line() {
        let text = "line_item_id,user_id,score_given,score_maximum,timestamp,comment\nhw1,ada,9,10\nhw1,ada,9,10,2026-09-10T10:00:00Z,\n";
        let mut src = CsvRows::new(text.as_bytes()).unwrap();
        let got = rows(&mut src);
        let bad = got[0].1.clone().unwrap_err();
        assert_eq!((bad.line, bad.reason), (2, "csv_error"));
        assert!(got[1].1.is_ok());
    }

    #[test]
    fn a_csv_without_its_header_is_refused_whole() {
        for text in [
            "",
            "hw1,ada,9,10,2026-09-10T10:00:00Z,\n",
            "line_item_id,user_id\n",
        ] {
            assert!(
                matches!(
                    CsvRows::new(text.as_bytes()),
                    Err(BackfillError::InvalidHeader(_))
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn json_lines_take_numbers_or_strings_and_count_blank_lines() {
        let text = "{\"line_item_id\":\"hw1\",\"user_id\":\"ada\",\"score_given\":9.5,\"score_maximum\":\"10\",\"timestamp\":\"2026-09-10T10:00:00Z\"}\n\n[1]\n{bad\n";
        let mut src = JsonLines::new(text.as_bytes());
        let got = rows(&mut src);
        assert_eq!(got.len(), 3);
        let first = got[0].1.clone().unwrap();
        assert_eq!(first.score_given, "9.5");
        assert_eq!(first.score_maximum, "10");
        assert_eq!(got[1].0, 3);
        assert_eq!(got[1].1.clone().unwrap_err().reason, "invalid_json");
        assert_eq!(got[2].0, 4);
    }

    #[test]
    fn json_lines_numbers_keep_the_digits_sent() {
        let text = "{\"score_given\":0.19999999999999998,\"score_maximum\":1.0000000000000002e-05,\"user_id\":12345678901234567890123}\n";
        let row = rows(&mut JsonLines::new(text.as_bytes()))
            .remove(0)
            .1
            .unwrap();
        assert_eq!(row.score_given, "0.19999999999999998");
        assert_eq!(row.score_maximum, "1.0000000000000002e-05");
        assert_eq!(row.user_id, "12345678901234567890123");
    }

    #[test]
    fn content_types_and_file_names_pick_the_format() {
        assert_eq!(
            Format::from_content_type("text/csv; charset=utf-8"),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_content_type("application/x-ndjson"),
            Some(Format::JsonLines)
        );
        assert_eq!(
            Format::from_content_type("application/jsonl"),
            Some(Format::JsonLines)
        );
        assert_eq!(Format::from_content_type("application/json"), None);
        assert_eq!(
            Format::from_path(std::path::Path::new("grades.CSV")),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_path(std::path::Path::new("g.jsonl")),
            Some(Format::JsonLines)
        );
    }
}
