//! Terraform's JSON syntax (`*.tf.json`): the file is read with serde_json and written out as the native
//! syntax it stands for, which the rest of the loader reads like any `.tf` file. Each line written keeps the
//! place in the JSON file it came from, so errors name `file.tf.json:line:col`.
//!
//! The mapping is Terraform's: the root object's properties are block types; one nested object per label
//! (or an array of such objects); then the block body, whose properties are arguments or nested blocks.
//! Arguments that take expressions read a JSON string as a string template (`"${var.x}"` is the value of
//! `var.x`), objects and arrays as object and tuple expressions; `variable` defaults and descriptions,
//! module `source`/`version` and outputs' `description` are literal; `depends_on`, `provider`, `moved`
//! `from`/`to`, `import` `to`, a dynamic block's `iterator` and `lifecycle.ignore_changes` are references
//! given as strings. Whether a property of a monitor resource is a nested block or an argument is the
//! provider's schema, as Terraform decides it; properties named `//` are comments.

use crate::diag::{Diag, Source};
use crate::model::MONITOR_TYPES;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A JSON value that keeps its object properties in file order, duplicates included (serde_json's own
/// `Value` sorts them, and Terraform allows a block type to appear twice).
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_none<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<J, E> {
                Ok(J::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<J, E> {
                Ok(J::Num(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<J, E> {
                Ok(J::Num(n.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<J, E> {
                serde_json::Number::from_f64(n)
                    .map(J::Num)
                    .ok_or_else(|| E::custom("a number that is not finite"))
            }
            fn visit_str<E>(self, s: &str) -> Result<J, E> {
                Ok(J::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<J, E> {
                Ok(J::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(J::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = a.next_entry::<String, J>()? {
                    v.push((k, x));
                }
                Ok(J::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Nested blocks of the monitor resources (the provider's schema); any other property is an argument.
const RESOURCE_BLOCKS: &[&str] = &[
    "monitor_thresholds",
    "monitor_threshold_windows",
    "scheduling_options",
    "variables",
    "assets",
    "lifecycle",
    "dynamic",
    "warning",
    "critical",
];
/// Blocks nested inside those blocks.
const NESTED_BLOCKS: &[&str] = &[
    "evaluation_window",
    "custom_schedule",
    "recurrence",
    "event_query",
    "cloud_cost_query",
    "data_quality_query",
    "compute",
    "search",
    "group_by",
    "sort",
    "content",
    "dynamic",
];

/// Reads a `.tf.json` file as the native syntax it stands for: the text, and for each of its lines the
/// (line, column) in the JSON file it came from.
pub(super) fn to_native(src: &Source) -> Result<Source, Diag> {
    let root: J = serde_json::from_str(&src.text).map_err(|e| {
        let pos = crate::diag::Pos {
            file: src.name.clone(),
            line: e.line().max(1),
            col: e.column().max(1),
        };
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        Diag::new(
            Some(pos),
            None,
            format!("syntax error: invalid JSON: {msg}"),
        )
    })?;
    let J::Obj(top) = root else {
        return Err(Diag::new(
            Some(src.pos(0)),
            None,
            "syntax error: a .tf.json file must hold one JSON object whose properties are block types",
        ));
    };
    let mut w = Writer {
        json: src,
        cursor: 0,
        out: String::new(),
        origin: Vec::new(),
    };
    for (kind, v) in &top {
        w.locate(kind);
        write_top_block(&mut w, kind, v);
    }
    Ok(Source::mapped(src.name.clone(), w.out, w.origin))
}

/// Writes the blocks of one root property (`resource`, `variable`, ...) as native syntax; other block types
/// are skipped.
fn write_top_block(w: &mut Writer<'_>, kind: &str, v: &J) {
    match kind {
        "resource" => {
            for (labels, body) in labelled(v, 2) {
                let monitor = MONITOR_TYPES.contains(&labels[0].as_str());
                w.block("resource", &labels, body, 0, &|w, k, v, d| {
                    if !monitor {
                        // Not a monitor: only counted, so its arguments are not needed.
                        return;
                    }
                    w.resource_prop(k, v, d)
                });
            }
        }
        "variable" => {
            for (labels, body) in labelled(v, 1) {
                w.block("variable", &labels, body, 0, &|w, k, v, d| match k {
                    "type" => match v {
                        J::Str(t) => w.line(d, &format!("type = {t}")),
                        other => w.attr(d, k, &expr(other)),
                    },
                    "default" | "description" | "sensitive" | "nullable" | "ephemeral" => {
                        w.attr(d, k, &literal(v))
                    }
                    "validation" => {
                        for b in bodies(v) {
                            w.block("validation", &[], b, d, &|w, k, v, d| {
                                w.attr(d, k, &expr(v))
                            });
                        }
                    }
                    _ => w.attr(d, k, &expr(v)),
                });
            }
        }
        "locals" => {
            for body in bodies(v) {
                w.block("locals", &[], body, 0, &|w, k, v, d| w.attr(d, k, &expr(v)));
            }
        }
        "output" => {
            for (labels, body) in labelled(v, 1) {
                w.block("output", &labels, body, 0, &|w, k, v, d| match k {
                    "value" => w.attr(d, k, &expr(v)),
                    "description" | "sensitive" | "ephemeral" => w.attr(d, k, &literal(v)),
                    _ => {}
                });
            }
        }
        "module" => {
            for (labels, body) in labelled(v, 1) {
                w.block("module", &labels, body, 0, &|w, k, v, d| match k {
                    "source" | "version" => w.attr(d, k, &literal(v)),
                    "providers" | "depends_on" => {}
                    _ => w.attr(d, k, &expr(v)),
                });
            }
        }
        "moved" | "import" => {
            for body in bodies(v) {
                w.block(kind, &[], body, 0, &|w, k, v, d| match (k, v) {
                    ("from" | "to", J::Str(r)) => w.attr(d, k, r),
                    ("provider", _) => {}
                    _ => w.attr(d, k, &expr(v)),
                });
            }
        }
        // Blocks that hold nothing a monitor needs (and `//` comments).
        _ => {}
    }
}

/// The (labels, body) pairs of a block type's value with `n` labels: one nested object per label, each
/// level an object or an array of objects.
fn labelled(v: &J, n: usize) -> Vec<(Vec<String>, &J)> {
    let mut out = Vec::new();
    collect_labelled(v, n, &mut Vec::new(), &mut out);
    out
}

fn collect_labelled<'a>(
    v: &'a J,
    n: usize,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, &'a J)>,
) {
    match v {
        J::Arr(items) => {
            for i in items {
                collect_labelled(i, n, path, out);
            }
        }
        _ if n == 0 => out.push((path.clone(), v)),
        J::Obj(props) => {
            for (k, x) in props.iter().filter(|(k, _)| k != "//") {
                path.push(k.clone());
                collect_labelled(x, n - 1, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The bodies of a block type without labels: an object, or an array of objects.
fn bodies(v: &J) -> Vec<&J> {
    match v {
        J::Arr(items) => items.iter().collect(),
        other => vec![other],
    }
}

type Prop<'w> = dyn Fn(&mut Writer<'_>, &str, &J, usize) + 'w;

struct Writer<'s> {
    json: &'s Source,
    /// Where in the JSON text the search for the next property name starts.
    cursor: usize,
    out: String,
    origin: Vec<(usize, usize)>,
}

impl Writer<'_> {
    /// Moves the place that the next lines are attributed to onto property `key`: its next occurrence as a
    /// property name after the previous one (properties are visited in file order).
    fn locate(&mut self, key: &str) {
        let Ok(quoted) = serde_json::to_string(key) else {
            return;
        };
        let text = &self.json.text;
        let mut from = self.cursor;
        while let Some(i) = text.get(from..).and_then(|t| t.find(&quoted)) {
            let at = from + i;
            let after = at + quoted.len();
            if text[after..].trim_start().starts_with(':') {
                self.cursor = after;
                return;
            }
            from = after;
        }
    }

    fn here(&self) -> (usize, usize) {
        let p = self.json.pos(self.cursor.saturating_sub(1));
        (p.line, p.col)
    }

    fn line(&mut self, depth: usize, text: &str) {
        let at = self.here();
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
        for _ in 0..=text.matches('\n').count() {
            self.origin.push(at);
        }
    }

    fn attr(&mut self, depth: usize, key: &str, value: &str) {
        if is_ident(key) {
            self.line(depth, &format!("{key} = {value}"));
        }
    }

    fn block(&mut self, kind: &str, labels: &[String], body: &J, depth: usize, prop: &Prop<'_>) {
        let mut head = kind.to_string();
        for l in labels {
            self.locate(l);
            head.push(' ');
            head.push_str(&literal_str(l));
        }
        self.line(depth, &format!("{head} {{"));
        if let J::Obj(props) = body {
            for (k, v) in props.iter().filter(|(k, _)| k != "//") {
                self.locate(k);
                prop(self, k, v, depth + 1);
            }
        }
        self.line(depth, "}");
    }

    /// A property of a monitor resource's body (or of a block in it).
    fn resource_prop(&mut self, key: &str, v: &J, depth: usize) {
        let is_block = if depth == 1 {
            RESOURCE_BLOCKS.contains(&key)
        } else {
            NESTED_BLOCKS.contains(&key)
        };
        let blocky = matches!(v, J::Obj(_))
            || matches!(v, J::Arr(a) if a.iter().all(|x| matches!(x, J::Obj(_))));
        match key {
            "depends_on" | "provider" => {}
            "lifecycle" => {
                for b in bodies(v) {
                    self.block("lifecycle", &[], b, depth, &|w, k, v, d| match (k, v) {
                        ("ignore_changes", J::Str(s)) => w.attr(d, k, s),
                        ("ignore_changes", J::Arr(a)) => {
                            let refs: Vec<&str> = a
                                .iter()
                                .filter_map(|x| match x {
                                    J::Str(s) => Some(s.as_str()),
                                    _ => None,
                                })
                                .collect();
                            w.attr(d, k, &format!("[{}]", refs.join(", ")))
                        }
                        _ => w.attr(d, k, &expr(v)),
                    });
                }
            }
            "dynamic" if blocky => {
                for (labels, body) in labelled(v, 1) {
                    self.block(
                        "dynamic",
                        &labels,
                        body,
                        depth,
                        &|w, k, v, d| match (k, v) {
                            ("iterator", J::Str(s)) => w.attr(d, k, s),
                            ("content", _) => {
                                for b in bodies(v) {
                                    w.block("content", &[], b, d, &|w, k, v, d| {
                                        w.resource_prop(k, v, d.max(2))
                                    });
                                }
                            }
                            _ => w.attr(d, k, &expr(v)),
                        },
                    );
                }
            }
            _ if is_block && blocky => {
                for b in bodies(v) {
                    self.block(key, &[], b, depth, &|w, k, v, d| w.resource_prop(k, v, d));
                }
            }
            _ => self.attr(depth, key, &expr(v)),
        }
    }
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_alphabetic() || f == '_')
        && c.all(|x| x.is_alphanumeric() || x == '_' || x == '-')
}

/// A JSON value where an expression is expected: strings are templates.
fn expr(v: &J) -> String {
    match v {
        J::Str(s) => template(s),
        J::Arr(a) => format!("[{}]", a.iter().map(expr).collect::<Vec<_>>().join(", ")),
        J::Obj(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| {
                    let key = if k.contains("${") || k.contains("%{") {
                        format!("({})", template(k))
                    } else {
                        literal_str(k)
                    };
                    format!("{key} = {}", expr(v))
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        other => scalar(other),
    }
}

/// A JSON value taken literally: strings are not templates.
fn literal(v: &J) -> String {
    match v {
        J::Str(s) => literal_str(s),
        J::Arr(a) => format!("[{}]", a.iter().map(literal).collect::<Vec<_>>().join(", ")),
        J::Obj(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{} = {}", literal_str(k), literal(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        other => scalar(other),
    }
}

fn scalar(v: &J) -> String {
    match v {
        J::Null => "null".to_string(),
        J::Bool(b) => b.to_string(),
        J::Num(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A quoted native string whose text is exactly `s` (no interpolation).
fn literal_str(s: &str) -> String {
    template_literal_part(&s.replace("${", "$${").replace("%{", "%%{"), true)
}

/// `s` as a quoted native template: the literal parts escaped, the `${…}` and `%{…}` sequences kept as
/// they are (their expressions are native syntax already).
fn template(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::from("\"");
    let (mut i, mut lit) = (0, 0);
    while i < b.len() {
        let c = b[i];
        if (c == b'$' || c == b'%') && b.get(i + 1) == Some(&c) && b.get(i + 2) == Some(&b'{') {
            i += 3; // `$${` and `%%{` are escapes in both syntaxes
            continue;
        }
        if (c == b'$' || c == b'%') && b.get(i + 1) == Some(&b'{') {
            if let Some(end) = sequence_end(b, i + 2) {
                out.push_str(&template_literal_part(&s[lit..i], false));
                out.push_str(&s[i..end]);
                i = end;
                lit = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&template_literal_part(&s[lit..], false));
    out.push('"');
    out
}

/// Escapes literal text for a quoted native string (with the quotes when `quoted`).
fn template_literal_part(s: &str, quoted: bool) -> String {
    let mut out = String::new();
    if quoted {
        out.push('"');
    }
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    if quoted {
        out.push('"');
    }
    out
}

/// The end (after the closing `}`) of a `${…}` or `%{…}` sequence whose expression starts at `i`,
/// stepping over nested braces and quoted strings (which may hold sequences of their own).
fn sequence_end(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(i + 1),
            b'}' => depth -= 1,
            b'"' => {
                i = string_end(b, i + 1)?;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The end (after the closing quote) of a quoted string inside an expression that starts at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            c @ (b'$' | b'%') if b.get(i + 1) == Some(&c) && b.get(i + 2) == Some(&b'{') => i += 3,
            b'$' | b'%' if b.get(i + 1) == Some(&b'{') => i = sequence_end(b, i + 2)?,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(json: &str) -> String {
        to_native(&Source::new("t.tf.json".into(), json.into()))
            .unwrap()
            .text
    }

    #[test]
    fn templates_keep_their_sequences_and_escape_the_rest() {
        assert_eq!(template("a \"b\" ${var.x}"), r#""a \"b\" ${var.x}""#);
        assert_eq!(
            template(r#"${lookup(var.m, "k", "}")} \ %{if true}y%{endif}"#),
            r#""${lookup(var.m, "k", "}")} \\ %{if true}y%{endif}""#
        );
        assert_eq!(template("$${literal}\n"), r#""$${literal}\n""#);
        assert_eq!(literal_str("${not} %{this}"), r#""$${not} %%{this}""#);
    }

    #[test]
    fn blocks_labels_and_literals() {
        let t = native(
            r#"{"//": "generated",
                "variable": {"v": {"type": "list(string)", "default": ["${x}"]}},
                "resource": [{"datadog_monitor": {"m": {"name": "n",
                   "monitor_thresholds": [{"critical": 1}],
                   "lifecycle": {"ignore_changes": ["silenced"]}}}}],
                "moved": [{"from": "datadog_monitor.a", "to": "datadog_monitor.m"}]}"#,
        );
        assert!(t.contains("type = list(string)"), "{t}");
        assert!(t.contains(r#"default = ["$${x}"]"#), "{t}");
        assert!(t.contains("resource \"datadog_monitor\" \"m\" {"), "{t}");
        assert!(
            t.contains("  monitor_thresholds {\n    critical = 1\n  }"),
            "{t}"
        );
        assert!(t.contains("ignore_changes = [silenced]"), "{t}");
        assert!(t.contains("from = datadog_monitor.a"), "{t}");
        assert!(hcl::edit::parser::parse_body(&t).is_ok(), "{t}");
    }

    #[test]
    fn lines_map_back_to_the_json_file() {
        let json = "{\n \"locals\": {\n  \"a\": 1,\n\n  \"b\": \"${nope(\"\n }\n}\n";
        let src = to_native(&Source::new("t.tf.json".into(), json.into())).unwrap();
        let b_line = src.text.lines().position(|l| l.contains("b =")).unwrap();
        let offset: usize = src.text.lines().take(b_line).map(|l| l.len() + 1).sum();
        assert_eq!(src.pos(offset).line, 5);
        let err = to_native(&Source::new("t.tf.json".into(), "{\n \"a\": [1,\n}".into()))
            .err()
            .unwrap();
        assert_eq!(err.pos.unwrap().line, 3);
        assert!(
            err.message.starts_with("syntax error: invalid JSON"),
            "{}",
            err.message
        );
    }
}
