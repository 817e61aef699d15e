//! Content decoding of upstream bodies before redaction, capped so a compression bomb cannot
//! grow past `max_body_bytes`. A compressed body never slips past redaction: an encoding the
//! gateway cannot decode is refused.

use std::io::Read;

use http::HeaderMap;

use crate::error::GatewayError;

/// Decodes `body` per its `Content-Encoding` (applied in reverse order), at most `limit` bytes.
pub(crate) fn decode(
    headers: &HeaderMap,
    body: bytes::Bytes,
    limit: u64,
) -> Result<bytes::Bytes, GatewayError> {
    let mut codings: Vec<String> = Vec::new();
    for value in headers.get_all(http::header::CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| {
            GatewayError::UnprocessableUpstreamBody(
                "the upstream's Content-Encoding is unreadable".into(),
            )
        })?;
        codings.extend(
            text.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty()),
        );
    }
    let mut data = body;
    for coding in codings.iter().rev() {
        data = match coding.as_str() {
            "identity" => data,
            "gzip" | "x-gzip" => read_capped(flate2::read::MultiGzDecoder::new(&data[..]), limit)?,
            "deflate" => match read_capped(flate2::read::ZlibDecoder::new(&data[..]), limit) {
                Ok(out) => out,
                // Some servers send raw deflate without the zlib wrapper.
                Err(GatewayError::UnprocessableUpstreamBody(_)) => {
                    read_capped(flate2::read::DeflateDecoder::new(&data[..]), limit)?
                }
                Err(e) => return Err(e),
            },
            "br" => read_capped(
                brotli_decompressor::Decompressor::new(&data[..], 8192),
                limit,
            )?,
            other => {
                return Err(GatewayError::UnprocessableUpstreamBody(format!(
                    "the upstream answered with content encoding '{other}', which the gateway cannot inspect"
                )));
            }
        };
    }
    Ok(data)
}

fn read_capped(reader: impl Read, limit: u64) -> Result<bytes::Bytes, GatewayError> {
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|_| {
            GatewayError::UnprocessableUpstreamBody(
                "the upstream's compressed body is corrupt".into(),
            )
        })?;
    if out.len() as u64 > limit {
        return Err(GatewayError::ResponseTooLarge { limit });
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn headers(enc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, enc.parse().unwrap());
        h
    }

    #[test]
    fn gzip_deflate_and_caps() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(br#"{"a":1}"#).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            decode(&headers("gzip"), gz.clone().into(), 100).unwrap(),
            r#"{"a":1}"#
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(br#"{"a":1}"#).unwrap();
        assert_eq!(
            decode(&headers("deflate"), z.finish().unwrap().into(), 100).unwrap(),
            r#"{"a":1}"#
        );
        // A bomb: 1 MB of zeros from a few KB.
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = bomb.finish().unwrap();
        assert!(matches!(
            decode(&headers("gzip"), bomb.into(), 1000),
            Err(GatewayError::ResponseTooLarge { .. })
        ));
        assert!(matches!(
            decode(&headers("zstd"), gz.into(), 100),
            Err(GatewayError::UnprocessableUpstreamBody(_))
        ));
        assert!(matches!(
            decode(
                &headers("gzip"),
                bytes::Bytes::from_static(b"not gzip"),
                100
            ),
            Err(GatewayError::UnprocessableUpstreamBody(_))
        ));
    }
}
