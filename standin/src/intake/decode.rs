//! Request bodies: headers read, `Content-Encoding` undone within Datadog's size limits, JSON parsed; a
//! body that cannot be taken is a [`Refusal`] (status and message).

use super::{Limits, SERIES_LIMITS};
use axum::http::HeaderMap;
use serde_json::Value;
use std::io::Read;

pub(super) type Refusal = (u16, String);

pub(super) fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
}

/// Media type without parameters, lower case.
pub(super) fn media_type(headers: &HeaderMap) -> String {
    header(headers, "content-type")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Checks the size limits and undoes `Content-Encoding`.
pub(super) fn decode_body(
    headers: &HeaderMap,
    body: &[u8],
    limits: Limits,
) -> Result<Vec<u8>, Refusal> {
    if body.len() > limits.max_compressed {
        return Err((
            413,
            format!(
                "Payload too large: {} bytes > {} bytes",
                body.len(),
                limits.max_compressed
            ),
        ));
    }
    let encoding = header(headers, "content-encoding").to_ascii_lowercase();
    let cap = limits.max_uncompressed as u64 + 1;
    let mut out = Vec::new();
    let res = match encoding.as_str() {
        "" | "identity" => {
            out.extend_from_slice(body);
            Ok(())
        }
        "zstd" => zstd::stream::read::Decoder::new(body)
            .and_then(|d| d.take(cap).read_to_end(&mut out).map(drop)),
        "gzip" => flate2::read::GzDecoder::new(body)
            .take(cap)
            .read_to_end(&mut out)
            .map(drop),
        "deflate" => {
            // HTTP's `deflate` is zlib-wrapped; some clients send raw deflate, which is accepted too.
            let r = flate2::read::ZlibDecoder::new(body)
                .take(cap)
                .read_to_end(&mut out)
                .map(drop);
            if r.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body)
                    .take(cap)
                    .read_to_end(&mut out)
                    .map(drop)
            } else {
                r
            }
        }
        other => return Err((415, format!("Unsupported Content-Encoding {other:?}"))),
    };
    if let Err(e) = res {
        return Err((400, format!("Invalid {encoding} body: {e}")));
    }
    if out.len() > limits.max_uncompressed {
        return Err((
            413,
            format!(
                "Payload too large once decompressed: more than {} bytes",
                limits.max_uncompressed
            ),
        ));
    }
    Ok(out)
}

pub(super) fn parse_json(headers: &HeaderMap, body: &[u8], what: &str) -> Result<Value, Refusal> {
    let raw = decode_body(headers, body, SERIES_LIMITS)?;
    let mt = media_type(headers);
    if !mt.is_empty() && mt != "application/json" {
        return Err((415, format!("Unsupported Content-Type {mt:?} for {what}")));
    }
    serde_json::from_slice(&raw).map_err(|e| (400, format!("invalid {what} JSON: {e}")))
}
