//! Hash functions (md5, sha1, sha256, sha512, their base64 and file forms) and uuid/uuidv5.

use super::encoding::b64;
use super::files::read;
use super::{str_arg, string, want, R};
use crate::eval::Scope;
use hcl::Value;

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest<D: sha2::Digest>(data: &[u8]) -> Vec<u8> {
    D::digest(data).to_vec()
}

/// The digest of the string argument, as lowercase hex or as base64.
fn of_string(a: &[Value], name: &str, f: fn(&[u8]) -> Vec<u8>, base64: bool) -> R {
    want(a, 1, name)?;
    let d = f(str_arg(a, 0, name)?.as_bytes());
    encode(&d, base64)
}

/// The digest of the file the argument names (its raw bytes), as lowercase hex or as base64.
fn of_file(a: &[Value], name: &str, f: fn(&[u8]) -> Vec<u8>, base64: bool) -> R {
    want(a, 1, name)?;
    let d = f(&read(&str_arg(a, 0, name)?, name)?);
    encode(&d, base64)
}

fn encode(d: &[u8], base64: bool) -> R {
    use base64::Engine;
    string(if base64 { b64().encode(d) } else { hex(d) })
}

pub(super) fn md5(a: &[Value], _: &Scope<'_>) -> R {
    of_string(a, "md5", digest::<md5::Md5>, false)
}

pub(super) fn sha1(a: &[Value], _: &Scope<'_>) -> R {
    of_string(a, "sha1", digest::<sha1::Sha1>, false)
}

pub(super) fn sha256(a: &[Value], _: &Scope<'_>) -> R {
    of_string(a, "sha256", digest::<sha2::Sha256>, false)
}

pub(super) fn sha512(a: &[Value], _: &Scope<'_>) -> R {
    of_string(a, "sha512", digest::<sha2::Sha512>, false)
}

pub(super) fn base64sha256(a: &[Value], _: &Scope<'_>) -> R {
    of_string(a, "base64sha256", digest::<sha2::Sha256>, true)
}

pub(super) fn base64sha512(a: &[Value], _: &Scope<'_>) -> R {
    of_string(a, "base64sha512", digest::<sha2::Sha512>, true)
}

pub(super) fn filemd5(a: &[Value], _: &Scope<'_>) -> R {
    of_file(a, "filemd5", digest::<md5::Md5>, false)
}

pub(super) fn filesha1(a: &[Value], _: &Scope<'_>) -> R {
    of_file(a, "filesha1", digest::<sha1::Sha1>, false)
}

pub(super) fn filesha256(a: &[Value], _: &Scope<'_>) -> R {
    of_file(a, "filesha256", digest::<sha2::Sha256>, false)
}

pub(super) fn filesha512(a: &[Value], _: &Scope<'_>) -> R {
    of_file(a, "filesha512", digest::<sha2::Sha512>, false)
}

pub(super) fn filebase64sha256(a: &[Value], _: &Scope<'_>) -> R {
    of_file(a, "filebase64sha256", digest::<sha2::Sha256>, true)
}

pub(super) fn filebase64sha512(a: &[Value], _: &Scope<'_>) -> R {
    of_file(a, "filebase64sha512", digest::<sha2::Sha512>, true)
}

/// A random (version 4) UUID, different on every call, as Terraform's `uuid()`.
pub(super) fn uuid(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 0, "uuid")?;
    string(uuid::Uuid::new_v4().to_string())
}

/// A name-based (version 5, SHA-1) UUID: the namespace is `dns`, `url`, `oid`, `x500` or a UUID.
pub(super) fn uuidv5(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "uuidv5")?;
    let ns = str_arg(a, 0, "uuidv5")?;
    let namespace = match ns.as_str() {
        "dns" => uuid::Uuid::NAMESPACE_DNS,
        "url" => uuid::Uuid::NAMESPACE_URL,
        "oid" => uuid::Uuid::NAMESPACE_OID,
        "x500" => uuid::Uuid::NAMESPACE_X500,
        other => uuid::Uuid::parse_str(other).map_err(|_| {
            format!("uuidv5(): namespace must be dns, url, oid, x500 or a UUID, got {other:?}")
        })?,
    };
    let name = str_arg(a, 1, "uuidv5")?;
    string(uuid::Uuid::new_v5(&namespace, name.as_bytes()).to_string())
}
