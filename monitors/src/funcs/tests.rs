use super::files::glob_match;
use super::*;
use crate::eval;

fn ev(src: &str) -> R {
    let e: hcl::Expression = src.parse().map_err(|e: hcl::Error| e.to_string())?;
    eval::eval(&e, &eval::base_scope())
}

fn ok(src: &str, want: Value) {
    assert_eq!(ev(src), Ok(want), "{src}");
}

fn j(s: &str) -> Value {
    from_json(serde_json::from_str(s).unwrap())
}

#[test]
fn string_functions() {
    ok(
        r#"format("%s-%d-%.1f", "a", 3, 2.25)"#,
        Value::from("a-3-2.2"),
    );
    ok(
        r#"format("%5s|%-4d|%03d|%t|%q", "ab", 7, 5, true, "x")"#,
        Value::from("   ab|7   |005|true|\"x\""),
    );
    ok(r#"format("%v %#v", [1], "s")"#, Value::from("[1] \"s\""));
    ok(
        r#"formatlist("%s=%s", ["a", "b"], "x")"#,
        j(r#"["a=x","b=x"]"#),
    );
    ok(r#"join(",", ["a", "b"], ["c"])"#, Value::from("a,b,c"));
    ok(r#"upper(lower("AbC"))"#, Value::from("ABC"));
    ok(r#"replace("a-b-c", "-", "_")"#, Value::from("a_b_c"));
    ok(
        r#"replace("hello world", "/w(or)ld/", "$1")"#,
        Value::from("hello or"),
    );
    ok(r#"regex("[a-z]+", "53454 abc 32")"#, Value::from("abc"));
    ok(
        r#"regex("(\\d\\d\\d\\d)-(\\d\\d)", "2019-02-01")"#,
        j(r#"["2019","02"]"#),
    );
    ok(
        r#"regex("(?P<y>\\d+)-(?P<m>\\d+)", "2019-02")"#,
        j(r#"{"m":"02","y":"2019"}"#),
    );
    ok(
        r#"regexall("[a-z]+", "1234abcd5678efgh9")"#,
        j(r#"["abcd","efgh"]"#),
    );
    ok(r#"length(regexall("x", "abc")) > 0"#, Value::Bool(false));
    ok(r#"substr("hello world", 1, 4)"#, Value::from("ello"));
    ok(r#"substr("hello world", -5, -1)"#, Value::from("world"));
    ok(r#"trim("?!hello?!", "!?")"#, Value::from("hello"));
    ok(r#"trimprefix("helloworld", "hello")"#, Value::from("world"));
    ok(r#"trimsuffix("helloworld", "world")"#, Value::from("hello"));
    ok(r#"chomp("hello\n\n")"#, Value::from("hello"));
    ok(r#"indent(2, "a\nb")"#, Value::from("a\n  b"));
    ok(
        r#"startswith("hello", "he") && endswith("hello", "lo") && strcontains("hello", "ll")"#,
        Value::Bool(true),
    );
    ok(r#"strrev("abc")"#, Value::from("cba"));
    ok(r#"title("hello world")"#, Value::from("Hello World"));
    ok(r#"split(",", "a,b")"#, j(r#"["a","b"]"#));
    ok(
        r#"templatestring("Hi $${n}", { n = "x" })"#,
        Value::from("Hi x"),
    );
}

#[test]
fn collection_functions() {
    ok(r#"compact(["a", "", null, "b"])"#, j(r#"["a","b"]"#));
    ok(r#"coalescelist([], ["a"])"#, j(r#"["a"]"#));
    ok(r#"coalesce(null, "", "x")"#, Value::from("x"));
    ok(r#"zipmap(["a", "b"], [1, 2])"#, j(r#"{"a":1,"b":2}"#));
    ok(r#"range(3)"#, j("[0,1,2]"));
    ok(r#"range(1, 8, 2)"#, j("[1,3,5,7]"));
    ok(r#"range(3, 0)"#, j("[3,2,1]"));
    ok(r#"sort(["b", "a", "c"])"#, j(r#"["a","b","c"]"#));
    ok(r#"reverse([1, 2])"#, j("[2,1]"));
    ok(r#"slice(["a", "b", "c"], 1, 3)"#, j(r#"["b","c"]"#));
    ok(r#"one([])"#, Value::Null);
    ok(r#"one(["x"])"#, Value::from("x"));
    assert!(ev(r#"one(["x", "y"])"#).is_err());
    ok(r#"sum([1, 2.5, "3"])"#, Value::from(6.5));
    ok(
        r#"alltrue(["true", true]) && !anytrue([])"#,
        Value::Bool(true),
    );
    ok(r#"alltrue([])"#, Value::Bool(true));
    ok(r#"setproduct(["a", "b"], [1])"#, j(r#"[["a",1],["b",1]]"#));
    ok(
        r#"chunklist(["a", "b", "c"], 2)"#,
        j(r#"[["a","b"],["c"]]"#),
    );
    ok(r#"tobool("true")"#, Value::Bool(true));
    ok(r#"toset(["b", "a", "b"])"#, j(r#"["a","b"]"#));
    ok(r#"setunion(["b"], ["a", "b"])"#, j(r#"["a","b"]"#));
    ok(r#"setintersection(["a", "b"], ["b", "c"])"#, j(r#"["b"]"#));
    ok(r#"setsubtract(["a", "b"], ["b"])"#, j(r#"["a"]"#));
    ok(r#"index(["a", "b"], "b")"#, Value::from(1));
    ok(
        r#"matchkeys(["i-1", "i-2"], ["us", "eu"], ["eu"])"#,
        j(r#"["i-2"]"#),
    );
    ok(
        r#"transpose({ a = ["1", "2"], b = ["2"] })"#,
        j(r#"{"1":["a"],"2":["a","b"]}"#),
    );
    ok(r#"lookup(merge({a = 1}, {b = 2}), "b", 0)"#, Value::from(2));
    ok(r#"keys({b = 1, a = 2})"#, j(r#"["a","b"]"#));
    ok(r#"values({b = 1, a = 2})"#, j("[2,1]"));
    ok(r#"flatten([["a"], [["b"]], []])"#, j(r#"["a","b"]"#));
    ok(r#"element(["a", "b"], 3)"#, Value::from("b"));
    ok(r#"max([3, 9]...)"#, Value::from(9));
    ok(
        r#"parseint("ff", 16) + pow(2, 3) + signum(-4)"#,
        Value::from(262),
    );
}

#[test]
fn encoding_functions() {
    ok(
        r#"jsonencode({b = [1, "x<"], a = true})"#,
        Value::from(r#"{"a":true,"b":[1,"x\u003c"]}"#),
    );
    ok(r#"jsondecode("{\"a\": [1, 2.5]}")"#, j(r#"{"a":[1,2.5]}"#));
    ok(
        r#"yamldecode("a: 1\nb: [x, y]\n")"#,
        j(r#"{"a":1,"b":["x","y"]}"#),
    );
    ok(
        r#"csvdecode("a,b\n1,\"x,y\"\n")"#,
        j(r#"[{"a":"1","b":"x,y"}]"#),
    );
    ok(
        r#"urlencode("Hello World!")"#,
        Value::from("Hello+World%21"),
    );
    ok(r#"base64decode(base64encode("hi"))"#, Value::from("hi"));
    ok(
        r#"sha256("hello")"#,
        Value::from("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
    );
}

#[test]
fn paths_and_globs() {
    ok(r#"basename("foo/bar/baz.txt")"#, Value::from("baz.txt"));
    ok(r#"dirname("foo/bar/baz.txt")"#, Value::from("foo/bar"));
    ok(r#"dirname("baz.txt")"#, Value::from("."));
    let g = |p: &str, n: &str| {
        glob_match(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    };
    assert!(g("*.yaml", "a.yaml"));
    assert!(!g("*.yaml", "d/a.yaml"));
    assert!(g("**/*.yaml", "a.yaml"));
    assert!(g("**/*.yaml", "d/e/a.yaml"));
    assert!(g("{a,b}.[jy]son", "b.json"));
    assert!(g("m?.tf", "m1.tf"));
}

#[test]
fn fileset_reads_against_the_root_and_cleans_the_pattern() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("m/deep")).unwrap();
    for f in ["m/a.yaml", "m/b.json", "m/deep/c.yaml"] {
        std::fs::write(t.path().join(f), "x: 1\n").unwrap();
    }
    let before = set_root(t.path());
    let got = (
        ev(r#"fileset(".", "./m/*.yaml")"#),
        ev(r#"fileset("m", "**/*.yaml")"#),
    );
    set_root(&before);
    assert_eq!(got.0, Ok(j(r#"["m/a.yaml"]"#)));
    assert_eq!(got.1, Ok(j(r#"["a.yaml","deep/c.yaml"]"#)));
}

#[test]
fn errors_are_sentences() {
    assert!(ev(r#"lookup({a = 1}, "z")"#)
        .unwrap_err()
        .contains("no key \"z\""));
    assert!(ev(r#"tonumber("x")"#)
        .unwrap_err()
        .contains("cannot convert"));
    assert!(ev(r#"regex("(", "x")"#)
        .unwrap_err()
        .starts_with("regex(): invalid regular expression"));
}

#[test]
fn numbers_become_text_as_terraform_writes_them() {
    // Terraform's 512-bit arithmetic makes these exact; an f64's rounding noise must not show.
    ok("tostring(100 * 1.1)", Value::from("110"));
    ok("tostring(0.1 + 0.2)", Value::from("0.3"));
    ok("tostring(10 / 4)", Value::from("2.5"));
    ok("tostring(90 * 0.9)", Value::from("81"));
    ok("tostring(0.7 + 0.1)", Value::from("0.8"));
    ok("tostring(80 * 1.15)", Value::from("92"));
    ok("tostring(0.1 * 3)", Value::from("0.3"));
    ok(r#""${0.1 + 0.2} ${100 * 1.1}""#, Value::from("0.3 110"));
    ok("jsonencode([0.1 + 0.2])", Value::from("[0.3]"));
    // No exponent, as Go's Text('f', -1) writes it.
    ok("tostring(0.0000001)", Value::from("0.0000001"));
    ok("tostring(1e21)", Value::from("1000000000000000000000"));
    ok("tostring(-2.5 * 2)", Value::from("-5"));
    ok("tostring(0.123456789012)", Value::from("0.123456789012"));
    // Inexact even at 512 bits: Terraform writes ~155 digits, kelpie the 15 an f64 holds.
    ok("tostring(1 / 3)", Value::from("0.333333333333333"));
}
