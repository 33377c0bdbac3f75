//! PostgreSQL for `cargo xtask test` and `bench`: the server at
//! `DATABASE_URL` when set, otherwise a throwaway cluster (system `initdb` +
//! `pg_ctl` on a free loopback port, removed afterwards); plus a PgBouncer
//! in transaction mode in front of it for the pooler conformance run. Also
//! `cargo xtask pg start|stop|url` for manual use.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use strata_testpg::{Bouncer, Cluster, ClusterOptions};

/// The servers the tests run against; dropping it stops what it started.
#[derive(Debug)]
pub(crate) struct Services {
    /// `DATABASE_URL` for the tests.
    pub(crate) database_url: String,
    /// `STRATA_PGBOUNCER_URL` for the tests, when a bouncer runs.
    pub(crate) bouncer_url: Option<String>,
    _cluster: Option<Cluster>,
    _bouncer: Option<Bouncer>,
}

impl Services {
    /// Environment variables to pass to the test processes.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("DATABASE_URL", self.database_url.clone())];
        if let Some(url) = &self.bouncer_url {
            env.push(("STRATA_PGBOUNCER_URL", url.clone()));
        }
        env
    }
}

/// Loopback host, port, user and database of a URL, if it points at this machine.
fn local_parts(url: &str) -> Option<(u16, String, String)> {
    let rest = url.split_once("://")?.1;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, "postgres"));
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("postgres", authority));
    let user = userinfo.split(':').next().unwrap_or("postgres").to_string();
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return None;
    }
    let database = path.split('?').next().filter(|d| !d.is_empty()).unwrap_or("postgres").to_string();
    Some((port.parse().ok()?, user, database))
}

/// Starts what the tests need. `durable` keeps fsync on (benchmarks).
pub(crate) fn services(durable: bool, with_bouncer: bool) -> Result<Services> {
    let (database_url, cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            println!("xtask: using DATABASE_URL (password hidden) for PostgreSQL tests");
            (url, None)
        }
        _ => {
            let started = std::time::Instant::now();
            let options = ClusterOptions { no_fsync: !durable, ..Default::default() };
            let cluster = Cluster::start(&options).context(
                "starting a throwaway PostgreSQL cluster (set DATABASE_URL to use an existing server instead)",
            )?;
            println!(
                "xtask: throwaway PostgreSQL on 127.0.0.1:{} ({}), ready in {:.1} s",
                cluster.port(),
                if durable { "fsync on" } else { "fsync off" },
                started.elapsed().as_secs_f64()
            );
            (cluster.url(), Some(cluster))
        }
    };
    let mut bouncer = None;
    let mut bouncer_url = std::env::var("STRATA_PGBOUNCER_URL").ok().filter(|u| !u.trim().is_empty());
    if with_bouncer && bouncer_url.is_none() {
        match local_parts(&database_url) {
            Some((port, user, database)) => {
                let started = Bouncer::start(port, &user)
                    .context("starting PgBouncer in transaction mode (install the Debian package `pgbouncer`)")?;
                println!("xtask: PgBouncer (transaction mode) on 127.0.0.1:{}", started.port());
                bouncer_url = Some(started.url_for(&user, &database));
                bouncer = Some(started);
            }
            None => {
                println!("xtask: DATABASE_URL is not on this machine; set STRATA_PGBOUNCER_URL to run the pooler suite")
            }
        }
    }
    Ok(Services { database_url, bouncer_url, _cluster: cluster, _bouncer: bouncer })
}

fn state_file() -> PathBuf {
    let base = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    base.join(".cache/strata/xtask-pg")
}

/// `cargo xtask pg start|stop|url`.
pub(crate) fn command(args: &[String]) -> Result<()> {
    let state = state_file();
    match args.first().map(String::as_str) {
        Some("start") => {
            if let Ok(text) = std::fs::read_to_string(&state) {
                bail!("a cluster is already running: {} (stop it with `cargo xtask pg stop`)", text.trim());
            }
            let cluster = Cluster::start(&ClusterOptions::default()).context("starting PostgreSQL")?;
            let url = cluster.url();
            let dir = cluster.detach();
            std::fs::create_dir_all(state.parent().unwrap_or(Path::new(".")))?;
            std::fs::write(&state, format!("{url}\n{}\n", dir.display()))?;
            println!("{url}");
            eprintln!("xtask: started; export DATABASE_URL={url}; stop with `cargo xtask pg stop`");
            Ok(())
        }
        Some("url") => {
            let text = std::fs::read_to_string(&state).context("no cluster is running (`cargo xtask pg start`)")?;
            println!("{}", text.lines().next().unwrap_or_default());
            Ok(())
        }
        Some("stop") => {
            let text = std::fs::read_to_string(&state).context("no cluster is running")?;
            let dir = PathBuf::from(text.lines().nth(1).unwrap_or_default());
            strata_testpg::stop_detached(&dir).with_context(|| format!("stopping the cluster in {}", dir.display()))?;
            std::fs::remove_file(&state)?;
            println!("xtask: stopped and removed {}", dir.display());
            Ok(())
        }
        _ => bail!("usage: cargo xtask pg start|stop|url"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_urls_are_recognised() {
        assert_eq!(
            local_parts("postgres://postgres@127.0.0.1:5432/test"),
            Some((5432, "postgres".to_string(), "test".to_string()))
        );
        assert_eq!(
            local_parts("postgres://app:secret@localhost/db?sslmode=disable"),
            Some((5432, "app".to_string(), "db".to_string()))
        );
        assert_eq!(local_parts("postgres://u@db.example.com:5432/x"), None);
    }
}
