//! The forwarder's disk queue: one file per payload in `forwarder_storage_path`.
//!
//! File name: `<unix micros, 20 digits>-<pid>-<counter>.payload`, so names sort by age across restarts.
//! Content: one header line, then the body exactly as it is sent:
//! `kelpie-payload v2 <endpoint> <body_len> <xxh3 of body, hex> <uncompressed_len> <items> <content-encoding or ->
//! <content-type>\n<body>`.
//! Files are written under a `.tmp` name and renamed, so a crash never leaves a partial file under a valid name;
//! leftover `.tmp` files are removed at start. A file whose length or checksum does not match its header (a
//! disk that lost part of it, someone else's file) is removed with a warning and counted (`disk_corrupt`),
//! never sent and never a crash. Files are not fsync'ed: they survive an agent crash or `kill -9` (the page
//! cache is the kernel's), not a power loss, and writing stays cheap.

use crate::intake::{Endpoint, Payload, CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF};
use bytes::Bytes;
use parking_lot::Mutex;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &str = "kelpie-payload v2";
const EXT: &str = "payload";
const MAX_HEADER: usize = 4096;

/// Everything about a payload but its body.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Meta {
    pub endpoint: Endpoint,
    pub content_type: std::borrow::Cow<'static, str>,
    pub content_encoding: Option<&'static str>,
    pub uncompressed_len: usize,
    pub items: usize,
}

impl Meta {
    pub fn of(p: &Payload) -> Meta {
        Meta {
            endpoint: p.endpoint,
            content_type: p.content_type.clone(),
            content_encoding: p.content_encoding,
            uncompressed_len: p.uncompressed_len,
            items: p.items,
        }
    }

    fn header(&self, body: &[u8]) -> String {
        format!(
            "{MAGIC} {} {} {:016x} {} {} {} {}\n",
            self.endpoint.name(),
            body.len(),
            checksum(body),
            self.uncompressed_len,
            self.items,
            self.content_encoding.unwrap_or("-"),
            self.content_type
        )
    }

    /// The metadata, the body's length and its checksum.
    fn parse(line: &str) -> Option<(Meta, usize, u64)> {
        let rest = line.strip_prefix(MAGIC)?.strip_prefix(' ')?;
        let mut it = rest.splitn(7, ' ');
        let endpoint = Endpoint::from_name(it.next()?)?;
        let body_len = it.next()?.parse().ok()?;
        let sum = it.next()?;
        if sum.len() != 16 {
            return None;
        }
        let sum = u64::from_str_radix(sum, 16).ok()?;
        let uncompressed_len = it.next()?.parse().ok()?;
        let items = it.next()?.parse().ok()?;
        let content_encoding = match it.next()? {
            "-" => None,
            enc => Some(intern(enc)?),
        };
        let content_type = content_type(it.next()?.trim_end())?;
        let meta = Meta {
            endpoint,
            content_type,
            content_encoding,
            uncompressed_len,
            items,
        };
        Some((meta, body_len, sum))
    }
}

fn checksum(body: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(body)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// A content type read back from disk: the known ones borrowed, others (a profile's multipart boundary) owned.
fn content_type(s: &str) -> Option<std::borrow::Cow<'static, str>> {
    if s.is_empty() || s.len() > 256 {
        return None;
    }
    Some(
        match [CONTENT_TYPE_PROTOBUF, CONTENT_TYPE_JSON]
            .iter()
            .find(|k| **k == s)
        {
            Some(k) => std::borrow::Cow::Borrowed(*k),
            None => std::borrow::Cow::Owned(s.to_string()),
        },
    )
}

/// `Payload` carries `&'static str` headers; values read back from disk are interned once each. At most 64
/// distinct values are accepted (a file with anything else is treated as corrupt), so memory stays bounded.
fn intern(s: &str) -> Option<&'static str> {
    static KNOWN: &[&str] = &[
        CONTENT_TYPE_PROTOBUF,
        CONTENT_TYPE_JSON,
        "zstd",
        "deflate",
        "gzip",
    ];
    static EXTRA: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    if s.is_empty() || s.len() > 256 {
        return None;
    }
    if let Some(k) = KNOWN.iter().find(|k| **k == s) {
        return Some(k);
    }
    let mut extra = EXTRA.lock();
    if let Some(k) = extra.iter().find(|k| **k == s) {
        return Some(k);
    }
    if extra.len() >= 64 {
        return None;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    extra.push(leaked);
    Some(leaked)
}

/// A parsed header line: metadata, body length, checksum, and the line's own length.
struct Header {
    meta: Meta,
    body_len: usize,
    sum: u64,
    len: usize,
}

/// Reads and parses the header line.
fn read_header(f: &mut impl BufRead) -> std::io::Result<Header> {
    let mut line = Vec::new();
    f.take(MAX_HEADER as u64).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(invalid("no header line"));
    }
    let (meta, body_len, sum) = std::str::from_utf8(&line[..line.len() - 1])
        .ok()
        .and_then(Meta::parse)
        .ok_or_else(|| invalid("not a kelpie payload file"))?;
    Ok(Header {
        meta,
        body_len,
        sum,
        len: line.len(),
    })
}

/// A payload found on disk.
pub(super) struct Stored {
    pub path: PathBuf,
    pub meta: Meta,
    pub size: usize,
}

pub(super) struct Storage {
    dir: PathBuf,
    counter: AtomicU64,
}

impl Storage {
    pub fn open(dir: PathBuf) -> std::io::Result<Storage> {
        std::fs::create_dir_all(&dir)?;
        // A probe write, so a read-only directory is reported at start rather than at the first spill.
        let probe = dir.join(".kelpie-write-test");
        std::fs::write(&probe, b"")?;
        std::fs::remove_file(&probe)?;
        Ok(Storage {
            dir,
            counter: AtomicU64::new(0),
        })
    }

    pub fn write(&self, meta: &Meta, body: &[u8]) -> std::io::Result<PathBuf> {
        let micros = crate::clock::since_epoch().as_micros();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{micros:020}-{}-{n:08}.{EXT}", std::process::id());
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let res = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(meta.header(body).as_bytes())?;
            f.write_all(body)?;
            std::fs::rename(&tmp, &path)
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res.map(|()| path)
    }

    /// The body of a stored payload, checked against its header's length and checksum.
    pub fn read_body(path: &Path) -> std::io::Result<Bytes> {
        let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
        let h = read_header(&mut f)?;
        let mut body = Vec::with_capacity(h.body_len);
        f.take(h.body_len as u64 + 1).read_to_end(&mut body)?;
        if body.len() != h.body_len {
            return Err(invalid(
                "the file is shorter or longer than its header says",
            ));
        }
        if checksum(&body) != h.sum {
            return Err(invalid("the body does not match its checksum"));
        }
        Ok(Bytes::from(body))
    }

    /// The metadata and body length of a stored payload whose file has the length its header says.
    fn read_meta(path: &Path) -> std::io::Result<(Meta, usize)> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let mut f = std::io::BufReader::new(file);
        let h = read_header(&mut f)?;
        if len != (h.len + h.body_len) as u64 {
            return Err(invalid(
                "the file is shorter or longer than its header says",
            ));
        }
        Ok((h.meta, h.body_len))
    }

    /// Payloads left by a previous run, oldest first, and how many unreadable files were removed.
    pub fn load(&self) -> (Vec<Stored>, u64) {
        let mut names = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(
                    "cannot list the forwarder storage {}: {e}",
                    self.dir.display()
                );
                return (Vec::new(), 0);
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            } else if name.ends_with(&format!(".{EXT}")) {
                names.push(name);
            }
        }
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        let mut corrupt = 0;
        for name in names {
            let path = self.dir.join(&name);
            match Storage::read_meta(&path) {
                Ok((meta, size)) => out.push(Stored { path, meta, size }),
                Err(e) => {
                    tracing::warn!(
                        "skipping and removing the unreadable forwarder file {}: {e}",
                        path.display()
                    );
                    let _ = std::fs::remove_file(&path);
                    corrupt += 1;
                }
            }
        }
        (out, corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_load_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path().to_path_buf()).unwrap();
        let m1 = Meta {
            endpoint: Endpoint::Profile,
            content_type: "multipart/form-data; boundary=abc".into(),
            content_encoding: None,
            uncompressed_len: 3,
            items: 1,
        };
        let m2 = Meta {
            endpoint: Endpoint::Series,
            content_type: CONTENT_TYPE_PROTOBUF.into(),
            content_encoding: Some("zstd"),
            uncompressed_len: 10,
            items: 4,
        };
        let p1 = s.write(&m1, b"a\nb").unwrap();
        let p2 = s.write(&m2, b"\x00\x01\n\xff").unwrap();
        std::fs::write(dir.path().join("junk.payload"), b"garbage").unwrap();
        std::fs::write(dir.path().join("half.payload.tmp"), b"x").unwrap();
        // A valid file cut short, and one with a flipped body byte (its length still right).
        let whole = std::fs::read(&p2).unwrap();
        std::fs::write(dir.path().join("cut.payload"), &whole[..whole.len() - 1]).unwrap();
        let mut flipped = std::fs::read(&p1).unwrap();
        *flipped.last_mut().unwrap() ^= 1;
        let flipped_path = dir.path().join("zz-flipped.payload");
        std::fs::write(&flipped_path, &flipped).unwrap();
        let (files, corrupt) = s.load();
        assert_eq!(corrupt, 2);
        // The flipped one has the right length: found by its checksum when it is read for sending.
        assert_eq!(files.len(), 3);
        assert!(Storage::read_body(&flipped_path).is_err());
        std::fs::remove_file(&flipped_path).unwrap();
        let files = &files[..2];
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, p1);
        assert_eq!(files[0].meta, m1);
        assert_eq!(files[0].size, 3);
        assert_eq!(files[1].meta, m2);
        assert_eq!(&Storage::read_body(&p1).unwrap()[..], b"a\nb");
        assert_eq!(&Storage::read_body(&p2).unwrap()[..], b"\x00\x01\n\xff");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn bad_headers_are_rejected() {
        let sum = "0123456789abcdef";
        for bad in [
            format!("kelpie-payload v2 nope 3 {sum} 1 1 - application/json"),
            format!("kelpie-payload v2 series 3 {sum} x 1 - application/json"),
            format!("kelpie-payload v2 series x {sum} 1 1 - application/json"),
            "kelpie-payload v2 series 3 0123 1 1 - application/json".to_string(),
            format!("other v2 series 3 {sum} 1 1 - application/json"),
            format!("kelpie-payload v2 series 3 {sum} 1 1 -"),
            "kelpie-payload v1 series 1 1 - application/json".to_string(),
        ] {
            assert!(Meta::parse(&bad).is_none(), "{bad}");
        }
        let (_, len, s) = Meta::parse(&format!(
            "kelpie-payload v2 series 3 {sum} 1 1 - application/json"
        ))
        .unwrap();
        assert_eq!((len, s), (3, 0x0123456789abcdef));
    }
}
