//! Response formats of `/v1/bars`: choosing one from `Accept` (or
//! `format=`), and encoding a stream of bar batches into body chunks.
//!
//! - Arrow IPC stream: `arrow_ipc`'s `StreamEncoder`, whose buffers go into
//!   the body without a copy (one IPC record batch per store batch).
//! - CSV and JSON Lines: `strata_formats`' writers, so the text is exactly
//!   `strata query --format csv|json`'s.
//! - JSON: the JSON Lines objects joined into one array, one object per line.
//!
//! Text is encoded [`TEXT_ROWS`] rows at a time, so one chunk of the body
//! is bounded whatever batch size the store yields.

use std::collections::VecDeque;
use std::io;

use arrow_ipc::writer::StreamEncoder;
use axum::body::Bytes;
use axum::http::HeaderValue;
use futures::StreamExt as _;
use futures::stream::{BoxStream, Stream};
use strata_core::{BarBatch, StoreError, bar_schema};
use strata_formats::write::{CsvWriter, JsonLinesWriter};

/// Rows encoded into one chunk of a text body.
pub const TEXT_ROWS: usize = 8_192;

/// A representation of bars in a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarFormat {
    /// `application/vnd.apache.arrow.stream`: the Arrow IPC stream format in
    /// the canonical bar schema (`pyarrow.ipc.open_stream`, `polars.read_ipc_stream`).
    Arrow,
    /// `text/csv`: a header, then one line per bar (`strata query --format csv`).
    Csv,
    /// `application/x-ndjson`: one JSON object per line (`strata query --format json`).
    NdJson,
    /// `application/json`: one array of those objects.
    Json,
}

impl BarFormat {
    /// Every format, in the order they are listed to clients.
    pub const ALL: [BarFormat; 4] = [BarFormat::Json, BarFormat::NdJson, BarFormat::Csv, BarFormat::Arrow];

    /// The values of `format=`.
    pub(crate) const PARAMS: &'static str = "json, ndjson, csv, arrow";

    /// The media type (without parameters).
    pub fn media_type(self) -> &'static str {
        match self {
            BarFormat::Arrow => "application/vnd.apache.arrow.stream",
            BarFormat::Csv => "text/csv",
            BarFormat::NdJson => "application/x-ndjson",
            BarFormat::Json => "application/json",
        }
    }

    /// The `Content-Type` of a response.
    pub fn content_type(self) -> &'static str {
        match self {
            BarFormat::Csv => "text/csv; charset=utf-8; header=present",
            other => other.media_type(),
        }
    }

    /// The format named by `format=` (`json`, `ndjson`, `csv`, `arrow`).
    pub fn from_param(value: &str) -> Option<Self> {
        match value {
            "json" => Some(BarFormat::Json),
            "ndjson" => Some(BarFormat::NdJson),
            "csv" => Some(BarFormat::Csv),
            "arrow" => Some(BarFormat::Arrow),
            _ => None,
        }
    }

    /// The format for an `Accept` header: the supported media range with
    /// the highest quality (`q`), the first listed on a tie; JSON when the
    /// header is missing or empty, or for `*/*` and `application/*`;
    /// CSV for `text/*`. `None` when nothing listed is supported (406).
    pub fn negotiate(accept: Option<&HeaderValue>) -> Option<Self> {
        let Some(accept) = accept else { return Some(BarFormat::Json) };
        let text = accept.to_str().ok()?;
        if text.trim().is_empty() {
            return Some(BarFormat::Json);
        }
        let mut best: Option<(f32, BarFormat)> = None;
        for range in text.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|parameter| parameter.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let Some(format) = Self::for_media_range(&media) else { continue };
            if quality > 0.0 && best.is_none_or(|(best_quality, _)| quality > best_quality) {
                best = Some((quality, format));
            }
        }
        best.map(|(_, format)| format)
    }

    fn for_media_range(media: &str) -> Option<Self> {
        match media {
            "*/*" | "application/*" => Some(BarFormat::Json),
            "text/*" => Some(BarFormat::Csv),
            _ => BarFormat::ALL.into_iter().find(|format| format.media_type() == media),
        }
    }

    /// The supported media types, for a 406 message.
    pub(crate) fn supported() -> String {
        BarFormat::ALL.map(BarFormat::media_type).join(", ")
    }
}

/// The body of a bars response: `first` (the batch already read, so that an
/// error before any row is a proper error status), then the rest of
/// `batches`, encoded as `format`. A store error after that ends the body
/// with an error, which makes the server abort the transfer: the client sees
/// a failed download, never a short success.
pub(crate) fn body(
    encoder: Encoder,
    first: Option<BarBatch>,
    batches: BoxStream<'static, Result<BarBatch, StoreError>>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let state = Encoding {
        encoder: Some(encoder),
        source: batches,
        current: first.map(|batch| (batch, 0)),
        pending: VecDeque::new(),
        finished: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    })
}

/// Reads `batches` up to the first non-empty batch: `Ok(None)` when the
/// stream ends without a row, the store's error if one comes first.
pub(crate) async fn first_rows(
    batches: &mut BoxStream<'static, Result<BarBatch, StoreError>>,
) -> Result<Option<BarBatch>, StoreError> {
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        if !batch.is_empty() {
            return Ok(Some(batch));
        }
    }
    Ok(None)
}

struct Encoding {
    /// `None` once finished.
    encoder: Option<Encoder>,
    source: BoxStream<'static, Result<BarBatch, StoreError>>,
    /// A batch being encoded and the offset of its next row.
    current: Option<(BarBatch, usize)>,
    /// Encoded chunks not yet handed to the body.
    pending: VecDeque<Bytes>,
    /// The source has ended (or failed): nothing more to read.
    finished: bool,
}

impl Encoding {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, io::Error>> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(Ok(chunk));
            }
            if let Some((batch, offset)) = self.current.take() {
                let encoder = self.encoder.as_mut()?;
                let rows = encoder.rows_per_chunk().min(batch.len() - offset);
                let piece = if offset == 0 && rows == batch.len() { batch.clone() } else { batch.slice(offset, rows) };
                if let Err(error) = encoder.encode(&piece, &mut self.pending) {
                    return Some(Err(self.fail(error)));
                }
                if offset + rows < batch.len() {
                    self.current = Some((batch, offset + rows));
                }
                continue;
            }
            if self.finished {
                return None;
            }
            match self.source.next().await {
                Some(Ok(batch)) if batch.is_empty() => {}
                Some(Ok(batch)) => self.current = Some((batch, 0)),
                Some(Err(error)) => return Some(Err(self.fail(error.to_string()))),
                None => {
                    self.finished = true;
                    if let Some(encoder) = self.encoder.take()
                        && let Err(error) = encoder.finish(&mut self.pending)
                    {
                        return Some(Err(self.fail(error)));
                    }
                }
            }
        }
    }

    /// Ends the stream after `message`, the error the body ends with.
    fn fail(&mut self, message: String) -> io::Error {
        self.finished = true;
        self.encoder = None;
        self.pending.clear();
        self.current = None;
        tracing::warn!("bars response aborted mid-stream: {message}");
        io::Error::other(message)
    }
}

/// Turns batches into body chunks in one format.
pub(crate) enum Encoder {
    Arrow(Box<StreamEncoder>),
    Csv { header: Vec<u8>, header_sent: bool },
    NdJson,
    Json { rows_sent: bool },
}

impl Encoder {
    /// An encoder for `format`; an error is a bug (the canonical schema is
    /// plain IPC), reported before any byte is sent.
    pub(crate) fn new(format: BarFormat) -> Result<Self, String> {
        Ok(match format {
            BarFormat::Arrow => {
                Encoder::Arrow(Box::new(StreamEncoder::try_new(&bar_schema()).map_err(|error| error.to_string())?))
            }
            BarFormat::Csv => Encoder::Csv { header: csv_header()?, header_sent: false },
            BarFormat::NdJson => Encoder::NdJson,
            BarFormat::Json => Encoder::Json { rows_sent: false },
        })
    }

    /// Arrow sends each store batch whole; text is cut into [`TEXT_ROWS`].
    fn rows_per_chunk(&self) -> usize {
        match self {
            Encoder::Arrow(_) => usize::MAX,
            _ => TEXT_ROWS,
        }
    }

    fn encode(&mut self, batch: &BarBatch, out: &mut VecDeque<Bytes>) -> Result<(), String> {
        match self {
            Encoder::Arrow(encoder) => {
                let buffers = encoder.encode(batch.record_batch()).map_err(|error| error.to_string())?;
                out.extend(buffers.into_iter().map(Bytes::from));
            }
            Encoder::Csv { header, header_sent } => {
                let mut writer = CsvWriter::new(Vec::new()).map_err(|error| error.to_string())?;
                writer.write(batch).map_err(|error| error.to_string())?;
                let mut text = writer.finish().map_err(|error| error.to_string())?;
                if *header_sent && text.starts_with(header) {
                    text.drain(..header.len());
                }
                *header_sent = true;
                out.push_back(Bytes::from(text));
            }
            Encoder::NdJson => out.push_back(Bytes::from(json_lines(batch)?)),
            Encoder::Json { rows_sent } => {
                let lines = json_lines(batch)?;
                let mut text = Vec::with_capacity(lines.len() + batch.len() + 2);
                text.extend_from_slice(if *rows_sent { b",\n" } else { b"[\n" });
                // Every raw newline ends an object (strings escape theirs): join with commas.
                let body = lines.strip_suffix(b"\n").unwrap_or(&lines);
                for byte in body.iter().copied() {
                    if byte == b'\n' {
                        text.push(b',');
                    }
                    text.push(byte);
                }
                *rows_sent = true;
                out.push_back(Bytes::from(text));
            }
        }
        Ok(())
    }

    fn finish(self, out: &mut VecDeque<Bytes>) -> Result<(), String> {
        match self {
            Encoder::Arrow(encoder) => {
                out.extend(encoder.finish().map_err(|error| error.to_string())?.into_iter().map(Bytes::from));
            }
            Encoder::Csv { header, header_sent: false } => out.push_back(Bytes::from(header)),
            Encoder::Csv { header_sent: true, .. } | Encoder::NdJson => {}
            Encoder::Json { rows_sent } => {
                out.push_back(Bytes::from_static(if rows_sent { b"\n]\n" } else { b"[]\n" }));
            }
        }
        Ok(())
    }
}

/// The CSV header line exactly as `CsvWriter` writes it.
fn csv_header() -> Result<Vec<u8>, String> {
    CsvWriter::new(Vec::new()).and_then(CsvWriter::finish).map_err(|error| error.to_string())
}

/// `batch` as JSON Lines.
fn json_lines(batch: &BarBatch) -> Result<Vec<u8>, String> {
    let mut writer = JsonLinesWriter::new(Vec::new()).map_err(|error| error.to_string())?;
    writer.write(batch).map_err(|error| error.to_string())?;
    writer.finish().map_err(|error| error.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::TryStreamExt as _;
    use strata_core::synthetic::SyntheticSpec;

    use super::*;

    fn negotiate(accept: &str) -> Option<BarFormat> {
        BarFormat::negotiate(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn accept_picks_the_best_supported_type() {
        assert_eq!(BarFormat::negotiate(None), Some(BarFormat::Json));
        assert_eq!(negotiate(""), Some(BarFormat::Json));
        assert_eq!(negotiate("*/*"), Some(BarFormat::Json));
        assert_eq!(negotiate("application/vnd.apache.arrow.stream"), Some(BarFormat::Arrow));
        assert_eq!(negotiate("text/csv"), Some(BarFormat::Csv));
        assert_eq!(negotiate("text/*"), Some(BarFormat::Csv));
        assert_eq!(negotiate("Application/X-NDJSON"), Some(BarFormat::NdJson));
        assert_eq!(negotiate("text/html, application/json;q=0.9, */*;q=0.1"), Some(BarFormat::Json));
        assert_eq!(negotiate("text/csv;q=0.5, application/vnd.apache.arrow.stream"), Some(BarFormat::Arrow));
        assert_eq!(negotiate("text/html"), None);
        assert_eq!(negotiate("text/csv;q=0"), None);
    }

    fn encode(format: BarFormat, batches: Vec<BarBatch>) -> Vec<u8> {
        let source = futures::stream::iter(batches.into_iter().map(Ok)).boxed();
        let encoder = Encoder::new(format).unwrap();
        let chunks: Vec<Bytes> = futures::executor::block_on(body(encoder, None, source).try_collect()).unwrap();
        chunks.concat()
    }

    #[test]
    fn text_formats_are_the_cli_text() {
        let spec = SyntheticSpec::minutes(2, TEXT_ROWS + 5, 7);
        let batches: Vec<BarBatch> = spec.batches(TEXT_ROWS * 2).collect();
        let mut csv = CsvWriter::new(Vec::new()).unwrap();
        let mut lines = JsonLinesWriter::new(Vec::new()).unwrap();
        for batch in &batches {
            csv.write(batch).unwrap();
            lines.write(batch).unwrap();
        }
        let (csv, lines) = (csv.finish().unwrap(), lines.finish().unwrap());
        assert_eq!(encode(BarFormat::Csv, batches.clone()), csv);
        assert_eq!(encode(BarFormat::NdJson, batches.clone()), lines);
        let array: serde_json::Value = serde_json::from_slice(&encode(BarFormat::Json, batches.clone())).unwrap();
        let objects: Vec<serde_json::Value> = lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(array, serde_json::Value::Array(objects));
    }

    #[test]
    fn no_rows_is_a_header_an_empty_array_or_an_empty_arrow_stream() {
        assert_eq!(encode(BarFormat::Csv, vec![]), csv_header().unwrap());
        assert_eq!(encode(BarFormat::Json, vec![BarBatch::empty()]), b"[]\n");
        assert!(encode(BarFormat::NdJson, vec![]).is_empty());
        let arrow = encode(BarFormat::Arrow, vec![]);
        let reader = arrow_ipc::reader::StreamReader::try_new(io::Cursor::new(arrow), None).unwrap();
        assert_eq!(reader.schema(), bar_schema());
        assert_eq!(reader.count(), 0);
    }

    #[test]
    fn arrow_round_trips_every_batch() {
        let batches: Vec<BarBatch> = SyntheticSpec::minutes(3, 1000, 1).batches(700).collect();
        let arrow = encode(BarFormat::Arrow, batches.clone());
        let reader = arrow_ipc::reader::StreamReader::try_new(io::Cursor::new(arrow), None).unwrap();
        let decoded: Vec<BarBatch> = reader.map(|batch| BarBatch::try_new(batch.unwrap()).unwrap()).collect();
        assert_eq!(decoded, batches);
    }

    #[test]
    fn a_store_error_ends_the_body_with_an_error() {
        let batch = SyntheticSpec::minutes(1, 10, 1).batches(10).next().unwrap();
        let source = futures::stream::iter(vec![Ok(batch), Err(StoreError::unavailable("test", "gone", None))]).boxed();
        let encoder = Encoder::new(BarFormat::Csv).unwrap();
        let items: Vec<Result<Bytes, io::Error>> = futures::executor::block_on(body(encoder, None, source).collect());
        assert!(items.first().is_some_and(Result::is_ok));
        assert!(items.last().is_some_and(|item| item.as_ref().is_err_and(|e| e.to_string().contains("gone"))));
    }
}
