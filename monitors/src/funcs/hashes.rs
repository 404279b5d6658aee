//! Hash functions: sha256, sha512 and their base64 forms.

use super::encoding::b64;
use super::{str_arg, string, want, R};
use crate::eval::Scope;
use hcl::Value;

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn sha256(a: &[Value], _: &Scope<'_>) -> R {
    use sha2::Digest;
    want(a, 1, "sha256")?;
    string(hex(&sha2::Sha256::digest(str_arg(a, 0, "sha256")?)))
}

pub(super) fn sha512(a: &[Value], _: &Scope<'_>) -> R {
    use sha2::Digest;
    want(a, 1, "sha512")?;
    string(hex(&sha2::Sha512::digest(str_arg(a, 0, "sha512")?)))
}

pub(super) fn base64sha256(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    use sha2::Digest;
    want(a, 1, "base64sha256")?;
    string(b64().encode(sha2::Sha256::digest(str_arg(a, 0, "base64sha256")?)))
}

pub(super) fn base64sha512(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    use sha2::Digest;
    want(a, 1, "base64sha512")?;
    string(b64().encode(sha2::Sha512::digest(str_arg(a, 0, "base64sha512")?)))
}
