//! README.md's fenced blocks, and the shell of a new user that runs them (the README
//! walkthrough in `tests/readme.rs`, and the tests that run a block on their own tenant).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, ensure};

use crate::{repo_root, workspace_binary};

/// A fenced block: its line in the README and its text.
pub struct Block {
    /// Line of its opening fence.
    pub line: usize,
    /// Its text, without the fences.
    pub text: String,
}

/// Every fenced block of `readme`.
pub fn fenced_blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = readme.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if !line.starts_with("```") {
            continue;
        }
        let mut text = String::new();
        for (_, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            text.push_str(l);
            text.push('\n');
        }
        out.push(Block { line: n + 1, text });
    }
    out
}

/// README.md's one block that begins with `first`.
pub fn block(first: &str) -> Result<Block> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let mut found = fenced_blocks(&readme)
        .into_iter()
        .filter(|b| b.text.starts_with(first));
    let block = found
        .next()
        .with_context(|| format!("README.md has no block beginning {first:?}"))?;
    ensure!(
        found.next().is_none(),
        "README.md has several blocks beginning {first:?}"
    );
    Ok(block)
}

/// The block after its substitutions; each must match.
pub fn substitute(block: &Block, subs: &[(&str, &str)]) -> Result<String> {
    let mut script = block.text.clone();
    for (from, to) in subs {
        ensure!(
            script.contains(from),
            "README.md:{}: substitution {from:?} no longer matches the block:\n{}",
            block.line,
            block.text
        );
        script = script.replace(from, to);
    }
    Ok(script)
}

/// A new user's shell: bash with `-euo pipefail`, each block in a process group of its own.
pub struct Shell {
    /// Its home directory.
    pub home: tempfile::TempDir,
    /// Its working directory, with `docs/` and `charts/` of the repository.
    pub work: PathBuf,
    env: BTreeMap<String, String>,
    started: Vec<Child>,
}

impl Shell {
    /// A shell with a new home and working directory, the workspace's `sanctum` and
    /// `sanctum-media-node` on the `PATH` (with `~/.local/bin`), this process's environment
    /// (the local cluster's) and `env` on top.
    pub fn new(env: &[(&str, String)]) -> Result<Self> {
        let home = tempfile::tempdir()?;
        let work = home.path().join("work");
        let bin = home.path().join("bin");
        std::fs::create_dir_all(&work)?;
        std::fs::create_dir_all(&bin)?;
        for dir in ["docs", "charts"] {
            std::os::unix::fs::symlink(repo_root().join(dir), work.join(dir))?;
        }
        for name in ["sanctum", "sanctum-media-node"] {
            std::os::unix::fs::symlink(workspace_binary(name)?, bin.join(name))?;
        }
        let path = format!(
            "{}/.local/bin:{}:{}",
            home.path().display(),
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut vars = BTreeMap::from([
            ("HOME".to_string(), home.path().display().to_string()),
            ("PATH".to_string(), path),
        ]);
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Ok(Self {
            home,
            work,
            env: vars,
            started: Vec::new(),
        })
    }

    fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c", script])
            .current_dir(&self.work)
            .envs(&self.env)
            .stdin(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }

    /// Runs `script` to its end; its output. What it left running in the background (a
    /// `serve &`) is stopped when it ends, as when its terminal is closed.
    pub fn run(&self, line: usize, script: &str) -> Result<String> {
        println!("README.md:{line}: running\n{script}");
        let out = tempfile::NamedTempFile::new()?;
        let err = tempfile::NamedTempFile::new()?;
        let mut child = self
            .command(script)
            .stdout(out.reopen()?)
            .stderr(err.reopen()?)
            .spawn()?;
        let status = child.wait()?;
        kill_group(&mut child);
        let stdout = std::fs::read_to_string(out.path())?;
        let stderr = std::fs::read_to_string(err.path())?;
        ensure!(
            status.success(),
            "README.md:{line}: the block exited {:?}\n--- block\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            status.code()
        );
        println!("{stdout}{stderr}");
        Ok(stdout)
    }

    /// Starts `script` and leaves it running; its output goes to `log`.
    pub fn start(&mut self, line: usize, script: &str, log: &Path) -> Result<()> {
        println!("README.md:{line}: starting\n{script}");
        let file = std::fs::File::create(log)?;
        let child = self
            .command(script)
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        self.started.push(child);
        Ok(())
    }
}

/// Stops `child`'s process group (each block runs in one of its own).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}

impl Drop for Shell {
    fn drop(&mut self) {
        for child in &mut self.started {
            kill_group(child);
        }
    }
}
