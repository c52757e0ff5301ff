//! The commands the documentation shows work as written, as far as they can be checked
//! without the cloud they talk to: every shell block of README.md and docs/ is valid bash
//! (`bash -n`); every `sanctum`, `kubectl sanctum` and `sanctum-media-node` command in them
//! (also as `cargo run -p ... --`) is accepted by that binary's own command-line definition
//! (subcommand, flags, required arguments, value choices); every namespace handed to
//! kubectl is one Sanctum makes (`vt-<tenant>`) or the operator's; every repository path
//! a command names exists. The manifests in those blocks are admitted by the API server in
//! `docs_examples.rs`; README.md's blocks run in `readme.rs` (each, or named with what runs
//! it), the other documents' in the e2e tests.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser as _;
use sanctum_e2e::{documentation_files, repo_root};

/// One shell block: the file, the line it starts on, its text.
struct Block {
    file: PathBuf,
    line: usize,
    text: String,
}

/// Fenced ```sh / ```bash blocks of `text`.
fn shell_blocks(file: &Path, text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let fence = line.trim_start();
        if !(fence == "```sh" || fence == "```bash" || fence == "```shell") {
            continue;
        }
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        out.push(Block {
            file: file.to_path_buf(),
            line: n + 1,
            text: body,
        });
    }
    out
}

/// The block's commands: continuation lines joined, here-document bodies and comments
/// dropped, split at pipes and command separators into words (quotes removed).
fn commands(text: &str) -> Result<Vec<Vec<String>>> {
    let mut logical = Vec::new();
    let mut current = String::new();
    let mut heredoc: Option<String> = None;
    for line in text.lines() {
        if let Some(end) = &heredoc {
            if line.trim() == end {
                heredoc = None;
            }
            continue;
        }
        if let Some(at) = line.find("<<") {
            let tag = line[at + 2..]
                .trim_start_matches('-')
                .trim()
                .trim_matches(|c| c == '\'' || c == '"');
            let tag: String = tag
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !tag.is_empty() {
                heredoc = Some(tag);
            }
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut out = Vec::new();
    for line in logical {
        let words = shlex::split(&strip_comment(&line))
            .with_context(|| format!("unbalanced quotes in: {line}"))?;
        let mut command = Vec::new();
        for word in words {
            if ["|", "||", "&&", ";", "&"].contains(&word.as_str()) {
                out.push(std::mem::take(&mut command));
            } else if let Some(head) = word.strip_suffix(';') {
                command.push(head.to_string());
                out.push(std::mem::take(&mut command));
            } else {
                command.push(word);
            }
        }
        out.push(command);
    }
    out.retain(|c| !c.is_empty());
    Ok(out)
}

/// The text with each `<placeholder>` the reader fills in (`<grant-id>`, `<status.bucket>`)
/// replaced by a word, so that neither bash nor the parsers take it for a redirection.
fn fill_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        let starts = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if starts && tail[name.len()..].starts_with('>') {
            out.push_str("PLACEHOLDER");
            rest = &tail[name.len() + 1..];
        } else {
            out.push('<');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// The line without a trailing `# comment` (a `#` that starts a word outside quotes).
fn strip_comment(line: &str) -> String {
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return line[..i].into(),
            _ => {}
        }
        previous = c;
    }
    line.into()
}

/// Words without redirections, leading `VAR=value` assignments and `$(...)` substitutions'
/// own words; a word holding a shell variable becomes a placeholder value.
fn arguments(words: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for word in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        let redirect = word.trim_start_matches(|c: char| c.is_ascii_digit() || c == '&');
        if redirect.starts_with('>') || redirect.starts_with('<') {
            skip_next = matches!(redirect, ">" | ">>" | "<");
            continue;
        }
        if out.is_empty() && word.contains('=') && !word.starts_with('-') {
            continue;
        }
        out.push(word.clone());
    }
    out
}

/// A value for a word the shell would expand (`"$T"`, `$(kubectl get ...)`): the checks
/// below are about the command's shape, not what a variable holds.
fn placeholder(word: &str) -> String {
    if word.contains('$') {
        if word.starts_with("--") {
            return word.split('=').next().unwrap_or(word).to_string() + "=1";
        }
        return "1".into();
    }
    word.to_string()
}

/// Which of our binaries `words` runs, and its arguments after the program name.
fn our_command(words: &[String]) -> Option<(&'static str, Vec<String>)> {
    let rest = |n: usize| {
        words[n..]
            .iter()
            .map(|w| placeholder(w))
            .collect::<Vec<_>>()
    };
    match words.first()?.as_str() {
        "sanctum" => Some(("sanctum", rest(1))),
        "sanctum-media-node" => Some(("sanctum-media-node", rest(1))),
        "kubectl" if words.get(1).is_some_and(|w| w == "sanctum") => {
            Some(("kubectl-sanctum", rest(2)))
        }
        "cargo" if words.get(1).is_some_and(|w| w == "run") => {
            let package = words.iter().position(|w| w == "-p" || w == "--package")? + 1;
            let separator = words.iter().position(|w| w == "--")?;
            match words.get(package)?.as_str() {
                "sanctum-operator" => Some(("sanctum", rest(separator + 1))),
                "sanctum-media-node" => Some(("sanctum-media-node", rest(separator + 1))),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Parses `args` with the binary's own definition; `Err` names what it refused.
fn parse(program: &str, args: &[String]) -> Result<(), clap::Error> {
    let argv = std::iter::once(program.to_string()).chain(args.iter().cloned());
    let outcome = match program {
        "sanctum" => sanctum_operator::cli::Cli::try_parse_from(argv).map(drop),
        "kubectl-sanctum" => sanctum_operator::cli::plugin::Plugin::try_parse_from(argv).map(drop),
        "sanctum-media-node" => sanctum_media_node::cli::Cli::try_parse_from(argv).map(drop),
        other => unreachable!("{other}"),
    };
    match outcome {
        // `--help` and `--version` are the documentation asking for help, not a mistake.
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            Ok(())
        }
        // A placeholder in a typed argument (a timestamp from `$(date ...)`) is the shell's.
        Err(e)
            if e.kind() == clap::error::ErrorKind::ValueValidation
                && args.iter().any(|a| a == "1" || a.ends_with("=1")) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// The namespace a kubectl command names, if any.
fn namespace(words: &[String]) -> Option<String> {
    let at = words.iter().position(|w| w == "-n" || w == "--namespace");
    if let Some(at) = at {
        return words.get(at + 1).cloned();
    }
    words
        .iter()
        .find_map(|w| w.strip_prefix("--namespace=").map(str::to_string))
}

/// Repository paths (`e2e/...`, `charts/...`, ...) among a command's words.
fn repository_paths(words: &[String]) -> Vec<&str> {
    const TOP: [&str; 7] = [
        "e2e/",
        "charts/",
        "docs/",
        "crds/",
        "operator/",
        "media-node/",
        ".ci/",
    ];
    words
        .iter()
        .map(|w| w.trim_start_matches("./"))
        .filter(|w| TOP.iter().any(|t| w.starts_with(t)))
        .filter(|w| !w.contains('$') && !w.contains('*') && !w.contains('<'))
        .collect()
}

fn check_block(root: &Path, block: &Block, problems: &mut Vec<String>) -> Result<usize> {
    let at = format!(
        "{}:{}",
        block
            .file
            .strip_prefix(root)
            .unwrap_or(&block.file)
            .display(),
        block.line
    );
    let text = fill_placeholders(&block.text);
    let syntax = std::process::Command::new("bash")
        .args(["-n", "-c", &text])
        .output()
        .context("running bash -n")?;
    if !syntax.status.success() {
        problems.push(format!(
            "{at}: not valid bash: {}",
            String::from_utf8_lossy(&syntax.stderr).trim()
        ));
    }
    let mut parsed = 0;
    for words in commands(&text)? {
        let words = arguments(&words);
        if words.is_empty() {
            continue;
        }
        if let Some((program, args)) = our_command(&words) {
            parsed += 1;
            if let Err(e) = parse(program, &args) {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or_default().to_string();
                problems.push(format!("{at}: `{}` is refused: {first}", words.join(" ")));
            }
        }
        // `default` holds the Events of cluster-scoped objects (a VideoTenant's), and
        // `kube-system` is where a reader checks what the cluster denies.
        if words[0] == "kubectl"
            && let Some(ns) = namespace(&words)
            && !(["sanctum-system", "default", "kube-system"].contains(&ns.as_str())
                || ns.starts_with("vt-")
                || ns.starts_with('$'))
        {
            problems.push(format!(
                "{at}: `{}` uses namespace {ns}: tenants live in vt-<tenant>, the operator in sanctum-system",
                words.join(" ")
            ));
        }
        for path in repository_paths(&words) {
            if !root.join(path).exists() {
                problems.push(format!(
                    "{at}: `{}` names {path}, which does not exist",
                    words.join(" ")
                ));
            }
        }
    }
    Ok(parsed)
}

#[test]
fn every_command_the_documentation_shows_is_accepted_as_written() -> Result<()> {
    let root = repo_root().canonicalize()?;
    let mut problems = Vec::new();
    let (mut blocks, mut parsed) = (0, 0);
    for file in documentation_files(&root)? {
        let text = std::fs::read_to_string(&file)?;
        for block in shell_blocks(&file, &text) {
            blocks += 1;
            parsed += check_block(&root, &block, &mut problems)?;
        }
    }
    ensure!(
        blocks >= 30 && parsed >= 15,
        "only {blocks} shell blocks and {parsed} of our commands found: is the extraction broken?"
    );
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    println!("{blocks} shell blocks, {parsed} commands of our binaries, all accepted");
    Ok(())
}

/// The checks refuse what a reader would trip over, so that they cannot pass by
/// matching nothing.
#[test]
fn a_wrong_flag_namespace_path_or_quote_is_found() -> Result<()> {
    let root = repo_root().canonicalize()?;
    let block = |text: &str| Block {
        file: root.join("README.md"),
        line: 1,
        text: text.into(),
    };
    let cases = [
        (
            "sanctum restore --tenant a --backup-bucket b --target-bucket c --no-such-flag\n",
            "refused",
        ),
        (
            "kubectl sanctum evidence clinic-a --format pdf\n",
            "refused",
        ),
        (
            "cargo run -p sanctum-operator -- restore-drill --tenant a\n",
            "refused",
        ),
        ("sanctum-media-node decrypt\n", "refused"),
        (
            "kubectl -n tenant-clinic-a apply -f recording.yaml\n",
            "namespace tenant-clinic-a",
        ),
        ("e2e/no-such-script.sh --fast\n", "does not exist"),
        ("echo 'unbalanced\n", "not valid bash"),
    ];
    for (text, expected) in cases {
        let mut problems = Vec::new();
        let outcome = check_block(&root, &block(text), &mut problems);
        let found = problems.iter().any(|p| p.contains(expected))
            || outcome
                .as_ref()
                .is_err_and(|e| expected == "not valid bash" && e.to_string().contains("quotes"));
        ensure!(
            found,
            "{text:?}: expected a problem with {expected:?}, got {problems:?} / {outcome:?}"
        );
    }
    // And the same shapes, written correctly, pass.
    let mut problems = Vec::new();
    let good = "sanctum restore --tenant a --backup-bucket b --target-bucket c \\\n  --keys-dir ./k   # restore\n\
                kubectl sanctum evidence clinic-a --format html -o x.html\n\
                kubectl -n vt-clinic-a get pods | head\n\
                sanctum-media-node decrypt --tenant a --key-provider aws --bucket <status.bucket> --key <status.key> \\\n  --tenant-key-dir ./k --output v.webm\n\
                e2e/test.sh\n";
    let parsed = check_block(&root, &block(good), &mut problems)?;
    ensure!(
        problems.is_empty() && parsed == 3,
        "{problems:?}, {parsed} parsed"
    );
    Ok(())
}
