//! The configuration files shipped in `deploy/` (the image's, compose's, the Kubernetes
//! base's and overlay's) load and validate the way the containers load them: file, then
//! the secrets from the environment. And the shutdown budget fits the platform's: eino's
//! `shutdown_grace_secs` ends before compose's `stop_grace_period` and Kubernetes'
//! `terminationGracePeriodSeconds` (minus the preStop pause) send SIGKILL.

use std::path::{Path, PathBuf};

use eino_server::config::Config;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

/// What docker-compose.yml and the Kubernetes Secret put into the environment.
fn secrets() -> Vec<(String, String)> {
    let hash = eino_server::auth::hash_key("a-long-enough-api-key");
    vec![
        (
            "EINO_AUTH__API_KEYS".into(),
            format!(r#"[{{sha256="{hash}",tenant="default",name="compose"}}]"#),
        ),
        (
            "EINO_STORE__DATABASE_URL".into(),
            "postgres://eino:secret@postgres:5432/eino".into(),
        ),
    ]
}

/// The first integer after `key:` in a YAML or compose file (`35s` reads as 35).
fn number_after(path: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(deploy(path)).unwrap();
    let rest = &text[text.find(key).unwrap_or_else(|| panic!("{key} in {path}")) + key.len()..];
    let digits: String = rest
        .trim_start_matches([':', ' '])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

#[test]
fn every_shipped_configuration_loads_with_its_secrets() {
    for file in [
        "eino.yaml",
        "compose/eino.yaml",
        "k8s/base/eino.yaml",
        "k8s/overlays/production/eino.yaml",
    ] {
        let cfg =
            Config::load(Some(&deploy(file)), secrets()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(cfg.server.addr, "0.0.0.0:8080", "{file}");
        assert!(cfg.auth_enabled(), "{file}: the secrets turn auth on");
        assert_eq!(
            cfg.server.data_dir,
            Path::new("/var/lib/eino"),
            "{file}: the image's volume"
        );
        let grace = cfg.server.shutdown_grace_secs;
        if file.starts_with("compose") {
            let stop = number_after("compose/docker-compose.yml", "stop_grace_period");
            assert!(
                grace < stop,
                "{file}: grace {grace} s, compose kills at {stop} s"
            );
            assert!(cfg.redis.url.is_some(), "{file}: replicas share limits");
        }
        if file.starts_with("k8s") {
            let kill = number_after("k8s/base/deployment.yaml", "terminationGracePeriodSeconds");
            let pause = 5; // the preStop sleep
            assert!(
                grace + pause < kill,
                "{file}: grace {grace} s + {pause} s, kill at {kill} s"
            );
        }
    }
    // Without its secrets the image's own configuration refuses to listen publicly:
    // `eino serve` checks this before binding (the container then exits with the reason).
    let bare = Config::load(Some(&deploy("eino.yaml")), Vec::new()).unwrap();
    assert!(!bare.auth_enabled());
    let addr = bare.server.addr.parse().unwrap();
    let refused = eino_server::http::check_bind(addr, bare.auth_enabled()).unwrap_err();
    assert!(
        refused.message.contains("without authentication"),
        "{}",
        refused.message
    );
}
