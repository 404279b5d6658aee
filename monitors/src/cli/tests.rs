use super::*;
use clap::Parser;

#[derive(Parser)]
struct Top {
    #[command(subcommand)]
    cmd: Sub,
}
#[derive(clap::Subcommand)]
enum Sub {
    Monitors(MonitorsArgs),
}

#[test]
fn terraform_style_var_flags() {
    let argv = [
        "kelpie",
        "monitors",
        "-var",
        "a=1",
        "plan",
        "-var=b=2",
        "-var-file",
        "x.tfvars",
        "--json",
    ];
    let args = preprocess_args(argv.iter().map(OsString::from));
    let Sub::Monitors(m) = Top::try_parse_from(args).unwrap().cmd;
    assert_eq!(m.vars, vec!["a=1", "b=2"]);
    assert_eq!(m.var_files, vec![PathBuf::from("x.tfvars")]);
    assert!(matches!(m.cmd, MonitorsCommand::Plan { json: true, .. }));
    let args = preprocess_args(
        ["kelpie", "monitors", "plan", "--format", "markdown"]
            .iter()
            .map(OsString::from),
    );
    let Sub::Monitors(m) = Top::try_parse_from(args).unwrap().cmd;
    assert!(matches!(
        m.cmd,
        MonitorsCommand::Plan {
            format: Some(Format::Markdown),
            ..
        }
    ));
    assert_eq!(pick_format(true, None), Some(Format::Json));
    assert_eq!(pick_format(true, Some(Format::Markdown)), None);
}
