//! The `consentgate` command line. `anyhow` lives here only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use consentgate::config::Settings;
use consentgate::devtools::{certs, token};
use consentgate::{Gateway, demo};

#[derive(Parser)]
#[command(
    name = "consentgate",
    version,
    about = "Privacy-and-consent governance gateway"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file.
        #[arg(long, default_value = "consentgate.toml")]
        config: PathBuf,
    },
    /// Run a sample customer-data upstream and the gateway, and print curl commands to try.
    Demo {
        /// Config file (its first route's upstream address is where the sample API listens).
        #[arg(long, default_value = "consentgate.toml")]
        config: PathBuf,
    },
    /// Print a signed dev token (ES256, `certs/dev/jwt.key` beside the config).
    Token {
        /// `sub`: the calling service's name.
        #[arg(long)]
        sub: String,
        /// Purposes the caller may declare, comma-separated.
        #[arg(long, value_delimiter = ',')]
        purposes: Vec<String>,
        /// Admin scopes, space-separated.
        #[arg(long, default_value = "")]
        scope: String,
        /// Lifetime, e.g. `1h`, `15m`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Config file (issuer, audience).
        #[arg(long, default_value = "consentgate.toml")]
        config: PathBuf,
        /// Signing key (default: `certs/dev/jwt.key` beside the config).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Dev key material.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Policy tools for compliance officers: check, test, explain.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Audit tools for auditors: verify the chain, export records. Work on the files directly,
    /// also while the gateway runs.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Consent store tools for operators.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy subjects, consents and receipts from a sled store into PostgreSQL, byte for byte.
    /// Idempotent (a second run changes nothing); refuses conflicting subjects; verifies
    /// counts and receipt hashes. Exit 1 when a check fails (nothing is copied then).
    Migrate {
        /// The source: `sled:DIR` (stop the gateway using it first).
        #[arg(long)]
        from: String,
        /// The target: `postgres://user@host:5432/dbname` (as `[store] url`).
        #[arg(long)]
        to: String,
        /// File holding the database password.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate every policy; print each error as file:line:column.
    Check {
        /// Policy folder.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Run the policy tests in DIR/tests/*.yaml.
    Test {
        /// Policy folder.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Show the decision and, for each removed or redacted path, the rule that did it, then
    /// the output JSON.
    Explain {
        /// Region (policy file stem).
        #[arg(long)]
        region: String,
        /// Purpose.
        #[arg(long)]
        purpose: String,
        /// Consent state: granted, denied, withdrawn, expired or none.
        #[arg(long, default_value = "none")]
        consent: String,
        /// The request carries `Sec-GPC: 1`.
        #[arg(long)]
        gpc: bool,
        /// Policy folder.
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
        /// The input is a list response: field path of its array of records (`""`: the input
        /// is the array); each record is explained on its own.
        #[arg(long, value_name = "PATH")]
        collection: Option<String>,
        /// With `--collection`: field path of each record's subject.
        #[arg(long, value_name = "FIELD", default_value = "id")]
        subject: String,
        /// JSON document to run through the policy (`-` or absent: standard input).
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain (and a checkpoint kept off-host); exit 1 at the first bad record,
    /// and when a checkpoint the result relies on (given, or anchoring a chain shortened by
    /// retention) could not be checked against a trusted public key ("unverified").
    Verify {
        /// Audit folder (default: `[audit] dir` of consentgate.toml, else data/audit).
        #[arg(long, conflicts_with = "url")]
        dir: Option<PathBuf>,
        /// Verify every replica's chain in PostgreSQL instead (`[audit] backend = "postgres"`):
        /// `postgres://user@host:5432/dbname`.
        #[arg(long)]
        url: Option<String>,
        /// File holding the database password (with --url).
        #[arg(long, requires = "url")]
        password_file: Option<PathBuf>,
        /// A checkpoint (JSON object, or a checkpoints .jsonl file: its last line).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The trusted public key (SPKI PEM) that checkpoint signatures are checked with.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Export records, oldest first.
    Export {
        /// Audit folder (default: `[audit] dir` of consentgate.toml, else data/audit).
        #[arg(long, conflicts_with = "url")]
        dir: Option<PathBuf>,
        /// Export from every replica's chain in PostgreSQL instead, merged by time.
        #[arg(long)]
        url: Option<String>,
        /// File holding the database password (with --url).
        #[arg(long, requires = "url")]
        password_file: Option<PathBuf>,
        /// Only this data subject.
        #[arg(long)]
        subject: Option<String>,
        /// From this time (RFC 3339, inclusive).
        #[arg(long)]
        from: Option<String>,
        /// To this time (RFC 3339, exclusive).
        #[arg(long)]
        to: Option<String>,
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
    /// Copy a file audit log (segments and checkpoints) into one chain in PostgreSQL, byte
    /// for byte, for a replica of that name to continue. Idempotent; refuses a source that
    /// does not verify and a chain that holds other records (exit 1).
    Migrate {
        /// The audit folder (stop the gateway writing it first).
        #[arg(long)]
        from: PathBuf,
        /// The database: `postgres://user@host:5432/dbname` (as `[audit] url`).
        #[arg(long)]
        to: String,
        /// File holding the database password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The chain to write: the `[audit] replica` name that will continue it.
        #[arg(long)]
        replica: String,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Generate `certs/dev/`: CA, gateway/upstream/client certs, JWT key + JWKS, secrets.
    Dev {
        /// Target folder.
        #[arg(long, default_value = "certs/dev")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Held for the whole run: dropping it flushes the log writer's queue.
    let _log_writer = init_logging(cli.log_format);
    consentgate::install_crypto_provider();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("consentgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr through a writer thread: a request only queues its log line, it never
/// waits for the terminal or a pipe. Under overload (more than 128 000 queued lines) lines are
/// dropped rather than slowing requests down; the audit log, not the log, is the record.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(128_000)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve { config } => {
            let settings = Settings::load(&config)?;
            runtime()?.block_on(async {
                let gateway = Gateway::bind(settings).await?;
                tracing::info!(gateway = %gateway.gateway_addr(), admin = %gateway.admin_addr(), "listening");
                gateway.serve(shutdown_signal()).await;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Demo { config } => demo_command(&config),
        Command::Token {
            sub,
            purposes,
            scope,
            ttl,
            config,
            key,
        } => {
            let settings = Settings::load(&config)?;
            let key = key.unwrap_or_else(|| settings.base_dir.join("certs/dev/jwt.key"));
            let req = token::TokenRequest {
                sub: &sub,
                purposes,
                scope: &scope,
                ttl,
                issuer: &settings.auth.issuer,
                audience: &settings.auth.audience,
            };
            println!("{}", token::sign(&key, &req)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { command } => policy_command(command),
        Command::Audit { command } => audit_command(command),
        Command::Store {
            command:
                StoreCommand::Migrate {
                    from,
                    to,
                    password_file,
                },
        } => store_migrate(&from, &to, password_file),
        Command::Certs {
            command: CertsCommand::Dev { dir },
        } => {
            certs::generate(&dir)?;
            println!(
                "wrote dev key material to {} (dev only: never use these keys in production)",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

fn policy_command(command: PolicyCommand) -> Result<ExitCode> {
    use consentgate::policy::{ConsentState, tooling};
    let mut out = std::io::stdout().lock();
    Ok(exit(match command {
        PolicyCommand::Check { dir } => tooling::check(&dir, &mut out),
        PolicyCommand::Test { dir } => tooling::test(&dir, &mut out),
        PolicyCommand::Explain {
            region,
            purpose,
            consent,
            gpc,
            dir,
            collection,
            subject,
            file,
        } => {
            let consent = match consent.as_str() {
                "granted" => ConsentState::Granted,
                "denied" => ConsentState::Denied,
                "withdrawn" => ConsentState::Withdrawn,
                "expired" => ConsentState::Expired,
                "none" => ConsentState::None,
                other => anyhow::bail!(
                    "--consent {other}: use granted, denied, withdrawn, expired or none"
                ),
            };
            let input =
                match file.as_deref() {
                    None => std::io::read_to_string(std::io::stdin())
                        .context("reading standard input")?,
                    Some(p) if p == Path::new("-") => std::io::read_to_string(std::io::stdin())
                        .context("reading standard input")?,
                    Some(p) => std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                };
            match collection {
                Some(path) => {
                    let shape = tooling::ListShape {
                        path: &path,
                        subject: &subject,
                    };
                    tooling::explain_list(
                        &dir, &region, &purpose, consent, gpc, &shape, &input, &mut out,
                    )
                }
                None => tooling::explain(&dir, &region, &purpose, consent, gpc, &input, &mut out),
            }
        }
    }))
}

/// `--dir`, else `[audit] dir` of consentgate.toml, else data/audit; a config whose audit log
/// is in PostgreSQL points at `--url` instead of reading a folder that is not the log.
fn audit_dir(dir: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = dir {
        return Ok(dir);
    }
    match Settings::load(Path::new("consentgate.toml")).map(|s| s.audit.storage) {
        Ok(consentgate::config::AuditStorage::Files { dir }) => Ok(dir),
        Ok(consentgate::config::AuditStorage::Postgres { .. }) => anyhow::bail!(
            "consentgate.toml keeps the audit log in PostgreSQL ([audit] backend = \"postgres\"): pass --url (and --password-file), or --dir for a file log"
        ),
        Err(_) => Ok(PathBuf::from("data/audit")),
    }
}

fn audit_command(command: AuditCommand) -> Result<ExitCode> {
    use consentgate::audit;
    match command {
        AuditCommand::Verify {
            url: Some(url),
            password_file,
            checkpoint,
            public_key,
            ..
        } => {
            anyhow::ensure!(
                checkpoint.is_none(),
                "--checkpoint is for a file log; with --url each chain is checked against its checkpoints in the database"
            );
            let key = public_key
                .as_deref()
                .map(|k| std::fs::read(k).with_context(|| format!("reading {}", k.display())))
                .transpose()?;
            let reader = pg_reader(&url, password_file)?;
            let report = runtime()?.block_on(reader.verify(key.as_deref()))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Verify {
            dir,
            checkpoint,
            public_key,
            ..
        } => {
            let dir = audit_dir(dir)?;
            let cp = checkpoint
                .as_deref()
                .map(audit::load_checkpoint_file)
                .transpose()?;
            let key = public_key
                .as_deref()
                .map(|k| std::fs::read(k).with_context(|| format!("reading {}", k.display())))
                .transpose()?;
            let report = audit::verify_with(
                &dir,
                audit::VerifyOptions {
                    checkpoint: cp.as_ref(),
                    public_key: key.as_deref(),
                },
            )?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Export {
            dir,
            url,
            password_file,
            subject,
            from,
            to,
            format,
        } => {
            let filter = audit::Filter {
                subject,
                from: from.as_deref().map(audit::parse_rfc3339).transpose()?,
                to: to.as_deref().map(audit::parse_rfc3339).transpose()?,
                ..audit::Filter::default()
            };
            let format: audit::Format = format.parse()?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match url {
                Some(url) => {
                    let reader = pg_reader(&url, password_file)?;
                    runtime()?.block_on(reader.export(&filter, format, &mut out))?;
                }
                None => {
                    audit::export(&audit_dir(dir)?, &filter, format, &mut out)?;
                }
            }
            std::io::Write::flush(&mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Migrate {
            from,
            to,
            password_file,
            replica,
        } => {
            let target = consentgate::pg::PgTarget::parse(&to, Path::new("."), password_file)
                .map_err(|m| anyhow::anyhow!("--to {m}"))?;
            match audit::migrate_files_to_postgres(&from, &target, &replica) {
                Ok(report) => {
                    println!("{}", serde_json::to_string(&report)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ audit::AuditError::Migrate(_)) => {
                    eprintln!("consentgate: {e}");
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// A reader of every chain in the database at `url` (a small pool; the CLI's runtime drives it).
fn pg_reader(url: &str, password_file: Option<PathBuf>) -> Result<consentgate::audit::PgAudit> {
    let target = consentgate::pg::PgTarget::parse(url, Path::new("."), password_file)
        .map_err(|m| anyhow::anyhow!("--url {m}"))?;
    let pool = target
        .connector()?
        .named("consentgate-audit-cli")
        .pool(2, consentgate::pg::CONNECT_TIMEOUT)?;
    Ok(consentgate::audit::PgAudit::new(pool))
}

fn store_migrate(from: &str, to: &str, password_file: Option<PathBuf>) -> Result<ExitCode> {
    let dir = from
        .strip_prefix("sled:")
        .filter(|d| !d.is_empty())
        .context("--from must be sled:DIR (the sled consent store's directory)")?;
    let target = consentgate::pg::PgTarget::parse(to, Path::new("."), password_file)
        .map_err(|m| anyhow::anyhow!("--to {m}"))?;
    let result = runtime()?.block_on(consentgate::consent::migrate_sled_to_postgres(
        Path::new(dir),
        &target,
    ));
    match result {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("consentgate: store migrate: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
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
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn demo_command(config: &Path) -> Result<ExitCode> {
    let base = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dev = base.join("certs/dev");
    if !certs::complete(&dev) {
        certs::generate(&dev)?;
        println!("generated dev key material in {}", dev.display());
    }
    let settings = Settings::load(config)?;
    let upstream = settings
        .routes
        .iter()
        .next()
        .map(|r| r.upstream.authority.to_string())
        .context("the config has no route")?;
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&upstream)
            .await
            .with_context(|| format!("starting the sample upstream on {upstream}"))?;
        tokio::spawn(demo::upstream::serve(listener));
        let gateway = Gateway::bind(settings.clone()).await?;
        let gw = gateway.gateway_addr();
        let scheme = if settings.gateway.tls.is_some() { "https" } else { "http" };
        let sign = |sub: &str, purposes: &[&str], scope: &str| {
            token::sign(
                &base.join("certs/dev/jwt.key"),
                &token::TokenRequest {
                    sub,
                    purposes: purposes.iter().map(|p| p.to_string()).collect(),
                    scope,
                    ttl: Duration::from_secs(3600),
                    issuer: &settings.auth.issuer,
                    audience: &settings.auth.audience,
                },
            )
        };
        let seeded = demo::seed::seed(&gateway.state().store).await?;
        if seeded > 0 {
            println!("seeded regions and consents for {seeded} sample customers");
        }
        let crm = sign(
            "crm-service",
            &["marketing", "analytics", "personalisation", "order_fulfilment", "support", "sale"],
            "",
        )?;
        let auditor = sign("dpo-office", &[], "audit:read consent:read policy:read")?;
        let admin = sign("consent-platform", &[], "consent:write consent:read")?;
        let adm = gateway.admin_addr();
        let get = |purpose: &str, subject: &str, extra: &str| {
            format!("curl -s -i -H 'Authorization: Bearer {crm}' -H 'X-Purpose: {purpose}'{extra} {scheme}://{gw}/api/customers/{subject}")
        };
        println!("\nconsentgate demo: sample API on http://{upstream}, gateway on {scheme}://{gw}, admin on http://{adm}\n");
        println!("# ALLOW: Anna (eu) granted marketing: names, e-mail (masked) and preferences only");
        println!("{}\n", get("marketing", "c-1001", ""));
        println!("# DENY: Luc (eu) denied marketing -> 403 consent_required");
        println!("{}\n", get("marketing", "c-1002", ""));
        println!("# DENY: Anna withdrew analytics; her personalisation consent expired");
        println!("{}", get("analytics", "c-1001", ""));
        println!("{}\n", get("personalisation", "c-1001", ""));
        println!("# ALLOW: order fulfilment is a contract basis: no consent needed, still minimised");
        println!("{}\n", get("order_fulfilment", "c-1001", ""));
        println!("# support: card numbers, IBANs, phones and e-mails masked even in free-text notes");
        println!("{}\n", get("support", "c-1001", ""));
        println!("# California opt-out: Maria's data may be 'sold'... unless her browser sends GPC");
        println!("{}", get("sale", "c-2001", ""));
        println!("{}\n", get("sale", "c-2001", " -H 'Sec-GPC: 1'"));
        println!("# a segment list across regions and consents: what the sample API holds, then what the gateway");
        println!("# releases for marketing (each record by its own region's rules; Luc withheld; X-Consentgate-Withheld: 1)");
        println!("curl -s 'http://{upstream}/api/customers?segment=vip'");
        println!("curl -s -i -H 'Authorization: Bearer {crm}' -H 'X-Purpose: marketing' '{scheme}://{gw}/api/customers?segment=vip'\n");
        println!("# the catalogue has no personal data: proxied as is");
        println!("curl -s -H 'Authorization: Bearer {crm}' {scheme}://{gw}/api/products/all\n");
        println!("# decision API (AuthZEN): a service that cannot route data through the gateway asks instead");
        println!("curl -s -H 'Authorization: Bearer {crm}' -H 'Content-Type: application/json' -d '{{\"subject\":{{\"type\":\"service\",\"id\":\"crm-service\"}},\"action\":{{\"name\":\"marketing\"}},\"evaluations\":[{{\"resource\":{{\"type\":\"data_subject\",\"id\":\"c-1001\"}}}},{{\"resource\":{{\"type\":\"data_subject\",\"id\":\"c-1002\"}}}}]}}' {scheme}://{gw}/access/v1/evaluations\n");
        println!("# consent API: record a grant, see the state, read the receipts");
        println!("curl -s -X PUT -H 'Authorization: Bearer {admin}' -d '{{\"status\":\"granted\",\"source\":\"web form\"}}' http://{adm}/v1/subjects/c-1002/consents/marketing");
        println!("curl -s -H 'Authorization: Bearer {admin}' http://{adm}/v1/subjects/c-1002/consents\n");
        println!("# auditors: the access log, its verification, one person's access report");
        println!("curl -s -H 'Authorization: Bearer {auditor}' 'http://{adm}/v1/audit?subject=c-1001'");
        println!("curl -s -H 'Authorization: Bearer {auditor}' http://{adm}/v1/audit/verify");
        println!("curl -s -H 'Authorization: Bearer {auditor}' 'http://{adm}/v1/subjects/c-1001/report?format=markdown'\n");
        println!("# compliance figures: JSON over a window, Prometheus series (OpenMetrics on request)");
        println!("curl -s -H 'Authorization: Bearer {auditor}' 'http://{adm}/v1/stats'");
        println!("curl -s http://{adm}/readyz; curl -s http://{adm}/metrics\n");
        let serving = tokio::spawn(gateway.serve(shutdown_signal()));
        if scheme == "http" {
            let sent = demo::traffic::send(gw, |caller, purposes| sign(caller, purposes, "").ok()).await;
            println!("sent {sent} demo requests from three services through the gateway");
        }
        println!("\nCompliance dashboard: http://{adm}/dashboard");
        println!("paste this audit:read token there (it stays in the tab's memory):\n{auditor}\n");
        println!("Press Ctrl-C to stop.");
        serving.await?;
        Ok(ExitCode::SUCCESS)
    })
}
