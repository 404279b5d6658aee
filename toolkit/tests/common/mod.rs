//! Helpers shared by the toolkit's integration tests: a DogStatsD line parser and a multipart reader.
#![allow(dead_code)]

use std::collections::BTreeSet;

/// One DogStatsD line: `name:value|type|#tags`.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub value: String,
    pub kind: String,
    pub tags: BTreeSet<String>,
}

pub fn parse_lines(datagram: &[u8]) -> Vec<Line> {
    let text = std::str::from_utf8(datagram).expect("datagrams are UTF-8");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, rest) = l.split_once(':').expect("name:value");
            let mut fields = rest.split('|');
            let value = fields.next().expect("value").to_string();
            let kind = fields.next().expect("type").to_string();
            let mut tags = BTreeSet::new();
            for f in fields {
                if let Some(t) = f.strip_prefix('#') {
                    tags.extend(t.split(',').map(str::to_string));
                }
            }
            Line {
                name: name.to_string(),
                value,
                kind,
                tags,
            }
        })
        .collect()
}

pub fn tags(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A part of a multipart/form-data body.
#[derive(Debug)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn header_param(header: &str, key: &str) -> Option<String> {
    header.split(';').map(str::trim).find_map(|p| {
        p.strip_prefix(&format!("{key}="))
            .map(|v| v.trim_matches('"').to_string())
    })
}

/// Splits a multipart/form-data body (RFC 7578) into its parts.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = header_param(content_type, "boundary").expect("boundary in the content type");
    let delim = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut pos = find(body, &delim, 0).expect("first boundary") + delim.len();
    loop {
        if body[pos..].starts_with(b"--") {
            break;
        }
        pos += 2; // CRLF after the boundary
        let head_end = find(body, b"\r\n\r\n", pos).expect("end of part headers");
        let head = std::str::from_utf8(&body[pos..head_end]).expect("UTF-8 headers");
        let next = find(body, &delim, head_end).expect("next boundary");
        let content = body[head_end + 4..next - 2].to_vec(); // minus CRLF before the boundary
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            body: content,
        };
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':').expect("header line");
            match k.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    part.name = header_param(v, "name").unwrap_or_default();
                    part.filename = header_param(v, "filename");
                }
                "content-type" => part.content_type = Some(v.trim().to_string()),
                _ => {}
            }
        }
        parts.push(part);
        pos = next + delim.len();
    }
    parts
}
