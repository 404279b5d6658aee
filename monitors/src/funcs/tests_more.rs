//! Tests of the hash, uuid, date and time, IP network and text encoding functions, with the examples of
//! Terraform's documentation as expected results.

use super::*;
use crate::eval;

fn ev(src: &str) -> R {
    let e: hcl::Expression = src.parse().map_err(|e: hcl::Error| e.to_string())?;
    eval::eval(&e, &eval::base_scope())
}

fn ok(src: &str, want: &str) {
    assert_eq!(ev(src), Ok(Value::from(want)), "{src}");
}

fn err(src: &str, part: &str) {
    let e = ev(src).unwrap_err();
    assert!(e.contains(part), "{src}: {e}");
}

#[test]
fn hashes_of_strings() {
    ok(r#"md5("hello world")"#, "5eb63bbbe01eeed093cb22bb8f5acdc3");
    ok(
        r#"sha1("hello world")"#,
        "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed",
    );
    ok(
        r#"sha256("hello world")"#,
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
    );
    ok(
        r#"base64sha256("hello world")"#,
        "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
    );
    ok(r#"sha512("hello world")"#, "309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f");
    ok(
        r#"base64sha512("hello world")"#,
        "MJ7MSJwS1utMxA9QyQLytNDtd+5RGnx6m808qG1M2G+YndNbxf9JlnDaNCVbRbDP2DDoH2Bdz33FVC6TrpzXbw==",
    );
}

#[test]
fn hashes_of_files() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("hello.txt");
    std::fs::write(&p, "hello world").unwrap();
    let p = p.display().to_string();
    let call = |f: &str| ev(&format!("{f}({p:?})")).unwrap();
    for f in [
        "md5",
        "sha1",
        "sha256",
        "sha512",
        "base64sha256",
        "base64sha512",
    ] {
        let direct = ev(&format!("{f}(\"hello world\")")).unwrap();
        let file_fn = format!("file{f}");
        assert_eq!(call(&file_fn), direct, "{file_fn}");
    }
    err(r#"filemd5("/no/such/file")"#, "filemd5(): cannot read");
}

#[test]
fn uuids() {
    ok(
        r#"uuidv5("dns", "www.terraform.io")"#,
        "a5008fae-b28c-5ba5-96cd-82b4c53552d6",
    );
    ok(
        r#"uuidv5("url", "https://www.terraform.io/")"#,
        "9db6f67c-dd95-5ea0-aa5b-e70e5c5f7cf5",
    );
    ok(
        r#"uuidv5("oid", "1.3.6.1.4")"#,
        "af9d40a5-7a36-5c07-b23a-851cd99fbfa5",
    );
    ok(
        r#"uuidv5("x500", "CN=Example,C=GB")"#,
        "84e09961-4aa4-57f8-95b7-03edb1073253",
    );
    ok(
        r#"uuidv5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.terraform.io")"#,
        "a5008fae-b28c-5ba5-96cd-82b4c53552d6",
    );
    err(r#"uuidv5("nope", "x")"#, "namespace must be");
    let (a, b) = (ev("uuid()").unwrap(), ev("uuid()").unwrap());
    assert_ne!(a, b);
    let a = a.as_str().unwrap();
    assert_eq!((a.len(), &a[14..15]), (36, "4"), "{a}");
}

#[test]
fn dates_and_times() {
    ok(
        r#"timeadd("2017-11-22T00:00:00Z", "10m")"#,
        "2017-11-22T00:10:00Z",
    );
    ok(
        r#"timeadd("2017-11-22T00:00:00Z", "-1h30m")"#,
        "2017-11-21T22:30:00Z",
    );
    ok(
        r#"timeadd("2017-11-22T00:00:00-08:00", "1.5h")"#,
        "2017-11-22T01:30:00-08:00",
    );
    err(
        r#"timeadd("2017-11-22T00:00:00Z", "10x")"#,
        "invalid duration",
    );
    err(r#"timeadd("yesterday", "1h")"#, "not an RFC 3339 timestamp");
    let cmp = |a: &str, b: &str| ev(&format!("timecmp({a:?}, {b:?})")).unwrap();
    assert_eq!(
        cmp("2017-11-22T00:00:00Z", "2017-11-22T00:00:00Z"),
        Value::from(0)
    );
    assert_eq!(
        cmp("2017-11-22T00:00:00Z", "2017-11-22T01:00:00Z"),
        Value::from(-1)
    );
    assert_eq!(
        cmp("2017-11-22T01:00:00Z", "2017-11-22T00:00:00Z"),
        Value::from(1)
    );
    assert_eq!(
        cmp("2017-11-22T01:00:00Z", "2017-11-22T00:00:00-01:00"),
        Value::from(0)
    );
    let now = ev("timestamp()").unwrap();
    let now = now.as_str().unwrap();
    assert!(now.ends_with('Z') && now.len() == 20, "{now}");
    assert_eq!(
        ev(&format!("timecmp({now:?}, plantimestamp())"))
            .unwrap()
            .as_i64()
            .map(|c| c <= 0),
        Some(true)
    );
}

#[test]
fn formatdate_documented_examples() {
    let z = "2018-01-02T23:12:01Z";
    let pst = "2018-01-02T23:12:01-08:00";
    let f = |spec: &str, t: &str| ev(&format!("formatdate({spec:?}, {t:?})")).unwrap();
    assert_eq!(
        f("DD MMM YYYY hh:mm ZZZ", z),
        Value::from("02 Jan 2018 23:12 UTC")
    );
    assert_eq!(
        f("EEEE, DD-MMM-YY hh:mm:ss ZZZ", z),
        Value::from("Tuesday, 02-Jan-18 23:12:01 UTC")
    );
    assert_eq!(
        f("EEE, DD MMM YYYY hh:mm:ss ZZZ", pst),
        Value::from("Tue, 02 Jan 2018 23:12:01 -0800")
    );
    assert_eq!(f("MMM DD, YYYY", z), Value::from("Jan 02, 2018"));
    assert_eq!(f("HH:mmaa", z), Value::from("11:12pm"));
    assert_eq!(f("h'h'mm", pst), Value::from("23h12"));
    assert_eq!(
        f("YYYY-MM-DD'T'hh:mm:ssZ", z),
        Value::from("2018-01-02T23:12:01Z")
    );
    assert_eq!(
        f("M/D H AA ZZZZZ ZZZZ Z", pst),
        Value::from("1/2 11 PM -08:00 -0800 -08:00")
    );
    assert_eq!(
        f("MMMM EEEE 'o''clock' ''", z),
        Value::from("January Tuesday o'clock '")
    );
    err(
        r#"formatdate("YYY", "2018-01-02T23:12:01Z")"#,
        "invalid date format verb",
    );
}

#[test]
fn ip_networks() {
    ok(r#"cidrhost("10.12.112.0/20", 16)"#, "10.12.112.16");
    ok(r#"cidrhost("10.12.112.0/20", 268)"#, "10.12.113.12");
    ok(r#"cidrhost("10.12.112.0/20", -1)"#, "10.12.127.255");
    ok(
        r#"cidrhost("fd00:fd12:3456:7890:00a2::/72", 34)"#,
        "fd00:fd12:3456:7890::22",
    );
    err(r#"cidrhost("10.0.0.0/30", 4)"#, "no room for host number 4");
    ok(r#"cidrnetmask("172.16.0.0/12")"#, "255.240.0.0");
    err(r#"cidrnetmask("fd00::/8")"#, "only IPv4");
    ok(r#"cidrsubnet("172.16.0.0/12", 4, 2)"#, "172.18.0.0/16");
    ok(r#"cidrsubnet("10.1.2.0/24", 4, 15)"#, "10.1.2.240/28");
    ok(
        r#"cidrsubnet("fd00:fd12:3456:7890::/56", 16, 162)"#,
        "fd00:fd12:3456:7800:a200::/72",
    );
    err(
        r#"cidrsubnet("10.1.2.0/24", 4, 16)"#,
        "does not accommodate a subnet numbered 16",
    );
    err(
        r#"cidrsubnet("10.1.2.0/24", 10, 0)"#,
        "cannot be extended by 10 bits",
    );
    assert_eq!(
        ev(r#"cidrsubnets("10.1.0.0/16", 4, 4, 8, 4)"#),
        Ok(Value::from(vec![
            "10.1.0.0/20",
            "10.1.16.0/20",
            "10.1.32.0/24",
            "10.1.48.0/20"
        ]))
    );
    assert_eq!(
        ev(r#"cidrsubnets("fd00:fd12:3456:7890::/56", 16, 16, 16, 32)"#),
        Ok(Value::from(vec![
            "fd00:fd12:3456:7800::/72",
            "fd00:fd12:3456:7800:100::/72",
            "fd00:fd12:3456:7800:200::/72",
            "fd00:fd12:3456:7800:300::/88",
        ]))
    );
    err(
        r#"cidrsubnets("10.0.0.0/30", 1, 1, 1)"#,
        "not enough remaining address space",
    );
    err(r#"cidrhost("10.0.0.0", 1)"#, "invalid CIDR address");
}

#[test]
fn text_encodings() {
    ok(
        r#"textencodebase64("Hello World", "UTF-16LE")"#,
        "SABlAGwAbABvACAAVwBvAHIAbABkAA==",
    );
    ok(
        r#"textdecodebase64("SABlAGwAbABvACAAVwBvAHIAbABkAA==", "UTF-16LE")"#,
        "Hello World",
    );
    ok(r#"textencodebase64("é", "ISO-8859-1")"#, "6Q==");
    ok(
        r#"textdecodebase64(textencodebase64("hé", "utf-16be"), "UTF-16BE")"#,
        "hé",
    );
    err(r#"textencodebase64("é", "US-ASCII")"#, "cannot be written");
    err(
        r#"textencodebase64("x", "EBCDIC")"#,
        "kelpie knows the encodings",
    );
    ok(r#"ephemeralasnull("x")"#, "x");
}

#[test]
fn base64gzip_round_trips() {
    use base64::Engine;
    use std::io::Read;
    let b = ev(r#"base64gzip("hello world")"#).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b.as_str().unwrap())
        .unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
    let mut s = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "hello world");
}

#[test]
fn terraform_0_11_list_and_map() {
    ok(r#"join(",", list("a", "b"))"#, "a,b");
    ok(r#"jsonencode(list())"#, "[]");
    ok(r#"map("env", "prod", "team", "core")["team"]"#, "core");
    ok(
        r#"jsonencode(merge(map("a", 1), map("b", list(2))))"#,
        r#"{"a":1,"b":[2]}"#,
    );
    err(r#"map("a")"#, "in pairs");
}

#[test]
fn yaml_merge_keys_are_applied() {
    // A defaults mapping merged into each entry, its own keys winning, as Terraform's yamldecode does.
    ok(
        r#"jsonencode(yamldecode("base: &b\n  priority: 3\n  notify: \"@ops\"\ncpu:\n  <<: *b\n  priority: 1\n").cpu)"#,
        r#"{"notify":"@ops","priority":1}"#,
    );
    // A `<<` inside a string is only text.
    ok(r#"yamldecode("a: \"x << y\"\n").a"#, "x << y");
}
