//! Configuration: the TOML file (`raw`) validated into typed [`Settings`].
//!
//! Relative paths resolve against the config file's folder. Every problem is reported as one
//! message naming the key and what to change.

mod collection;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::routing::{Route, RouteOptions, RouteTable, SubjectCase, UnknownSubject};
use raw::{CheckpointEvery, CheckpointEveryItem, RawAudit, RawConfig, RawStore};

/// A configuration problem: which key, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (unknown key, wrong type).
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What the TOML parser said, with line and column.
        message: String,
    },
    /// A key has a value the gateway cannot use.
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted key, e.g. `gateway.listen`.
        key: String,
        /// What is wrong and what to change.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// How the audit log makes records durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSync {
    /// Batch concurrent records into one write and one fsync.
    Group,
    /// One fsync per record.
    Always,
}

/// TLS material for the gateway listener.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle; when set, callers must present a client certificate it signed.
    pub client_ca: Option<PathBuf>,
}

/// `[gateway]`: the data-plane listener and proxy limits.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// HTTPS when set.
    pub tls: Option<TlsSettings>,
    /// Extra CA trusted for HTTPS upstreams (besides the public web roots).
    pub upstream_ca: Option<PathBuf>,
    /// Region used when the subject has none stored.
    pub default_region: String,
    /// Limit for request bodies and for response bodies that are redacted.
    pub max_body_bytes: u64,
    /// Limit for connecting to the upstream and receiving its response.
    pub upstream_timeout: Duration,
    /// Limit for a client to send its request headers.
    pub header_read_timeout: Duration,
    /// Open connections accepted at once, per listener.
    pub max_connections: usize,
    /// Data-plane requests in flight at once; more are answered `503 overloaded` at once.
    pub max_in_flight: usize,
    /// Bytes that buffered upstream answers (to be minimised) may hold at once; an answer that
    /// does not fit is answered `503 overloaded`.
    pub max_buffered_bytes: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Data-plane worker threads, each with a runtime of its own (default: one per core).
    pub workers: usize,
}

/// `[auth]`: how callers' JWTs are verified.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// JWKS file with public keys selected by `kid`.
    pub jwks: Option<PathBuf>,
    /// File holding an HS256 shared secret.
    pub hs256_secret_file: Option<PathBuf>,
    /// Clock-skew allowance for `exp` and `nbf`.
    pub leeway: Duration,
}

/// `[audit]`: the tamper-evident access log.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Where the chain is kept.
    pub storage: AuditStorage,
    /// Durability mode.
    pub sync: AuditSync,
    /// Rotate segments above this size.
    pub segment_bytes: u64,
    /// PKCS#8 PEM key signing chain-head checkpoints.
    pub checkpoint_key: Option<PathBuf>,
    /// Checkpoint at least this often.
    pub checkpoint_interval: Option<Duration>,
    /// Checkpoint at least every this many records.
    pub checkpoint_records: Option<u64>,
    /// `retention = "400d"`: delete whole segments older than this once a signed checkpoint
    /// covers them (needs `checkpoint_key`).
    pub retention: Option<Duration>,
}

/// `[audit] backend`: where the chain is kept.
#[derive(Debug, Clone)]
pub enum AuditStorage {
    /// `backend = "file"` (the default): segment files in `dir`.
    Files {
        /// Segment directory.
        dir: PathBuf,
    },
    /// `backend = "postgres"`: this replica's chain in PostgreSQL, beside every other's.
    Postgres {
        /// `url` and `password_file` (default: `[store]`'s).
        target: Box<crate::pg::PgTarget>,
        /// This replica's chain name (default: the host name).
        replica: String,
    },
}

/// A chain name: 1–64 of `A-Za-z0-9._-` (it appears in records, checkpoints and cursors).
pub fn valid_replica_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// This machine's host name, as the default replica name (`gw` if it has none usable).
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    if valid_replica_name(&name) {
        name
    } else {
        "gw".to_owned()
    }
}

/// `[store]`: where consent state lives.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// `backend = "sled"` (the default): an embedded database in `path`.
    Sled {
        /// The sled database directory.
        path: PathBuf,
    },
    /// `backend = "postgres"`: shared by every replica.
    Postgres(Box<PostgresStoreSettings>),
}

/// `[store] backend = "postgres"`.
#[derive(Debug, Clone)]
pub struct PostgresStoreSettings {
    /// The parsed `url` (with `password_file`, read at start).
    pub target: crate::pg::PgTarget,
    /// The longest any replica may decide on a consent state older than the latest write.
    pub max_staleness: Duration,
}

/// Shortest accepted `[store] max_staleness`.
pub const MIN_MAX_STALENESS: Duration = Duration::from_millis(100);

/// `[policies]`: where the region policies live.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    /// Folder of `<region>.yaml` files.
    pub dir: PathBuf,
    /// Secret keying the `hash` redactor.
    pub hash_secret_file: Option<PathBuf>,
    /// Reload on file changes (default true).
    pub watch: bool,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Folder the config file is in (relative paths resolve against it).
    pub base_dir: PathBuf,
    /// `[gateway]`.
    pub gateway: GatewaySettings,
    /// `[admin] listen`.
    pub admin_listen: SocketAddr,
    /// `[auth]`.
    pub auth: AuthSettings,
    /// `[store]`.
    pub store: StoreSettings,
    /// `[audit]`.
    pub audit: AuditSettings,
    /// `[policies]`.
    pub policies: PolicySettings,
    /// `[[route]]`s, in file order (first match wins).
    pub routes: RouteTable,
    /// `[controller]`: the data controller named on Kantara receipts and ISO/IEC TS 27560 records.
    pub controller: Option<crate::consent::Controller>,
}

const DEFAULT_MAX_BODY: u64 = 8 * 1024 * 1024;
/// Default `gateway.max_buffered_bytes` (raised to `max_body_bytes` if that is larger).
const DEFAULT_MAX_BUFFERED: u64 = 256 * 1024 * 1024;
/// Requests in flight at once by default. Their buffered answers are bounded apart, by
/// `max_buffered_bytes`, so this bounds tasks and connections, not memory.
const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// The most data-plane worker threads `gateway.workers` may ask for.
const MAX_WORKERS: usize = 256;

impl Settings {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        Self::parse(&text, &base, &path.display().to_string()).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates config text; relative paths resolve against `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Settings, ConfigError> {
        Self::parse(text, base_dir, "config")
    }

    /// `file` names the text in messages that point at a line.
    fn parse(text: &str, base_dir: &Path, file: &str) -> Result<Settings, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("config"),
            message: e.to_string().trim_end().to_string(),
        })?;
        let line_of = |offset: usize| {
            let line = text
                .get(..offset)
                .map_or(0, |t| t.bytes().filter(|b| *b == b'\n').count());
            format!("{file}:{}", line + 1)
        };
        Self::from_raw(raw, base_dir, &line_of)
    }

    fn from_raw(
        raw: RawConfig,
        base: &Path,
        line_of: &dyn Fn(usize) -> String,
    ) -> Result<Settings, ConfigError> {
        let path = |p: &str| resolve(base, p);
        let g = raw.gateway;
        let tls = match (g.tls_cert, g.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSettings {
                cert: path(&cert),
                key: path(&key),
                client_ca: g.client_ca.as_deref().map(path),
            }),
            (None, None) if g.client_ca.is_some() => {
                return Err(invalid(
                    "gateway.client_ca",
                    "mTLS needs HTTPS: set gateway.tls_cert and gateway.tls_key too",
                ));
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "gateway.tls_key",
                    "tls_cert is set but tls_key is missing",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "gateway.tls_cert",
                    "tls_key is set but tls_cert is missing",
                ));
            }
        };
        let max_body_bytes = g.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
        if max_body_bytes == 0 {
            return Err(invalid("gateway.max_body_bytes", "must be greater than 0"));
        }
        check_name("gateway.default_region", &g.default_region)?;
        let max_buffered_bytes = match g.max_buffered_bytes {
            Some(n) if n < max_body_bytes => {
                return Err(invalid(
                    "gateway.max_buffered_bytes",
                    "must be at least gateway.max_body_bytes (else the largest answer allowed could never be buffered)",
                ));
            }
            Some(n) => n,
            None => DEFAULT_MAX_BUFFERED.max(max_body_bytes),
        };
        let gateway = GatewaySettings {
            listen: addr("gateway.listen", &g.listen)?,
            tls,
            upstream_ca: g.upstream_ca.as_deref().map(path),
            default_region: g.default_region,
            max_body_bytes,
            max_buffered_bytes,
            upstream_timeout: duration(
                "gateway.upstream_timeout",
                g.upstream_timeout.as_deref(),
                "30s",
            )?,
            header_read_timeout: duration(
                "gateway.header_read_timeout",
                g.header_read_timeout.as_deref(),
                "10s",
            )?,
            max_connections: match g.max_connections {
                Some(0) => {
                    return Err(invalid("gateway.max_connections", "must be greater than 0"));
                }
                Some(n) => n,
                None => 10_000,
            },
            max_in_flight: match g.max_in_flight {
                Some(0) => {
                    return Err(invalid("gateway.max_in_flight", "must be greater than 0"));
                }
                Some(n) => n.min(tokio::sync::Semaphore::MAX_PERMITS),
                None => DEFAULT_MAX_IN_FLIGHT,
            },
            shutdown_grace: duration("gateway.shutdown_grace", g.shutdown_grace.as_deref(), "30s")?,
            workers: match g.workers {
                Some(n) if n == 0 || n > MAX_WORKERS => {
                    return Err(invalid(
                        "gateway.workers",
                        format!("must be between 1 and {MAX_WORKERS}"),
                    ));
                }
                Some(n) => n,
                None => {
                    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
                }
            },
        };

        let a = raw.auth;
        if a.jwks.is_none() && a.hs256_secret_file.is_none() {
            return Err(invalid(
                "auth",
                "set auth.jwks and/or auth.hs256_secret_file: without keys no caller can be authenticated",
            ));
        }
        if a.issuer.is_empty() || a.audience.is_empty() {
            return Err(invalid(
                "auth",
                "auth.issuer and auth.audience must not be empty",
            ));
        }
        let auth = AuthSettings {
            issuer: a.issuer,
            audience: a.audience,
            jwks: a.jwks.as_deref().map(path),
            hs256_secret_file: a.hs256_secret_file.as_deref().map(path),
            leeway: duration("auth.leeway", a.leeway.as_deref(), "30s")?,
        };

        let storage = audit_storage(&raw.audit, &raw.store, base)?;
        let (checkpoint_interval, checkpoint_records) =
            checkpoint_every(raw.audit.checkpoint_every)?;
        let audit = AuditSettings {
            storage,
            sync: match raw.audit.sync.as_deref() {
                None | Some("group") => AuditSync::Group,
                Some("always") => AuditSync::Always,
                Some(other) => {
                    return Err(invalid(
                        "audit.sync",
                        format!("\"{other}\" is not a sync mode; use \"group\" or \"always\""),
                    ));
                }
            },
            segment_bytes: raw
                .audit
                .segment_bytes
                .unwrap_or(64 * 1024 * 1024)
                .max(4096),
            checkpoint_key: raw.audit.checkpoint_key.as_deref().map(path),
            checkpoint_interval,
            checkpoint_records,
            retention: match raw.audit.retention.as_deref() {
                None => None,
                Some(text) => Some(duration("audit.retention", Some(text), "400d")?),
            },
        };
        if audit.checkpoint_key.is_none() && audit.retention.is_some() {
            return Err(invalid(
                "audit.retention",
                "retention needs audit.checkpoint_key: only a signed checkpoint lets a shortened chain be verified",
            ));
        }
        if audit.checkpoint_key.is_none()
            && (checkpoint_interval.is_some() || checkpoint_records.is_some())
        {
            return Err(invalid(
                "audit.checkpoint_every",
                "checkpoints need audit.checkpoint_key",
            ));
        }

        let mut routes = Vec::with_capacity(raw.routes.len());
        let mut lines = Vec::with_capacity(raw.routes.len());
        for (i, r) in raw.routes.into_iter().enumerate() {
            let key = format!("route[{i}]");
            let at = line_of(r.name.span().start);
            let name = r.name.into_inner();
            check_route_name(&format!("{key}.name"), &name)?;
            if routes.iter().any(|x: &Route| x.name == name) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("route name \"{name}\" is used twice ({at})"),
                ));
            }
            let options = RouteOptions {
                personal_data: r.personal_data,
                public: r.public,
                subject_case: match r.subject_case.as_deref() {
                    None | Some("exact") => SubjectCase::Exact,
                    Some("lower") => SubjectCase::Lower,
                    Some(other) => {
                        return Err(invalid(
                            format!("{key}.subject_case"),
                            format!(
                                "\"{other}\" is not a subject case; use \"exact\" or \"lower\""
                            ),
                        ));
                    }
                },
                unknown_subject: match r.unknown_subject.as_deref() {
                    None | Some("default_region") => UnknownSubject::DefaultRegion,
                    Some("deny") => UnknownSubject::Deny,
                    Some(other) => {
                        return Err(invalid(
                            format!("{key}.unknown_subject"),
                            format!(
                                "\"{other}\" is not a choice; use \"default_region\" or \"deny\""
                            ),
                        ));
                    }
                },
                collection: r
                    .collection
                    .map(|c| collection::build(c, &format!("{key}.collection")))
                    .transpose()?,
            };
            if !options.personal_data && (r.subject_case.is_some() || r.unknown_subject.is_some()) {
                return Err(invalid(
                    format!("{key}.personal_data"),
                    "subject_case and unknown_subject apply only to personal-data routes",
                ));
            }
            let route = Route::new(name, &r.pattern, &r.upstream, options)
                .map_err(|e| invalid(format!("{key}.{}", e.key()), format!("{e} ({at})")))?;
            routes.push(route);
            lines.push(at);
        }
        if routes.is_empty() {
            return Err(invalid(
                "route",
                "no [[route]] is defined: the gateway would answer no_route to everything",
            ));
        }
        let names: Vec<String> = routes.iter().map(|r| r.name.clone()).collect();
        let describe = |i: usize| {
            format!(
                "route[{i}] \"{}\" ({})",
                names.get(i).map_or("", String::as_str),
                lines.get(i).map_or("", String::as_str)
            )
        };
        let routes = match RouteTable::new(routes) {
            Ok(table) => table,
            Err(s) => {
                return Err(invalid(
                    format!("route[{}].match", s.earlier),
                    format!(
                        "{} has no personal data but is listed before the personal-data {} and matches some of its paths (e.g. {}): first match wins, so that person's data would pass unchecked. List the personal-data route first, or narrow the earlier route's match",
                        describe(s.earlier),
                        describe(s.later),
                        s.witness
                    ),
                ));
            }
        };

        Ok(Settings {
            base_dir: base.to_path_buf(),
            gateway,
            admin_listen: addr("admin.listen", &raw.admin.listen)?,
            auth,
            store: store_settings(raw.store, base)?,
            audit,
            policies: PolicySettings {
                dir: path(&raw.policies.dir),
                hash_secret_file: raw.policies.hash_secret_file.as_deref().map(path),
                watch: raw.policies.watch.unwrap_or(true),
            },
            routes,
            controller: match raw.controller {
                Some(c) => {
                    c.validate()
                        .map_err(|(key, message)| invalid(key, message))?;
                    Some(c)
                }
                None => None,
            },
        })
    }
}

fn audit_storage(
    raw: &RawAudit,
    store: &RawStore,
    base: &Path,
) -> Result<AuditStorage, ConfigError> {
    match raw.backend.as_deref() {
        None | Some("file") => {
            for (key, set) in [
                ("audit.url", raw.url.is_some()),
                ("audit.password_file", raw.password_file.is_some()),
                ("audit.replica", raw.replica.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        key,
                        "is only used with backend = \"postgres\"; remove it or set audit.backend = \"postgres\"",
                    ));
                }
            }
            let dir = raw.dir.as_deref().ok_or_else(|| {
                invalid(
                    "audit.dir",
                    "the file backend needs a directory, like dir = \"data/audit\"",
                )
            })?;
            Ok(AuditStorage::Files {
                dir: resolve(base, dir),
            })
        }
        Some("postgres") => {
            if raw.dir.is_some() {
                return Err(invalid(
                    "audit.dir",
                    "is only used with backend = \"file\"; the postgres backend keeps the chain in the database",
                ));
            }
            let store_on_pg = store.backend.as_deref() == Some("postgres");
            let (url, key, password_file) = match (&raw.url, store_on_pg) {
                (Some(url), _) => (url, "audit.url", raw.password_file.as_deref()),
                (None, true) => match &store.url {
                    Some(url) => (
                        url,
                        "store.url",
                        raw.password_file
                            .as_deref()
                            .or(store.password_file.as_deref()),
                    ),
                    None => return Err(invalid("store.url", "backend = \"postgres\" needs a url")),
                },
                (None, false) => {
                    return Err(invalid(
                        "audit.url",
                        "backend = \"postgres\" needs url = \"postgres://user@host:5432/dbname\" (or a [store] on postgres to share)",
                    ));
                }
            };
            let password_file = password_file.map(|p| resolve(base, p));
            let target = crate::pg::PgTarget::parse(url, base, password_file)
                .map_err(|m| invalid(key, m))?;
            let replica = match &raw.replica {
                Some(name) if valid_replica_name(name) => name.clone(),
                Some(_) => {
                    return Err(invalid(
                        "audit.replica",
                        "must be 1-64 characters of A-Za-z0-9._-",
                    ));
                }
                None => host_name(),
            };
            Ok(AuditStorage::Postgres {
                target: Box::new(target),
                replica,
            })
        }
        Some(other) => Err(invalid(
            "audit.backend",
            format!("\"{other}\" is not an audit backend; use \"file\" or \"postgres\""),
        )),
    }
}

fn store_settings(raw: RawStore, base: &Path) -> Result<StoreSettings, ConfigError> {
    match raw.backend.as_deref() {
        None | Some("sled") => {
            for (key, set) in [
                ("store.url", raw.url.is_some()),
                ("store.password_file", raw.password_file.is_some()),
                ("store.max_staleness", raw.max_staleness.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        key,
                        "is only used with backend = \"postgres\"; remove it or set store.backend = \"postgres\"",
                    ));
                }
            }
            let path = raw.path.ok_or_else(|| {
                invalid(
                    "store.path",
                    "the sled backend needs a database directory, like path = \"data/consent\"",
                )
            })?;
            Ok(StoreSettings::Sled {
                path: resolve(base, &path),
            })
        }
        Some("postgres") => {
            let url = raw.url.ok_or_else(|| {
                invalid(
                    "store.url",
                    "backend = \"postgres\" needs url = \"postgres://user@host:5432/dbname\"",
                )
            })?;
            let password_file = raw.password_file.as_deref().map(|p| resolve(base, p));
            let target = crate::pg::PgTarget::parse(&url, base, password_file)
                .map_err(|m| invalid("store.url", m))?;
            let max_staleness =
                duration("store.max_staleness", raw.max_staleness.as_deref(), "1s")?;
            if max_staleness < MIN_MAX_STALENESS {
                return Err(invalid(
                    "store.max_staleness",
                    "must be at least 100ms (replicas prove freshness with a heartbeat every quarter of it)",
                ));
            }
            Ok(StoreSettings::Postgres(Box::new(PostgresStoreSettings {
                target,
                max_staleness,
            })))
        }
        Some(other) => Err(invalid(
            "store.backend",
            format!("\"{other}\" is not a store backend; use \"sled\" or \"postgres\""),
        )),
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        invalid(
            key,
            format!("\"{value}\" is not an address; write it like \"127.0.0.1:8080\""),
        )
    })
}

fn duration(key: &str, value: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or(default);
    let d = humantime::parse_duration(text).map_err(|_| {
        invalid(
            key,
            format!("\"{text}\" is not a duration; write it like \"30s\" or \"500ms\""),
        )
    })?;
    if d.is_zero() {
        return Err(invalid(key, "must be longer than zero"));
    }
    Ok(d)
}

fn check_name(key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("\"{value}\" is not a region name (1-32 of a-z, 0-9, -)"),
        ))
    }
}

/// Route names label metrics and audit records: 1–64 of `A-Za-z0-9._-`.
fn check_route_name(key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("\"{value}\" is not a route name (1-64 of A-Z, a-z, 0-9, '.', '_', '-')"),
        ))
    }
}

fn checkpoint_every(
    v: Option<CheckpointEvery>,
) -> Result<(Option<Duration>, Option<u64>), ConfigError> {
    let items = match v {
        None => return Ok((None, None)),
        Some(CheckpointEvery::Count(n)) => vec![CheckpointEveryItem::Count(n)],
        Some(CheckpointEvery::Text(t)) => vec![CheckpointEveryItem::Text(t)],
        Some(CheckpointEvery::Both(items)) => items,
    };
    let (mut interval, mut records) = (None, None);
    for item in items {
        match item {
            CheckpointEveryItem::Count(0) => {
                return Err(invalid(
                    "audit.checkpoint_every",
                    "a record count must be greater than 0",
                ));
            }
            CheckpointEveryItem::Count(n) => records = Some(n),
            CheckpointEveryItem::Text(t) => {
                interval = Some(duration("audit.checkpoint_every", Some(&t), "10s")?)
            }
        }
    }
    Ok((interval, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[gateway]
listen = "127.0.0.1:8080"
default_region = "default"
[admin]
listen = "127.0.0.1:8081"
[auth]
issuer = "i"
audience = "a"
jwks = "certs/dev/jwks.json"
[store]
path = "data/consent"
[audit]
dir = "data/audit"
checkpoint_key = "k.pem"
checkpoint_every = ["10s", 500]
[policies]
dir = "policies"
[[route]]
name = "customers"
match = "/api/customers/{subject}/**"
upstream = "http://127.0.0.1:9000"
personal_data = true
"#;

    #[test]
    fn minimal_config_resolves_paths_and_defaults() {
        let s = Settings::from_toml(MINIMAL, Path::new("/etc/cg")).unwrap();
        assert!(
            matches!(&s.store, StoreSettings::Sled { path } if path == Path::new("/etc/cg/data/consent"))
        );
        assert_eq!(s.gateway.max_body_bytes, DEFAULT_MAX_BODY);
        assert_eq!(s.gateway.upstream_timeout, Duration::from_secs(30));
        assert_eq!(s.audit.sync, AuditSync::Group);
        assert_eq!(s.audit.checkpoint_interval, Some(Duration::from_secs(10)));
        assert_eq!(s.audit.checkpoint_records, Some(500));
    }

    #[test]
    fn the_buffer_budget_defaults_to_256_mib_and_is_at_least_max_body_bytes() {
        let s = Settings::from_toml(MINIMAL, Path::new(".")).unwrap();
        assert_eq!(s.gateway.max_buffered_bytes, DEFAULT_MAX_BUFFERED);
        let big = MINIMAL.replace(
            "default_region = \"default\"",
            "default_region = \"default\"\nmax_body_bytes = 536870912",
        );
        let s = Settings::from_toml(&big, Path::new(".")).unwrap();
        assert_eq!(s.gateway.max_buffered_bytes, 536_870_912);
        let small = MINIMAL.replace(
            "default_region = \"default\"",
            "default_region = \"default\"\nmax_body_bytes = 65536\nmax_buffered_bytes = 65535",
        );
        let err = Settings::from_toml(&small, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gateway.max_buffered_bytes"), "{err}");
    }

    #[test]
    fn workers_default_to_the_cores_and_must_be_between_1_and_256() {
        let s = Settings::from_toml(MINIMAL, Path::new(".")).unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(s.gateway.workers, cores.min(MAX_WORKERS));
        let with = |n: &str| {
            MINIMAL.replace(
                "default_region = \"default\"",
                &format!("default_region = \"default\"\nworkers = {n}"),
            )
        };
        let s = Settings::from_toml(&with("3"), Path::new(".")).unwrap();
        assert_eq!(s.gateway.workers, 3);
        for bad in ["0", "257"] {
            let err = Settings::from_toml(&with(bad), Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(err.contains("gateway.workers"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let text = MINIMAL.replace("[admin]", "[admin]\nlisten_typo = 1");
        let err = Settings::from_toml(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_typo"), "{err}");
    }

    #[test]
    fn store_backends() {
        let pg = MINIMAL.replace(
            "path = \"data/consent\"",
            "backend = \"postgres\"\nurl = \"postgres://cg@127.0.0.1:5432/consent\"\npassword_file = \"pg.pw\"\nmax_staleness = \"250ms\"",
        );
        let s = Settings::from_toml(&pg, Path::new("/etc/cg")).unwrap();
        let StoreSettings::Postgres(p) = &s.store else {
            panic!("not postgres")
        };
        assert_eq!(p.max_staleness, Duration::from_millis(250));
        assert_eq!(p.target.describe(), "cg@127.0.0.1:5432/consent");
        let default_staleness = pg.replace("max_staleness = \"250ms\"", "");
        let s = Settings::from_toml(&default_staleness, Path::new("/etc/cg")).unwrap();
        let StoreSettings::Postgres(p) = &s.store else {
            panic!("not postgres")
        };
        assert_eq!(p.max_staleness, Duration::from_secs(1));

        let cases = [
            (pg.replace("250ms", "10ms"), "store.max_staleness"),
            (pg.replace("250ms", "soon"), "store.max_staleness"),
            (
                pg.replace(
                    "postgres://cg@127.0.0.1:5432/consent",
                    "postgres://cg:pw@h:x/c",
                ),
                "store.url",
            ),
            (pg.replace("url = ", "# url = "), "store.url"),
            (pg.replace("\"postgres\"\n", "\"mysql\"\n"), "store.backend"),
            (
                MINIMAL.replace("path = \"data/consent\"", "url = \"postgres://u@h/d\""),
                "store.url",
            ),
            (
                MINIMAL.replace("path = \"data/consent\"", "backend = \"sled\""),
                "store.path",
            ),
        ];
        for (text, key) in cases {
            let err = Settings::from_toml(&text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key), "{key}: {err}");
            assert!(!err.contains(":pw@"), "{err}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                "listen = \"127.0.0.1:8080\"",
                "listen = \"nope\"",
                "gateway.listen",
            ),
            ("[audit]", "[audit]\nsync = \"sometimes\"", "audit.sync"),
            (
                "default_region = \"default\"",
                "default_region = \"EU!\"",
                "gateway.default_region",
            ),
            (
                "match = \"/api/customers/{subject}/**\"",
                "match = \"/api/**/x\"",
                "route[0].match",
            ),
            (
                "upstream = \"http://127.0.0.1:9000\"",
                "upstream = \"ftp://x\"",
                "route[0].upstream",
            ),
        ];
        for (from, to, key) in cases {
            let text = MINIMAL.replacen(from, to, 1);
            let err = Settings::from_toml(&text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key), "{key}: {err}");
        }
    }
}
