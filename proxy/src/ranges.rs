//! Byte ranges, the one place they are parsed and written: the `Range` of a blob GET (RFC 9110 section
//! 14.2, one range), the `Content-Range` of an upload chunk (distribution-spec `spec.md`, "Pushing a blob
//! in chunks": `START-END`, which some clients write as `bytes START-END/TOTAL`), and the `Range` and
//! `Content-Range` of a resumed upstream body.

use axum::http::{HeaderMap, HeaderValue, header};
use regbridge::{Error, OciErrorCode, Result};

/// The `Range` of a blob request: `bytes=START-END` or `bytes=START-` (suffix ranges `-N` and several
/// ranges are refused with a message saying so).
pub fn request_range(headers: &HeaderMap) -> Result<Option<(u64, Option<u64>)>> {
    let Some(value) = headers.get(header::RANGE) else { return Ok(None) };
    let bad = || {
        Error::invalid(
            OciErrorCode::RangeInvalid,
            "the Range header must be bytes=START-END or bytes=START- (one range)",
        )
    };
    let spec = value.to_str().map_err(|_| bad())?.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse::<u64>().map_err(|_| bad())?),
    };
    if end.is_some_and(|e| e < start) {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

/// The `Content-Range` of an upload chunk: `START-END` (inclusive), optionally as `bytes START-END/TOTAL`.
pub fn chunk_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else { return Ok(None) };
    let bad = || Error::invalid(OciErrorCode::RangeInvalid, "Content-Range must be START-END, e.g. 0-1023");
    let text = value.to_str().map_err(|_| bad())?.trim();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let text = text.split('/').next().unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let (start, end): (u64, u64) = (start.parse().map_err(|_| bad())?, end.parse().map_err(|_| bad())?);
    if end < start {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

/// `Range: bytes=OFFSET-`, asking for a body from `offset` on.
pub fn from_offset(offset: u64) -> HeaderValue {
    // Digits and ASCII punctuation always make a valid header value.
    HeaderValue::from_str(&format!("bytes={offset}-")).unwrap_or_else(|_| HeaderValue::from_static("bytes=0-"))
}

/// Whether a `206`'s `Content-Range` (`bytes START-END/TOTAL`) starts exactly at `offset`.
pub fn starts_at(headers: &HeaderMap, offset: u64) -> bool {
    headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split_once('-'))
        .is_some_and(|(start, _)| start.parse::<u64>() == Ok(offset))
}

/// `Content-Range: bytes START-END/TOTAL` of a partial answer.
pub fn partial(start: u64, end: u64, total: u64) -> String {
    format!("bytes {start}-{end}/{total}")
}

/// `Content-Range: bytes */TOTAL` of a 416.
pub fn unsatisfiable(total: u64) -> String {
    format!("bytes */{total}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, v.parse().unwrap());
        h
    }

    #[test]
    fn request_ranges() {
        let range = |v: &str| request_range(&with(header::RANGE, v));
        assert_eq!(range("bytes=0-9").unwrap(), Some((0, Some(9))));
        assert_eq!(range("bytes=5-").unwrap(), Some((5, None)));
        for bad in ["bytes=-5", "bytes=9-1", "items=0-1", "bytes=a-b", "bytes=0-1,3-4"] {
            assert_eq!(range(bad).unwrap_err().code(), OciErrorCode::RangeInvalid, "{bad}");
        }
    }

    #[test]
    fn chunk_ranges() {
        let range = |v: &str| chunk_range(&with(header::CONTENT_RANGE, v));
        assert_eq!(range("0-9").unwrap(), Some((0, 9)));
        assert_eq!(range("bytes 10-19/100").unwrap(), Some((10, 19)));
        for bad in ["9-1", "a-b", "10", "-5"] {
            assert!(range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resumes() {
        assert_eq!(from_offset(42), "bytes=42-");
        assert!(starts_at(&with(header::CONTENT_RANGE, &partial(42, 99, 100)), 42));
        assert!(!starts_at(&with(header::CONTENT_RANGE, "bytes 420-999/1000"), 42));
        assert!(!starts_at(&HeaderMap::new(), 0));
        assert_eq!(unsatisfiable(7), "bytes */7");
    }
}
