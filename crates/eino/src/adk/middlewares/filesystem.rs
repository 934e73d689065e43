//! [`Filesystem`]: file tools over a [`FileBackend`] — `ls`, `read_file` (numbered lines,
//! a window), `write_file`, `edit_file` (exact replacement) and `grep` — so an agent can
//! keep notes and intermediate results out of its context (Eino's `filesystem`
//! middleware). [`Filesystem::in_session`] keeps each run's files in its session
//! ([`SessionFiles`]).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::adk::filesystem::{FileBackend, SessionFiles};
use crate::adk::run::tool_args;
use crate::adk::{AgentMiddleware, AgentRun};
use crate::component::{Tool, ToolOptions};
use crate::error::{Error, Result};
use crate::schema::ToolInfo;

/// File tools over a backend.
///
/// [`Filesystem`]: file tools over a [`FileBackend`] — `ls`, `read_file` (numbered lines,
/// a window), `write_file`, `edit_file` (exact replacement) and `grep` — so an agent can
/// keep notes and intermediate results out of its context (Eino's `filesystem`
/// middleware). [`Filesystem::in_session`] keeps each run's files in its session
/// ([`SessionFiles`]).
#[derive(Clone)]
pub struct Filesystem {
    /// `None`: the calling run's [`SessionFiles`].
    backend: Option<Arc<dyn FileBackend>>,
}

impl std::fmt::Debug for Filesystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filesystem")
    }
}

impl Filesystem {
    /// Tools over `backend`.
    pub fn new(backend: Arc<dyn FileBackend>) -> Self {
        Self {
            backend: Some(backend),
        }
    }

    /// Tools over each run's own files, kept in its session.
    pub fn in_session() -> Self {
        Self { backend: None }
    }
}

#[derive(Deserialize, JsonSchema)]
struct Ls {
    /// The directory ("/" for the top).
    #[serde(default)]
    path: String,
}

#[derive(Deserialize, JsonSchema)]
struct Read {
    /// The file.
    path: String,
    /// First line to show, from 1 (default 1).
    #[serde(default)]
    offset: Option<usize>,
    /// Most lines to show (default 200).
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize, JsonSchema)]
struct Write {
    /// The file.
    path: String,
    /// Its whole new content.
    content: String,
}

#[derive(Deserialize, JsonSchema)]
struct Edit {
    /// The file.
    path: String,
    /// Text to replace; must occur exactly once unless `replace_all`.
    old_text: String,
    /// The replacement.
    new_text: String,
    /// Replace every occurrence.
    #[serde(default)]
    replace_all: bool,
}

#[derive(Deserialize, JsonSchema)]
struct Grep {
    /// Text to find (plain text, case-sensitive).
    pattern: String,
    /// Directory to search ("/" for everything).
    #[serde(default)]
    path: String,
}

/// Most matching lines `grep` returns.
const GREP_MAX: usize = 100;

type Run<A> = fn(Arc<dyn FileBackend>, A) -> BoxFuture<'static, Result<String>>;

/// One file tool: a name, a description, typed arguments and what it does.
struct FileTool<A> {
    name: &'static str,
    description: &'static str,
    backend: Option<Arc<dyn FileBackend>>,
    run: Run<A>,
}

impl<A: DeserializeOwned + JsonSchema + Send + 'static> Tool for FileTool<A> {
    fn info(&self) -> ToolInfo {
        ToolInfo::of::<A>(self.name, self.description)
    }
    fn call<'a>(
        &'a self,
        arguments: &'a str,
        options: &'a ToolOptions,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let args: A = tool_args(self.name, arguments)?;
            let backend = match &self.backend {
                Some(b) => b.clone(),
                None => {
                    let run = AgentRun::of_tool(options, self.name)?;
                    Arc::new(SessionFiles::of(run.clone())) as Arc<dyn FileBackend>
                }
            };
            (self.run)(backend, args).await
        })
    }
}

fn ls(b: Arc<dyn FileBackend>, a: Ls) -> BoxFuture<'static, Result<String>> {
    Box::pin(async move {
        let entries = b.list(&a.path).await?;
        if entries.is_empty() {
            return Ok("(empty)".into());
        }
        Ok(entries
            .into_iter()
            .map(|e| {
                if e.is_dir {
                    format!("{}/", e.path)
                } else {
                    e.path
                }
            })
            .collect::<Vec<_>>()
            .join("\n"))
    })
}

fn read(b: Arc<dyn FileBackend>, a: Read) -> BoxFuture<'static, Result<String>> {
    Box::pin(async move {
        let text = b.read(&a.path).await?;
        let start = a.offset.unwrap_or(1).max(1);
        let limit = a.limit.unwrap_or(200);
        let lines: Vec<String> = text
            .lines()
            .enumerate()
            .skip(start - 1)
            .take(limit)
            .map(|(i, l)| format!("{:>6}\t{l}", i + 1))
            .collect();
        Ok(if lines.is_empty() {
            "(no lines there)".into()
        } else {
            lines.join("\n")
        })
    })
}

fn write(b: Arc<dyn FileBackend>, a: Write) -> BoxFuture<'static, Result<String>> {
    Box::pin(async move {
        let n = a.content.len();
        b.write(&a.path, a.content).await?;
        Ok(format!("wrote {n} bytes to {}", a.path))
    })
}

fn edit(b: Arc<dyn FileBackend>, a: Edit) -> BoxFuture<'static, Result<String>> {
    Box::pin(async move {
        let text = b.read(&a.path).await?;
        let n = text.matches(&a.old_text).count();
        if a.old_text.is_empty() || n == 0 {
            return Err(Error::invalid_input(format!(
                "the text is not in {}",
                a.path
            )));
        }
        if n > 1 && !a.replace_all {
            return Err(Error::invalid_input(format!(
                "the text occurs {n} times in {}; give more context or set replace_all",
                a.path
            )));
        }
        let new = if a.replace_all {
            text.replace(&a.old_text, &a.new_text)
        } else {
            text.replacen(&a.old_text, &a.new_text, 1)
        };
        b.write(&a.path, new).await?;
        Ok(format!(
            "replaced {} occurrence(s) in {}",
            if a.replace_all { n } else { 1 },
            a.path
        ))
    })
}

fn grep(b: Arc<dyn FileBackend>, a: Grep) -> BoxFuture<'static, Result<String>> {
    Box::pin(async move {
        let mut out = Vec::new();
        let mut dirs = vec![a.path.clone()];
        while let Some(d) = dirs.pop() {
            for e in b.list(&d).await? {
                if e.is_dir {
                    dirs.push(e.path);
                    continue;
                }
                // Unreadable (too big, not text) files are skipped, not fatal.
                let Ok(text) = b.read(&e.path).await else {
                    continue;
                };
                for (i, line) in text.lines().enumerate() {
                    if line.contains(&a.pattern) {
                        out.push(format!("{}:{}: {line}", e.path, i + 1));
                        if out.len() == GREP_MAX {
                            out.push(format!("(stopped at {GREP_MAX} matches)"));
                            return Ok(out.join("\n"));
                        }
                    }
                }
            }
        }
        Ok(if out.is_empty() {
            "no matches".into()
        } else {
            out.join("\n")
        })
    })
}

impl AgentMiddleware for Filesystem {
    fn instruction(&self) -> Option<String> {
        Some(
            "You have files: use ls, read_file, write_file, edit_file and grep to keep notes and \
             intermediate results there instead of in the conversation."
                .into(),
        )
    }

    fn tools(&self) -> Vec<Arc<dyn Tool>> {
        let b = || self.backend.clone();
        vec![
            Arc::new(FileTool {
                name: "ls",
                description: "List a directory.",
                backend: b(),
                run: ls,
            }),
            Arc::new(FileTool {
                name: "read_file",
                description: "Read a file's lines (numbered).",
                backend: b(),
                run: read,
            }),
            Arc::new(FileTool {
                name: "write_file",
                description: "Create or replace a file.",
                backend: b(),
                run: write,
            }),
            Arc::new(FileTool {
                name: "edit_file",
                description: "Replace exact text in a file.",
                backend: b(),
                run: edit,
            }),
            Arc::new(FileTool {
                name: "grep",
                description: "Find lines containing a text in the files.",
                backend: b(),
                run: grep,
            }),
        ]
    }
}
