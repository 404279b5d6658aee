use super::*;

fn ev(src: &str) -> R {
    let mut s = base_scope();
    let mut var = Map::new();
    var.insert("enabled".into(), Value::from("true"));
    var.insert("n".into(), Value::from("5"));
    var.insert("tags".into(), Value::from(vec!["a:1", "b:2"]));
    s.set("var", Value::Object(var));
    let mut m = Map::new();
    m.insert("vpc".into(), Value::from(EXTERNAL_MODULE));
    s.set("module", Value::Object(m));
    let e: Expression = src.parse().map_err(|e: hcl::Error| e.to_string())?;
    eval(&e, &s)
}

#[test]
fn conversions_as_terraform() {
    assert_eq!(ev(r#"var.enabled ? 1 : 0"#), Ok(Value::from(1)));
    assert_eq!(ev(r#""true" && true"#), Ok(Value::Bool(true)));
    assert_eq!(ev(r#"var.n + 1"#), Ok(Value::from(6)));
    assert_eq!(ev(r#"7 / 2"#), Ok(Value::from(3.5)));
    assert_eq!(ev(r#"1 == 1.0"#), Ok(Value::Bool(true)));
    assert_eq!(ev(r#""1" == 1"#), Ok(Value::Bool(false)));
    assert_eq!(ev(r#"!"false""#), Ok(Value::Bool(true)));
    assert!(ev(r#""yes" && true"#)
        .unwrap_err()
        .contains("the string \"yes\""));
}

#[test]
fn try_and_can_see_errors() {
    assert_eq!(ev(r#"try(var.nope.x, "d")"#), Ok(Value::from("d")));
    assert_eq!(ev(r#"can(var.tags[5])"#), Ok(Value::Bool(false)));
    assert_eq!(ev(r#"can(var.tags[1])"#), Ok(Value::Bool(true)));
    assert_eq!(
        ev(r#"[for t in var.tags : try(split(":", t)[1], "")]"#),
        Ok(Value::from(vec!["1", "2"]))
    );
    // Short-circuit: the right side is not evaluated.
    assert_eq!(ev(r#"false && var.nope"#), Ok(Value::Bool(false)));
}

#[test]
fn errors_name_the_reference() {
    assert_eq!(
        ev("var.tagz").unwrap_err(),
        "there is no variable \"tagz\" (declare it with a variable block); did you mean \"tags\"?"
    );
    assert!(ev("module.vpc.id")
        .unwrap_err()
        .contains("registry or git source"));
    assert_eq!(
            ev("aws_sqs_queue.dlq.name").unwrap_err(),
            "`aws_sqs_queue.dlq.name` is an attribute of a resource that kelpie does not read; only Terraform knows its value"
        );
    assert!(ev("data.aws_region.current.name")
        .unwrap_err()
        .starts_with("`data.aws_region.current` is a data source"));
    assert_eq!(
        ev("lenght([])").unwrap_err(),
        "unknown function `lenght`; did you mean \"length\"?"
    );
    assert!(ev("var.tags[7]")
        .unwrap_err()
        .contains("out of range for `var.tags`"));
}

#[test]
fn templates_and_for() {
    assert_eq!(ev(r#""${var.enabled}""#), Ok(Value::from("true")));
    assert_eq!(
        ev(r#""%{ for t in var.tags ~}${t} %{ endfor ~}""#),
        Ok(Value::from("a:1 b:2 "))
    );
    assert_eq!(
        ev(r#"{ for k, v in { b = 1, a = 2 } : v => k }"#),
        Ok(Value::Object(
            [
                ("2".to_string(), Value::from("a")),
                ("1".to_string(), Value::from("b"))
            ]
            .into_iter()
            .collect()
        ))
    );
    assert_eq!(
        ev(r#"{ for t in ["a", "b", "a"] : t => t... }"#)
            .unwrap()
            .as_object()
            .unwrap()["a"],
        Value::from(vec!["a", "a"])
    );
    assert_eq!(
        ev(r#"[{ n = 1 }, { n = 2 }][*].n"#),
        Ok(Value::from(vec![1, 2]))
    );
    assert!(ev(r#""x${null}""#).unwrap_err().contains("null"));
}

#[test]
fn conditional_results_unify_to_one_type() {
    assert_eq!(ev(r#"false ? "a" : 1"#), Ok(Value::from("1")));
    assert_eq!(ev(r#"true ? 1 : "2""#), Ok(Value::from("1")));
    assert_eq!(ev(r#"true ? true : "x""#), Ok(Value::from("true")));
    assert_eq!(ev(r#"true ? 0.1 + 0.2 : "x""#), Ok(Value::from("0.3")));
    // Same types, or a null: nothing converts.
    assert_eq!(ev(r#"true ? 1 : 2"#), Ok(Value::from(1)));
    assert_eq!(ev(r#"true ? 1 : null"#), Ok(Value::from(1)));
    assert_eq!(ev(r#"false ? "a" : null"#), Ok(Value::Null));
    // Tuples of one length element by element, objects attribute by attribute.
    assert_eq!(
        ev(r#"true ? [1, "a", true] : ["b", 2, false]"#),
        Ok(Value::from(vec![
            Value::from("1"),
            Value::from("a"),
            Value::Bool(true)
        ]))
    );
    let o = ev(r#"true ? { n = 5, s = "x" } : { n = "five", s = "y" }"#).unwrap();
    assert_eq!(
        o.as_object().and_then(|o| o.get("n")),
        Some(&Value::from("5"))
    );
    // A list of strings with a tuple of numbers: one element type, string.
    assert_eq!(
        ev(r#"false ? var.tags : [1, 2, 3]"#),
        Ok(Value::from(vec!["1", "2", "3"]))
    );
    // A number and a bool have no common type: Terraform refuses the conditional.
    let e = ev(r#"true ? 1 : false"#).unwrap_err();
    assert!(e.contains("consistent types"), "{e}");
    // An error in the other result leaves its type unknown: the taken one stays as it is.
    assert_eq!(ev(r#"true ? 1 : var.nope"#), Ok(Value::from(1)));
}
