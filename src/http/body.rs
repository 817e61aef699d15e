//! Body types and capped reading.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Boxed error for bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one body type the gateway sends and forwards.
pub type Body = BoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Why a capped read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// More than the cap.
    #[error("body exceeds {0} bytes")]
    TooLarge(u64),
    /// The stream broke.
    #[error("body stream failed: {0}")]
    Stream(BoxError),
    /// The reader's `admit` refused the bytes read so far (a memory budget).
    #[error("no room to buffer the body")]
    Refused,
}

/// Reads a whole body, failing as soon as it passes `limit` bytes.
pub async fn read_capped<B>(body: B, limit: u64) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    read_admitted(body, limit, |_| true).await
}

/// [`read_capped`], asking `admit` before holding each frame whether the total read so far may
/// be buffered (a memory budget); a refusal fails the read at once.
pub(crate) async fn read_admitted<B>(
    body: B,
    limit: u64,
    mut admit: impl FnMut(u64) -> bool,
) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    // A body of one frame (the common case) is returned without a copy.
    let mut first: Option<Bytes> = None;
    let mut buf = bytes::BytesMut::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Stream(e.into()))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > limit {
                return Err(ReadError::TooLarge(limit));
            }
            if !admit(total) {
                return Err(ReadError::Refused);
            }
            if first.is_none() && buf.is_empty() {
                first = Some(data);
            } else {
                if let Some(f) = first.take() {
                    buf.extend_from_slice(&f);
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}
