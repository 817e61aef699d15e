//! Content decoding of upstream bodies before redaction, capped so a compression bomb cannot
//! grow past `max_body_bytes`. A compressed body never slips past redaction: an encoding the
//! gateway cannot decode is refused, and so is a body that is compressed by its content
//! whatever its headers say (see [`by_content`]).

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
            // The coding's name is not echoed: it is the upstream's text.
            _ => {
                return Err(GatewayError::UnprocessableUpstreamBody(
                    "the upstream answered with a content encoding the gateway cannot inspect"
                        .into(),
                ));
            }
        };
    }
    Ok(data)
}

/// Refuses a body that is still compressed once its declared `Content-Encoding`s are undone (a
/// missing or wrong label, a `Transfer-Encoding: gzip`, a gzip inside a gzip): such bytes cannot
/// be inspected as they are, and guessing at undeclared layers is not the gateway's job. gzip,
/// zstd, xz and bzip2 are known by their magic bytes; a zlib header is two bytes that text can
/// form by chance (`x^`), so it counts only when the bytes really inflate.
pub(crate) fn by_content(data: bytes::Bytes, limit: u64) -> Result<bytes::Bytes, GatewayError> {
    let compressed = match data.as_ref() {
        [0x1f, 0x8b, ..]
        | [0x28, 0xb5, 0x2f, 0xfd, ..]
        | [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..]
        | [
            b'B',
            b'Z',
            b'h',
            b'1'..=b'9',
            0x31,
            0x41,
            0x59,
            0x26,
            0x53,
            0x59,
            ..,
        ] => true,
        [cmf, flg, ..] if cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0 => {
            read_capped(flate2::read::ZlibDecoder::new(&data[..]), limit).is_ok()
        }
        _ => false,
    };
    if compressed {
        return Err(GatewayError::UnprocessableUpstreamBody(
            "the upstream's body is compressed without saying so (Content-Encoding), so it cannot be inspected".into(),
        ));
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
            decode(&headers("zstd"), gz.clone().into(), 100),
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

    #[test]
    fn undeclared_compression_is_refused() {
        let gzip = |data: &[u8]| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(data).unwrap();
            gz.finish().unwrap()
        };
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"[1]").unwrap();
        for refused in [
            gzip(br#"{"a":1}"#),
            z.finish().unwrap(),
            b"\x28\xb5\x2f\xfd....".to_vec(),
            b"\xfd7zXZ\x00...".to_vec(),
        ] {
            assert!(matches!(
                by_content(refused.into(), 100),
                Err(GatewayError::UnprocessableUpstreamBody(_))
            ));
        }
        // Text whose first two bytes form a valid zlib header by chance is kept.
        assert_eq!(by_content("x^2 + y".into(), 100).unwrap(), "x^2 + y");
        assert_eq!(by_content("plain".into(), 100).unwrap(), "plain");
    }
}
