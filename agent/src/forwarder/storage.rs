//! The forwarder's disk queue: one file per payload in `forwarder_storage_path`.
//!
//! File name: `<unix micros, 20 digits>-<pid>-<counter>.payload`, so names sort by age across restarts.
//! Content: one header line, then the body exactly as it is sent:
//! `kelpie-payload v1 <endpoint> <uncompressed_len> <items> <content-encoding or -> <content-type>\n<body>`.
//! Files are written under a `.tmp` name and renamed, so a crash never leaves a partial file under a valid name;
//! leftover `.tmp` files are removed at start. Files are not fsync'ed: they survive an agent crash or restart
//! (the page cache is the kernel's), not a power loss, and spilling stays cheap for the caller.

use crate::encode::{Endpoint, Payload, CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF};
use bytes::Bytes;
use parking_lot::Mutex;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &str = "kelpie-payload v1";
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

    fn header(&self) -> String {
        format!(
            "{MAGIC} {} {} {} {} {}\n",
            self.endpoint.name(),
            self.uncompressed_len,
            self.items,
            self.content_encoding.unwrap_or("-"),
            self.content_type
        )
    }

    fn parse(line: &str) -> Option<Meta> {
        let rest = line.strip_prefix(MAGIC)?.strip_prefix(' ')?;
        let mut it = rest.splitn(5, ' ');
        let endpoint = Endpoint::from_name(it.next()?)?;
        let uncompressed_len = it.next()?.parse().ok()?;
        let items = it.next()?.parse().ok()?;
        let content_encoding = match it.next()? {
            "-" => None,
            enc => Some(intern(enc)?),
        };
        let content_type = content_type(it.next()?.trim_end())?;
        Some(Meta {
            endpoint,
            content_type,
            content_encoding,
            uncompressed_len,
            items,
        })
    }
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
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{micros:020}-{}-{n:08}.{EXT}", std::process::id());
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let res = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(meta.header().as_bytes())?;
            f.write_all(body)?;
            std::fs::rename(&tmp, &path)
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res.map(|()| path)
    }

    /// The body of a stored payload.
    pub fn read_body(path: &Path) -> std::io::Result<Bytes> {
        let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
        let mut header = Vec::new();
        (&mut f)
            .take(MAX_HEADER as u64)
            .read_until(b'\n', &mut header)?;
        if !header.starts_with(MAGIC.as_bytes()) || header.last() != Some(&b'\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a kelpie payload file",
            ));
        }
        let mut body = Vec::new();
        f.read_to_end(&mut body)?;
        Ok(Bytes::from(body))
    }

    fn read_meta(path: &Path) -> Option<(Meta, usize)> {
        let file = std::fs::File::open(path).ok()?;
        let len = file.metadata().ok()?.len() as usize;
        let mut f = std::io::BufReader::new(file);
        let mut header = Vec::new();
        (&mut f)
            .take(MAX_HEADER as u64)
            .read_until(b'\n', &mut header)
            .ok()?;
        if header.last() != Some(&b'\n') {
            return None;
        }
        let meta = Meta::parse(std::str::from_utf8(&header[..header.len() - 1]).ok()?)?;
        Some((meta, len - header.len()))
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
                Some((meta, size)) => out.push(Stored { path, meta, size }),
                None => {
                    tracing::warn!("removing unreadable forwarder file {}", path.display());
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
        let (files, corrupt) = s.load();
        assert_eq!(corrupt, 1);
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
        assert!(Meta::parse("kelpie-payload v1 nope 1 1 - application/json").is_none());
        assert!(Meta::parse("kelpie-payload v1 series x 1 - application/json").is_none());
        assert!(Meta::parse("other v1 series 1 1 - application/json").is_none());
        assert!(Meta::parse("kelpie-payload v1 series 1 1 -").is_none());
        assert!(Meta::parse("kelpie-payload v1 series 1 1 - application/json").is_some());
    }
}
