//! Terraform's built-in functions that work offline, each with Terraform's documented semantics (`try` and
//! `can` are in [`crate::eval`], since they see their arguments' errors). `timestamp`, `plantimestamp` and
//! `uuid` give a new result on every run, as in Terraform (a monitor using them changes on every sync);
//! `bcrypt` is left out (its random salt makes every result different, and no monitor needs a password hash).
//! Relative file paths are read against the root module's directory, as Terraform (run there) reads them.

mod collections;
mod dates;
mod encoding;
mod files;
mod hashes;
mod net;
mod numbers;
pub mod provider;
mod strings;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_more;
mod types;

pub use encoding::{from_json, jsonencode_value};
pub use files::{root, set_root};
pub use types::{num, to_num, to_str, type_name};

use crate::eval::Scope;
use hcl::{Map, Value};

/// What a function returns: its value, or the error as one sentence.
type R = Result<Value, String>;
type F = fn(&[Value], &Scope<'_>) -> R;

/// Most files `fileset` lists and most elements `range` makes (Terraform's own limit for range).
pub(super) const MAX_LIST: usize = 10_000;

const FUNCS: &[(&str, F)] = &[
    // Numbers.
    ("abs", numbers::abs),
    ("ceil", numbers::ceil),
    ("floor", numbers::floor),
    ("log", numbers::log),
    ("max", numbers::max),
    ("min", numbers::min),
    ("parseint", numbers::parseint),
    ("pow", numbers::pow),
    ("signum", numbers::signum),
    // Strings.
    ("chomp", strings::chomp),
    ("endswith", strings::endswith),
    ("format", strings::format),
    ("formatlist", strings::formatlist),
    ("indent", strings::indent),
    ("join", strings::join),
    ("lower", strings::lower),
    ("regex", strings::regex),
    ("regexall", strings::regexall),
    ("replace", strings::replace),
    ("split", strings::split),
    ("startswith", strings::startswith),
    ("strcontains", strings::strcontains),
    ("strrev", strings::strrev),
    ("substr", strings::substr),
    ("templatestring", strings::templatestring),
    ("title", strings::title),
    ("trim", strings::trim),
    ("trimprefix", strings::trimprefix),
    ("trimspace", strings::trimspace),
    ("trimsuffix", strings::trimsuffix),
    ("upper", strings::upper),
    // Collections.
    ("alltrue", collections::alltrue),
    ("anytrue", collections::anytrue),
    ("chunklist", collections::chunklist),
    ("coalesce", collections::coalesce),
    ("coalescelist", collections::coalescelist),
    ("compact", collections::compact),
    ("concat", collections::concat),
    ("contains", collections::contains),
    ("distinct", collections::distinct),
    ("element", collections::element),
    ("flatten", collections::flatten),
    ("index", collections::index),
    ("keys", collections::keys),
    ("length", collections::length),
    ("lookup", collections::lookup),
    ("matchkeys", collections::matchkeys),
    ("merge", collections::merge),
    ("one", collections::one),
    ("range", collections::range),
    ("reverse", collections::reverse),
    ("setintersection", collections::setintersection),
    ("setproduct", collections::setproduct),
    ("setsubtract", collections::setsubtract),
    ("setunion", collections::setunion),
    ("slice", collections::slice),
    ("sort", collections::sort),
    ("sum", collections::sum),
    ("transpose", collections::transpose),
    ("values", collections::values),
    ("zipmap", collections::zipmap),
    // Encoding.
    ("base64decode", encoding::base64decode),
    ("base64encode", encoding::base64encode),
    ("base64gzip", encoding::base64gzip),
    ("csvdecode", encoding::csvdecode),
    ("jsondecode", encoding::jsondecode),
    ("jsonencode", encoding::jsonencode),
    ("textdecodebase64", encoding::textdecodebase64),
    ("textencodebase64", encoding::textencodebase64),
    ("urlencode", encoding::urlencode),
    ("yamldecode", encoding::yamldecode),
    ("yamlencode", encoding::yamlencode),
    // Files.
    ("abspath", files::abspath),
    ("basename", files::basename),
    ("dirname", files::dirname),
    ("file", files::file),
    ("filebase64", files::filebase64),
    ("fileexists", files::fileexists),
    ("fileset", files::fileset),
    ("pathexpand", files::pathexpand),
    ("templatefile", files::templatefile),
    // Hashes.
    ("base64sha256", hashes::base64sha256),
    ("base64sha512", hashes::base64sha512),
    ("filebase64sha256", hashes::filebase64sha256),
    ("filebase64sha512", hashes::filebase64sha512),
    ("filemd5", hashes::filemd5),
    ("filesha1", hashes::filesha1),
    ("filesha256", hashes::filesha256),
    ("filesha512", hashes::filesha512),
    ("md5", hashes::md5),
    ("sha1", hashes::sha1),
    ("sha256", hashes::sha256),
    ("sha512", hashes::sha512),
    ("uuid", hashes::uuid),
    ("uuidv5", hashes::uuidv5),
    // Date and time.
    ("formatdate", dates::formatdate),
    ("plantimestamp", dates::plantimestamp),
    ("timeadd", dates::timeadd),
    ("timecmp", dates::timecmp),
    ("timestamp", dates::timestamp),
    // IP networks.
    ("cidrhost", net::cidrhost),
    ("cidrnetmask", net::cidrnetmask),
    ("cidrsubnet", net::cidrsubnet),
    ("cidrsubnets", net::cidrsubnets),
    // Types.
    ("ephemeralasnull", types::identity),
    ("issensitive", types::issensitive),
    ("nonsensitive", types::identity),
    ("sensitive", types::identity),
    ("tobool", types::tobool),
    ("tolist", types::tolist),
    ("tomap", types::tomap),
    ("tonumber", types::tonumber),
    ("toset", types::toset),
    ("tostring", types::tostring),
    // Terraform 0.11's list(…) and map(…), for the older files kelpie reads (Terraform 0.15 removed them).
    ("list", types::legacy_list),
    ("map", types::legacy_map),
];

/// Names of every function (besides `try` and `can`).
pub fn names() -> impl Iterator<Item = &'static str> {
    FUNCS.iter().map(|(n, _)| *n).chain(["try", "can"])
}

/// Whether `name` is a function kelpie knows.
pub fn exists(name: &str) -> bool {
    FUNCS.iter().any(|(n, _)| *n == name)
}

/// Calls function `name`.
pub fn call(name: &str, args: &[Value], s: &Scope<'_>) -> R {
    match FUNCS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => f(args, s),
        None => Err(format!("unknown function `{name}`")),
    }
}

pub(super) fn want(args: &[Value], n: usize, name: &str) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "{name}() takes {n} argument(s), got {}",
            args.len()
        ));
    }
    Ok(())
}

pub(super) fn want_min(args: &[Value], n: usize, name: &str) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "{name}() takes at least {n} argument(s), got {}",
            args.len()
        ));
    }
    Ok(())
}

pub(super) fn as_list<'a>(v: &'a Value, name: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{name}() expects a list, got {}", type_name(v)))
}

pub(super) fn as_map<'a>(v: &'a Value, name: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{name}() expects a map, got {}", type_name(v)))
}

pub(super) fn as_int(v: &Value, name: &str) -> Result<i64, String> {
    let f = to_num(v).map_err(|e| format!("{name}(): {e}"))?;
    if f.fract() != 0.0 {
        return Err(format!("{name}() needs a whole number, got {f}"));
    }
    Ok(f as i64)
}

pub(super) fn string(s: impl Into<String>) -> R {
    Ok(Value::String(s.into()))
}

pub(super) fn str_arg(args: &[Value], i: usize, name: &str) -> Result<String, String> {
    to_str(&args[i]).map_err(|e| format!("{name}(): {e}"))
}
