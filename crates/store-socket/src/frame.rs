//! Frames: a u32 big-endian length, then that many bytes (JSON, or an Arrow
//! IPC stream after a message that announces one), and the batch encoding.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;
use strata_core::{BarBatch, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame either side accepts (1 GiB, about 13 million bars in
/// one batch): a bound on what a bad length prefix can make a peer allocate.
pub const MAX_FRAME: usize = 1 << 30;

/// The backend name in the codec's errors.
const BACKEND: &str = "socket";

/// Writes one frame (not flushed).
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> io::Result<()> {
    let length = u32::try_from(bytes.len()).ok().filter(|length| *length as usize <= MAX_FRAME).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a frame of {} bytes exceeds the socket's limit of {MAX_FRAME} bytes", bytes.len()),
        )
    })?;
    writer.write_all(&length.to_be_bytes()).await?;
    writer.write_all(bytes).await
}

/// Reads one frame; `None` when the peer closed the connection cleanly between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]).await? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            read => filled += read,
        }
    }
    let length = u32::from_be_bytes(prefix) as usize;
    if length > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the peer announced a frame of {length} bytes, over the limit of {MAX_FRAME}"),
        ));
    }
    let mut bytes = vec![0u8; length];
    reader.read_exact(&mut bytes).await?;
    Ok(Some(bytes))
}

/// Writes `message` as one JSON frame (not flushed).
pub(crate) async fn write_json<W: AsyncWrite + Unpin, T: Serialize>(writer: &mut W, message: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    write_frame(writer, &bytes).await
}

/// Reads one JSON frame; a clean close between frames is `UnexpectedEof` here.
pub(crate) async fn read_json<R: AsyncRead + Unpin, T: DeserializeOwned>(reader: &mut R) -> io::Result<T> {
    let bytes = read_frame(reader).await?.ok_or(io::ErrorKind::UnexpectedEof)?;
    serde_json::from_slice(&bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// A batch as an Arrow IPC stream (schema and one record batch): bit-exact
/// floats, nulls and the UTC zone survive (`strata_store_kit::ipc`).
pub(crate) fn encode_batch(batch: &BarBatch) -> Result<Vec<u8>> {
    strata_store_kit::ipc::encode_batch(batch, BACKEND)
}

/// The batch of an Arrow IPC stream written by [`encode_batch`].
pub(crate) fn decode_batch(bytes: &[u8]) -> Result<BarBatch> {
    strata_store_kit::ipc::decode_batch(bytes, BACKEND)
}
