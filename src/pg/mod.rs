//! PostgreSQL plumbing shared by every part of the gateway that keeps state in PostgreSQL
//! (the consent store; the audit log builds on the same pieces): the `url` and
//! `password_file` settings, TLS through rustls, a connection pool, a dedicated connection
//! (for `LISTEN`), error classification and versioned migrations ([`migrate`]).
//!
//! Error classes matter at start-up: a malformed URL, refused credentials, an unknown
//! database or a TLS failure are configuration errors ([`PgError::is_fatal`]: `serve` stops
//! with exit 2), an unreachable server is an outage (start not ready and retry).

pub mod migrate;
mod tls;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Timeout for opening one connection (TCP, TLS and authentication), unless the URL sets
/// `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The TLS stream type of our connections.
pub type TlsStream = <MakeRustlsConnect as MakeTlsConnect<tokio_postgres::Socket>>::Stream;
/// A dedicated (unpooled) connection's driver half.
pub type Connection = tokio_postgres::Connection<tokio_postgres::Socket, TlsStream>;

/// Why talking to PostgreSQL failed, classified for the caller.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The password file could not be read.
    #[error("cannot read the password file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `sslrootcert` file of the URL could not be used.
    #[error("cannot use the sslrootcert file {path}: {message}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The server refused the user name or password.
    #[error(
        "PostgreSQL refused the credentials ({0}); check the user in the url and the password file"
    )]
    Auth(String),
    /// The database named in the URL does not exist.
    #[error("the database named in the url does not exist on the server ({0}); create it first")]
    UnknownDatabase(String),
    /// TLS could not be set up (certificate not trusted, server without TLS under
    /// `sslmode=require`, ...).
    #[error(
        "TLS to PostgreSQL failed: {0}; set sslrootcert=FILE in the url to trust a private CA, or sslmode=disable on a trusted network"
    )]
    Tls(String),
    /// The server could not be reached or broke the connection: an outage, retry later.
    #[error("PostgreSQL is unreachable: {0}")]
    Unreachable(String),
    /// The database's schema is newer than this build understands.
    #[error(
        "the database schema of `{component}` is at version {found}, newer than this build knows ({known}); run a newer consentgate"
    )]
    NewerSchema {
        /// Which component's migrations.
        component: String,
        /// Highest version applied in the database.
        found: i32,
        /// Highest version this build has.
        known: i32,
    },
    /// Any other server error (a bug, a permission problem, ...).
    #[error("PostgreSQL error: {0}")]
    Other(String),
}

impl PgError {
    /// True for errors that retrying will not fix: stop and tell the operator.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::Unreachable(_))
    }
}

/// Classifies a driver error.
pub fn classify(e: &tokio_postgres::Error) -> PgError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let text = format!("{} (SQLSTATE {code})", db.message());
        return match code {
            // invalid_authorization_specification, invalid_password
            c if c.starts_with("28") => PgError::Auth(text),
            // invalid_catalog_name
            "3D000" => PgError::UnknownDatabase(text),
            // connection exceptions, admin/crash shutdown, cannot connect now, too many
            // connections, serialization failure, deadlock: transient
            c if c.starts_with("08")
                || c.starts_with("57P")
                || c == "53300"
                || c == "40001"
                || c == "40P01" =>
            {
                PgError::Unreachable(text)
            }
            _ => PgError::Other(text),
        };
    }
    if tls::is_tls_error(e) {
        return PgError::Tls(error_chain(e));
    }
    PgError::Unreachable(error_chain(e))
}

/// The error and its sources, joined (driver errors keep the useful part in the source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Where a PostgreSQL database is, as configured: the parsed `url` (password not yet
/// read), the `password_file` and an optional extra CA (`sslrootcert` in the URL).
#[derive(Debug, Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    root_cert: Option<PathBuf>,
    password_file: Option<PathBuf>,
}

impl PgTarget {
    /// Parses a `postgres://` / `postgresql://` URL. Besides what tokio-postgres accepts, the
    /// URL may carry `sslrootcert=FILE` (a PEM CA to trust, relative to `base`), and
    /// `sslmode=verify-full` / `verify-ca` mean `require` (the server certificate is always
    /// verified when TLS is used). Messages never repeat the URL (it may hold a password).
    pub fn parse(url: &str, base: &Path, password_file: Option<PathBuf>) -> Result<Self, String> {
        let Some(rest) = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
        else {
            return Err("must be a URL like postgres://user@host:5432/dbname".into());
        };
        let (head, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut root_cert = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslrootcert" => {
                    let path = crate::routing::decode_segment(value)
                        .filter(|p| !p.is_empty())
                        .ok_or("sslrootcert must name a file")?;
                    let path = Path::new(&path);
                    root_cert = Some(if path.is_absolute() {
                        path.to_path_buf()
                    } else {
                        base.join(path)
                    });
                }
                "sslmode" if matches!(value, "verify-full" | "verify-ca") => {
                    kept.push("sslmode=require".to_owned());
                }
                _ => kept.push(pair.to_owned()),
            }
        }
        let rebuilt = if kept.is_empty() {
            format!("postgres://{head}")
        } else {
            format!("postgres://{head}?{}", kept.join("&"))
        };
        let mut config = tokio_postgres::Config::from_str(&rebuilt)
            .map_err(|e| format!("is not a valid PostgreSQL URL ({e})"))?;
        if config.get_hosts().is_empty() {
            return Err("must name a host, like postgres://user@127.0.0.1:5432/dbname".into());
        }
        if config.get_user().is_none() {
            return Err("must name a user, like postgres://consentgate@host/dbname".into());
        }
        if config.get_dbname().is_none() {
            return Err("must name a database, like postgres://user@host/consentgate".into());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("consentgate");
        }
        Ok(Self {
            config,
            root_cert,
            password_file,
        })
    }

    /// Reads the password file and the CA and returns what connects.
    pub fn connector(&self) -> Result<Connector, PgError> {
        let mut config = self.config.clone();
        if let Some(path) = &self.password_file {
            let bytes = std::fs::read(path).map_err(|source| PgError::PasswordFile {
                path: path.clone(),
                source,
            })?;
            let password = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let password = password.strip_suffix(b"\r").unwrap_or(password);
            config.password(password);
        }
        let tls = tls::connector(self.root_cert.as_deref())?;
        Ok(Connector { config, tls })
    }

    /// A short description for logs: user, host, port and database, never the password.
    pub fn describe(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{host}:{port}/{}",
            self.config.get_user().unwrap_or(""),
            self.config.get_dbname().unwrap_or("")
        )
    }
}

/// Opens connections to one database.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// The same database under another `application_name` (so operators and tests can tell
    /// a dedicated connection, such as a `LISTEN`er, from pooled ones in `pg_stat_activity`).
    pub fn named(&self, application_name: &str) -> Connector {
        let mut config = self.config.clone();
        config.application_name(application_name);
        Connector {
            config,
            tls: self.tls.clone(),
        }
    }

    /// One dedicated connection; the caller must drive (poll) the [`Connection`].
    pub async fn connect(&self) -> Result<(tokio_postgres::Client, Connection), PgError> {
        self.config
            .connect(self.tls.clone())
            .await
            .map_err(|e| classify(&e))
    }

    /// A pool of at most `max_size` connections; getting one waits at most `timeout`. Its
    /// connections are opened, and driven, on the runtime this is called on.
    pub fn pool(&self, max_size: usize, timeout: Duration) -> Result<Pool, PgError> {
        let manager = Manager::from_connect(
            self.config.clone(),
            OnRuntime {
                tls: self.tls.clone(),
                runtime: tokio::runtime::Handle::try_current().ok(),
            },
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| PgError::Other(e.to_string()))
    }
}

/// Opens pooled connections on one runtime (the one the pool was made on), so that their
/// sockets and driver tasks belong to it, not to whichever data-plane worker first needed a
/// connection: a worker busy with a long synchronous step would otherwise hold up every other
/// worker's queries on the connections it opened, and take them down when it stops.
struct OnRuntime {
    tls: MakeRustlsConnect,
    runtime: Option<tokio::runtime::Handle>,
}

type Opened = Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>;

impl deadpool_postgres::Connect for OnRuntime {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Opened> + Send + '_>> {
        let (config, tls) = (config.clone(), self.tls.clone());
        let runtime = self.runtime.clone();
        Box::pin(async move {
            match runtime {
                Some(runtime) => match runtime.spawn(open(config.clone(), tls.clone())).await {
                    Ok(opened) => opened,
                    // That runtime is shutting down: open it here instead.
                    Err(_) => open(config, tls).await,
                },
                None => open(config, tls).await,
            }
        })
    }
}

/// Opens one pooled connection and spawns its driver on the current runtime.
async fn open(config: tokio_postgres::Config, tls: MakeRustlsConnect) -> Opened {
    let (client, connection) = config.connect(tls).await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "pooled database connection closed");
        }
    });
    Ok((client, driver))
}

/// Classifies a pool error.
pub fn pool_error(e: deadpool_postgres::PoolError) -> PgError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => classify(&e),
        deadpool_postgres::PoolError::Timeout(t) => {
            PgError::Unreachable(format!("no database connection within the timeout ({t:?})"))
        }
        other => PgError::Unreachable(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let base = Path::new("/etc/cg");
        let t = PgTarget::parse(
            "postgres://cg@127.0.0.1:5433/consent?sslmode=verify-full&sslrootcert=ca.pem",
            base,
            None,
        )
        .unwrap();
        assert_eq!(t.root_cert.as_deref(), Some(Path::new("/etc/cg/ca.pem")));
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(t.describe(), "cg@127.0.0.1:5433/consent");
        assert_eq!(t.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        let t = PgTarget::parse("postgresql://u:secret@db.example/x", base, None).unwrap();
        assert!(!t.describe().contains("secret"));
        for bad in [
            "mysql://u@h/db",
            "host=127.0.0.1 user=u dbname=x",
            "postgres://u@127.0.0.1:notaport/x",
            "postgres://u@h/x?sslmode=sometimes",
            "postgres://u@h/x?bogus=1",
            "postgres:///x",
            "postgres://h/x",
            "postgres://u@h",
            "postgres://u:hunter2@h/x?sslrootcert=",
        ] {
            let err = PgTarget::parse(bad, base, None).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(!err.is_empty(), "{bad}");
        }
    }

    #[test]
    fn password_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let t = PgTarget::parse("postgres://u@h/x", dir.path(), Some(file)).unwrap();
        let c = t.connector().unwrap();
        assert_eq!(c.config.get_password(), Some(&b"s3cret"[..]));
        let t = PgTarget::parse(
            "postgres://u@h/x",
            dir.path(),
            Some(dir.path().join("none")),
        )
        .unwrap();
        assert!(matches!(t.connector(), Err(PgError::PasswordFile { .. })));
    }

    #[test]
    fn fatal_or_not() {
        assert!(!PgError::Unreachable("x".into()).is_fatal());
        assert!(PgError::Auth("x".into()).is_fatal());
        assert!(PgError::UnknownDatabase("x".into()).is_fatal());
        assert!(PgError::Tls("x".into()).is_fatal());
    }
}
