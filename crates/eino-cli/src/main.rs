//! `eino`: serve the API, chat with it, ingest files, manage local models, show graphs.
//!
//! `eino serve` with no flags runs the embedded defaults on 127.0.0.1:8080 (local models are
//! fetched into the model cache first if missing). The client commands talk to a running
//! server (`--url`, default `http://127.0.0.1:8080`, `--api-key` or `EINO_API_KEY`).

mod client;

// glibc's malloc showed up at ~10 % of a proxied request's CPU; mimalloc's per-thread
// heaps cut that for the many small allocations of JSON and HTTP handling.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use eino_server::config::Config;

#[derive(Parser)]
#[command(name = "eino", version, about = "eino: LLM applications as a service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Remote {
    /// The server.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "EINO_URL")]
    url: String,
    /// API key, if the server requires one.
    #[arg(long, env = "EINO_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Listen address (overrides server.addr).
        #[arg(long)]
        addr: Option<String>,
        /// YAML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides server.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Chat interactively with an application (streams tokens, keeps one session).
    Chat {
        #[command(flatten)]
        remote: Remote,
        /// Application id (default: the server's first).
        #[arg(long)]
        app: Option<String>,
        /// Continue a session.
        #[arg(long)]
        session: Option<String>,
    },
    /// Upload a file or a directory into a knowledge base, with a progress bar.
    Ingest {
        /// File or directory.
        path: PathBuf,
        /// Knowledge base (created if missing).
        #[arg(long)]
        kb: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Local models.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Print an application's graph as Mermaid.
    Graph {
        /// Application id.
        app: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Serve MCP over stdin and stdout, for desktop MCP clients: the applications as
    /// tools (`ask_<app>`), knowledge search, knowledge bases as resources. In this process
    /// on the embedded defaults (or `--config`), or with `--url` through a running server.
    Mcp {
        /// A running eino server to forward to (its `/mcp`), instead of running in-process.
        #[arg(long, env = "EINO_URL")]
        url: Option<String>,
        /// API key for `--url`.
        #[arg(long, env = "EINO_API_KEY", hide_env_values = true, requires = "url")]
        api_key: Option<String>,
        /// YAML configuration file (in-process).
        #[arg(long, conflicts_with = "url")]
        config: Option<PathBuf>,
        /// Data directory (in-process; not one a running server uses).
        #[arg(long, conflicts_with = "url")]
        data_dir: Option<PathBuf>,
        /// The tenant whose knowledge bases are served (in-process).
        #[arg(long, default_value = "default", conflicts_with = "url")]
        tenant: String,
    },
    /// Probe a running server: exit 0 when `GET URL+PATH` answers 2xx (container
    /// health checks: the image has no curl).
    Health {
        /// The server.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "EINO_URL")]
        url: String,
        /// `/ready` (store reachable, not shutting down) or `/health` (the process answers).
        #[arg(long, default_value = "/ready")]
        path: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
    /// API key helpers.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum ModelsAction {
    /// Fetch the default local models into the cache, or with --hub a repository's files.
    Pull {
        /// A Hugging Face Hub repository (owner/name) to fetch instead of the defaults.
        #[arg(long, value_name = "REPO", requires = "file")]
        hub: Option<String>,
        /// A file of that repository (repeat for several).
        #[arg(long, value_name = "PATH", requires = "hub")]
        file: Vec<String>,
        /// A branch, tag or commit of that repository (default: main).
        #[arg(long, requires = "hub")]
        revision: Option<String>,
    },
    /// Show the default local models and whether they are cached, and the hub downloads.
    List,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Print the SHA-256 to put into auth.api_keys[].sha256.
    Hash {
        /// The key.
        key: String,
    },
}

async fn serve(
    addr: Option<String>,
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> Result<()> {
    let mut cfg = Config::load(config.as_deref(), std::env::vars())?;
    if let Some(a) = addr {
        cfg.server.addr = a;
    }
    if let Some(d) = data_dir {
        cfg.server.data_dir = d;
    }
    cfg.validate()?;
    let telemetry = eino_server::telemetry::init(&cfg.telemetry)?;
    let addr: std::net::SocketAddr = cfg.server.addr.parse().context("server.addr")?;
    eino_server::http::check_bind(addr, cfg.auth_enabled())
        .map_err(|e| anyhow::anyhow!(e.message))?;
    tracing::info!(models = ?cfg.models.keys().collect::<Vec<_>>(), "loading models");
    let registry = eino_server::registry::Registry::load(&cfg).await?;
    let state = eino_server::state::AppState::build(cfg, registry).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "eino is listening");
    eprintln!("eino is listening on http://{addr} (OpenAI-compatible API at http://{addr}/v1)");
    eino_server::http::serve(listener, state, shutdown_signal()).await?;
    telemetry.flush();
    Ok(())
}

/// `eino mcp`: the service built in this process, served over stdio (stdout carries the
/// protocol; logs go to stderr).
async fn mcp_stdio(config: Option<PathBuf>, data_dir: Option<PathBuf>, tenant: &str) -> Result<()> {
    let mut cfg = Config::load(config.as_deref(), std::env::vars())?;
    if let Some(d) = data_dir {
        cfg.server.data_dir = d;
    }
    cfg.server.web_ui = false;
    cfg.validate()?;
    let telemetry = eino_server::telemetry::init(&cfg.telemetry)?;
    let registry = eino_server::registry::Registry::load(&cfg).await?;
    let state = eino_server::state::AppState::build(cfg, registry).await?;
    eino_server::api::mcp::serve_stdio(state, tenant).await?;
    telemetry.flush();
    Ok(())
}

/// `eino mcp --url`: a running server's `/mcp`, served over stdio.
async fn mcp_proxy(url: &str, api_key: Option<String>) -> Result<()> {
    let mut server = eino_mcp::HttpServer::new(format!("{}/mcp", url.trim_end_matches('/')));
    server.bearer = api_key;
    let client = eino_mcp::McpClient::connect(
        "eino",
        eino_mcp::McpTransport::Http(server),
        eino_mcp::McpOptions::default(),
    )
    .await?;
    eino_mcp::serve_proxy_stdio(client).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn models(action: ModelsAction) -> Result<()> {
    let cache = eino_local::ModelCache::default();
    match action {
        ModelsAction::Pull {
            hub: Some(repo),
            file,
            revision,
        } => {
            let mut model = eino_local::HubModel::new(repo, file);
            model.revision = revision;
            eprintln!("fetching {} from the hub …", model.repo);
            let dir = cache
                .fetch_hub(&model, &eino_local::HubOptions::default())
                .await?;
            for f in &model.files {
                println!("{}\t{}", model.repo, dir.join(f).display());
            }
        }
        ModelsAction::Pull { hub: None, .. } => {
            tokio::task::spawn_blocking(move || -> Result<()> {
                for spec in [&eino_local::SMOLLM2, &eino_local::MINILM] {
                    eprintln!("fetching {} …", spec.name);
                    let dir = cache.ensure(spec)?;
                    println!("{}\t{}", spec.name, dir.display());
                }
                Ok(())
            })
            .await??;
        }
        ModelsAction::List => {
            for spec in [&eino_local::SMOLLM2, &eino_local::MINILM] {
                match cache.get(spec) {
                    Ok(dir) => println!("{}\tcached\t{}", spec.name, dir.display()),
                    Err(_) => println!("{}\tmissing\t(run `eino models pull`)", spec.name),
                }
            }
            for s in cache.hub_snapshots()? {
                println!(
                    "{}@{}\thub\t{}\t{}",
                    s.repo,
                    s.commit,
                    s.dir.display(),
                    s.files.join(",")
                );
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            addr,
            config,
            data_dir,
        } => serve(addr, config, data_dir).await,
        Command::Chat {
            remote,
            app,
            session,
        } => client::chat(&remote.url, remote.api_key, app, session).await,
        Command::Ingest { path, kb, remote } => {
            client::ingest(&remote.url, remote.api_key, &path, &kb).await
        }
        Command::Models { action } => models(action).await,
        Command::Graph { app, remote } => client::graph(&remote.url, remote.api_key, &app).await,
        Command::Mcp {
            url: Some(url),
            api_key,
            ..
        } => mcp_proxy(&url, api_key).await,
        Command::Mcp {
            url: None,
            config,
            data_dir,
            tenant,
            ..
        } => mcp_stdio(config, data_dir, &tenant).await,
        Command::Health {
            url,
            path,
            timeout_secs,
        } => client::health(&url, &path, std::time::Duration::from_secs(timeout_secs)).await,
        Command::Keys {
            action: KeysAction::Hash { key },
        } => {
            if key.len() < 16 {
                bail!("use a key of at least 16 characters");
            }
            println!("{}", eino_server::auth::hash_key(&key));
            Ok(())
        }
    }
}
