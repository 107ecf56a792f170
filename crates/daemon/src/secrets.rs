//! The daemon's three secrets: the pool-report HMAC secret, the admin API
//! key, and the master key personal API keys are derived from.
//!
//! Each comes from, in order: its environment variable (the seed's names),
//! a `*_FILE` environment variable or `[secrets] *_file` path, systemd's
//! `$CREDENTIALS_DIRECTORY/<name>`, a container secret `/run/secrets/<name>`
//! (where Docker, Podman and Compose mount `secrets:`), or — when none is
//! there — a file generated on first start under `<data_dir>/secrets/` with
//! mode 0600. `<name>` is `report_secret`, `admin_api_key` or `master_key`.
//! Values are never logged; only where they came from.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use zeroize::Zeroizing;

use crate::config::Config;

/// A secret value. `Debug` never shows it and memory is wiped on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone)]
pub struct Secrets {
    pub report_secret: Secret,
    pub admin_api_key: Secret,
    pub master_key: Secret,
    /// The development secret of `auth.allow_shared` miners: its own
    /// secret, so such a miner can never sign pool reports. Without
    /// `allow_shared` it is random and never written anywhere.
    pub shared_secret: Secret,
}

/// Where a secret was found, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Env(&'static str),
    File(PathBuf),
    Generated(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Generated(path) => write!(f, "generated on first start at {}", path.display()),
        }
    }
}

struct Spec {
    /// File name under `<data_dir>/secrets/` and under `$CREDENTIALS_DIRECTORY`.
    name: &'static str,
    env: &'static str,
    env_file: &'static str,
}

/// Where container engines mount the `secrets:` of a compose file.
pub const CONTAINER_SECRETS_DIR: &str = "/run/secrets";

const REPORT: Spec = Spec {
    name: "report_secret",
    env: "REPORT_SHARED_SECRET",
    env_file: "REPORT_SHARED_SECRET_FILE",
};
const ADMIN: Spec = Spec {
    name: "admin_api_key",
    env: "MINING_SERVER_API_KEY",
    env_file: "MINING_SERVER_API_KEY_FILE",
};
const SHARED: Spec = Spec {
    name: "shared_secret",
    env: "POOLDESK_SHARED_SECRET",
    env_file: "POOLDESK_SHARED_SECRET_FILE",
};
const MASTER: Spec = Spec {
    name: "master_key",
    env: "POOLDESK_MASTER_KEY",
    env_file: "POOLDESK_MASTER_KEY_FILE",
};

impl Secrets {
    /// Loads (or generates) all secrets. Returns them with their origins.
    pub fn load(
        config: &Config,
        env: &[(String, String)],
    ) -> anyhow::Result<(Secrets, Vec<(&'static str, Origin)>)> {
        Self::load_with(config, env, Path::new(CONTAINER_SECRETS_DIR))
    }

    /// [`Secrets::load`] with the container secrets directory named (tests).
    fn load_with(
        config: &Config,
        env: &[(String, String)],
        container_dir: &Path,
    ) -> anyhow::Result<(Secrets, Vec<(&'static str, Origin)>)> {
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let dir = config.data_dir.join("secrets");
        let credentials = lookup("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let mut origins = Vec::new();
        let mut one = |spec: &Spec, file: &Option<PathBuf>| -> anyhow::Result<Secret> {
            let places = Places {
                configured_file: file.as_deref(),
                credentials: credentials.as_deref(),
                container: container_dir,
                generated: &dir,
            };
            let (secret, origin) = resolve(spec, &places, &lookup)?;
            origins.push((spec.name, origin));
            Ok(secret)
        };
        let report_secret = one(&REPORT, &config.secrets.report_secret_file)?;
        let admin_api_key = one(&ADMIN, &config.secrets.admin_api_key_file)?;
        let master_key = one(&MASTER, &config.secrets.master_key_file)?;
        let shared_secret = if config.auth.allow_shared {
            one(&SHARED, &config.secrets.shared_secret_file)?
        } else {
            let mut raw = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(raw.as_mut());
            Secret::new(hex::encode(&raw[..]).into_bytes())
        };
        anyhow::ensure!(
            shared_secret.expose() != report_secret.expose(),
            "the shared development secret must differ from the report secret (it would let shared-key miners sign pool reports)"
        );
        Ok((
            Secrets {
                report_secret,
                admin_api_key,
                master_key,
                shared_secret,
            },
            origins,
        ))
    }

    /// Path of a generated secret, for documentation and the demo banner.
    pub fn generated_path(data_dir: &Path, name: &str) -> PathBuf {
        data_dir.join("secrets").join(name)
    }
}

/// The places a secret may come from besides the environment.
struct Places<'a> {
    /// `[secrets] <name>_file`.
    configured_file: Option<&'a Path>,
    /// systemd's `$CREDENTIALS_DIRECTORY`.
    credentials: Option<&'a Path>,
    /// [`CONTAINER_SECRETS_DIR`].
    container: &'a Path,
    /// `<data_dir>/secrets`.
    generated: &'a Path,
}

fn resolve(
    spec: &Spec,
    places: &Places<'_>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<(Secret, Origin)> {
    if let Some(value) = lookup(spec.env) {
        let value = value.trim().to_string();
        anyhow::ensure!(!value.is_empty(), "{} is set but empty", spec.env);
        return Ok((Secret::new(value.into_bytes()), Origin::Env(spec.env)));
    }
    let file = lookup(spec.env_file)
        .map(PathBuf::from)
        .or_else(|| places.configured_file.map(Path::to_path_buf))
        .or_else(|| {
            places
                .credentials
                .map(|dir| dir.join(spec.name))
                .filter(|path| path.exists())
        })
        .or_else(|| Some(places.container.join(spec.name)).filter(|path| path.exists()));
    if let Some(path) = file {
        let value = read_secret_file(&path)?;
        return Ok((value, Origin::File(path)));
    }
    let path = places.generated.join(spec.name);
    if path.exists() {
        return Ok((read_secret_file(&path)?, Origin::File(path)));
    }
    let value = generate(&path)?;
    Ok((value, Origin::Generated(path)))
}

fn read_secret_file(path: &Path) -> anyhow::Result<Secret> {
    use std::os::unix::fs::MetadataExt;
    let mode = fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("secret file {}: cannot read: {e}", path.display()))?
        .mode();
    // A secret others can read is a leaked secret; one others can write
    // lets them choose it.
    anyhow::ensure!(
        mode & 0o077 == 0,
        "secret file {} is accessible to group or others (mode {:o}); chmod 600 it",
        path.display(),
        mode & 0o7777
    );
    let text = fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("secret file {}: cannot read: {e}", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    anyhow::ensure!(!value.is_empty(), "secret file {} is empty", path.display());
    Ok(Secret::new(value.into_bytes()))
}

/// 32 random bytes as 64 hex characters, written 0600 in a 0700 directory.
/// `create_new` so two starting daemons never overwrite each other's key.
fn generate(path: &Path) -> anyhow::Result<Secret> {
    let dir = path.parent().expect("secret path has a parent");
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    let text = Zeroizing::new(hex::encode(&raw[..]));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create secret file {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(Secret::new(text.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container secrets directory that does not exist: the tests must
    /// not depend on whatever the machine has under /run/secrets.
    fn no_container(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("no-run-secrets")
    }

    fn config_in(dir: &tempfile::TempDir) -> Config {
        Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(path: &Path, text: &str) -> PathBuf {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        // As an operator must leave them: closed to group and others.
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
        path.to_path_buf()
    }

    #[test]
    fn container_secrets_are_read_from_run_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let run_secrets = dir.path().join("run-secrets");
        let report = write(&run_secrets.join("report_secret"), "from-compose\n");
        let admin = write(&run_secrets.join("admin_api_key"), "admin-from-compose\r\n");
        let (secrets, origins) = Secrets::load_with(&config_in(&dir), &[], &run_secrets).unwrap();
        assert_eq!(secrets.report_secret.expose(), b"from-compose");
        assert_eq!(secrets.admin_api_key.expose(), b"admin-from-compose");
        assert_eq!(origins[0], ("report_secret", Origin::File(report)));
        assert_eq!(origins[1], ("admin_api_key", Origin::File(admin)));
        // No master_key under /run/secrets: generated in the data dir as before.
        assert!(matches!(origins[2].1, Origin::Generated(_)));
        assert!(!dir.path().join("data/secrets/report_secret").exists());
    }

    #[test]
    fn file_variables_and_credentials_win_over_run_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let run_secrets = dir.path().join("run-secrets");
        for name in ["report_secret", "admin_api_key", "master_key"] {
            write(&run_secrets.join(name), "from-run-secrets");
        }
        let report_file = write(&dir.path().join("elsewhere/report"), "from-file-variable\n");
        let credentials = dir.path().join("credentials");
        write(&credentials.join("admin_api_key"), "from-credentials");
        let vars = env(&[
            ("REPORT_SHARED_SECRET_FILE", report_file.to_str().unwrap()),
            ("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap()),
            ("POOLDESK_MASTER_KEY", "from-environment"),
        ]);
        let (secrets, origins) = Secrets::load_with(&config_in(&dir), &vars, &run_secrets).unwrap();
        assert_eq!(secrets.report_secret.expose(), b"from-file-variable");
        assert_eq!(origins[0].1, Origin::File(report_file));
        assert_eq!(secrets.admin_api_key.expose(), b"from-credentials");
        assert_eq!(secrets.master_key.expose(), b"from-environment");
        assert_eq!(origins[2].1, Origin::Env("POOLDESK_MASTER_KEY"));
    }

    #[test]
    fn every_file_variable_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        let vars = env(&[
            (
                "REPORT_SHARED_SECRET_FILE",
                write(&files.join("r"), "r-value\n").to_str().unwrap(),
            ),
            (
                "MINING_SERVER_API_KEY_FILE",
                write(&files.join("a"), "a-value").to_str().unwrap(),
            ),
            (
                "POOLDESK_MASTER_KEY_FILE",
                write(&files.join("m"), "m-value\n").to_str().unwrap(),
            ),
        ]);
        let (secrets, origins) =
            Secrets::load_with(&config_in(&dir), &vars, &no_container(&dir)).unwrap();
        assert_eq!(secrets.report_secret.expose(), b"r-value");
        assert_eq!(secrets.admin_api_key.expose(), b"a-value");
        assert_eq!(secrets.master_key.expose(), b"m-value");
        assert!(origins.iter().all(|(_, o)| matches!(o, Origin::File(_))));
        assert!(
            !dir.path().join("data/secrets").exists(),
            "nothing generated"
        );
    }

    #[test]
    fn empty_or_unreadable_secret_file_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let run_secrets = dir.path().join("run-secrets");
        write(&run_secrets.join("report_secret"), "\n");
        let err = Secrets::load_with(&config_in(&dir), &[], &run_secrets).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        let missing = dir.path().join("nope");
        let vars = env(&[("MINING_SERVER_API_KEY_FILE", missing.to_str().unwrap())]);
        let err = Secrets::load_with(&config_in(&dir), &vars, &no_container(&dir)).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn generates_once_with_mode_0600_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let (first, origins) = Secrets::load_with(&config, &[], &no_container(&dir)).unwrap();
        assert!(matches!(origins[0].1, Origin::Generated(_)));
        let path = dir.path().join("secrets/admin_api_key");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, origins) = Secrets::load_with(&config, &[], &no_container(&dir)).unwrap();
        assert!(matches!(origins[0].1, Origin::File(_)));
        assert_eq!(first.admin_api_key.expose(), second.admin_api_key.expose());
        assert_ne!(first.admin_api_key.expose(), first.report_secret.expose());
    }

    #[test]
    fn environment_wins_and_debug_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let env = vec![("REPORT_SHARED_SECRET".to_string(), "s3cr3t".to_string())];
        let (secrets, origins) = Secrets::load_with(&config, &env, &no_container(&dir)).unwrap();
        assert_eq!(secrets.report_secret.expose(), b"s3cr3t");
        assert_eq!(origins[0].1, Origin::Env("REPORT_SHARED_SECRET"));
        assert!(!format!("{secrets:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_secret_file_open_to_group_or_others_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report");
        fs::write(&file, "s3cr3t\n").unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            secrets: crate::config::SecretsConfig {
                report_secret_file: Some(file.clone()),
                ..Default::default()
            },
            ..Config::default()
        };
        for mode in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
            let err = Secrets::load(&config, &[]).unwrap_err().to_string();
            assert!(err.contains(&file.display().to_string()), "{err}");
            assert!(err.contains("chmod 600"), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let (secrets, _) = Secrets::load(&config, &[]).unwrap();
        assert_eq!(secrets.report_secret.expose(), b"s3cr3t");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Secrets::load(&config, &[]).is_ok());
    }

    #[test]
    fn the_shared_secret_is_not_the_report_secret() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let (off, _) = Secrets::load(&config, &[]).unwrap();
        assert_ne!(off.shared_secret.expose(), off.report_secret.expose());
        assert!(!dir.path().join("secrets/shared_secret").exists());
        config.auth.allow_shared = true;
        let (on, _) = Secrets::load(&config, &[]).unwrap();
        assert!(dir.path().join("secrets/shared_secret").exists());
        assert_ne!(on.shared_secret.expose(), on.report_secret.expose());
        let env = vec![
            ("REPORT_SHARED_SECRET".to_string(), "same".to_string()),
            ("POOLDESK_SHARED_SECRET".to_string(), "same".to_string()),
        ];
        assert!(Secrets::load(&config, &env).is_err());
    }
}
