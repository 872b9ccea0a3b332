//! The measurement behind docs/pool-choice.md: what one checkout (get, then
//! return) costs, uncontended and with 16 and 64 tasks sharing a pool, for
//! deadpool-postgres (as fwdb's pools use it) and, with the `bb8` and
//! `bb8-postgres` features, for bb8. Not part of the API proper.

use super::connect::ConnectTarget;
use super::pool::PgPool;
use crate::config::PostgresConfig;
use crate::error::Result;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// One line of the measurement.
#[derive(Debug, Clone, Serialize)]
pub struct CheckoutCost {
    /// "deadpool Fast", "deadpool Verified", "bb8", "bb8 test_on_check_out".
    pub pool: String,
    pub pool_size: u32,
    pub tasks: usize,
    pub checkouts: u64,
    /// Wall time divided by checkouts (all tasks together).
    pub nanos_per_checkout: f64,
}

#[doc(hidden)]
/// Measures every pool variant at each of `tasks` (e.g. `[1, 16, 64]`):
/// `total` checkouts shared among the tasks, on a pool of `pool_size` warm
/// connections to the primary of `cfg`.
pub async fn measure_pool_checkout(
    cfg: &PostgresConfig,
    pool_size: u32,
    tasks: &[usize],
    total: usize,
) -> Result<Vec<CheckoutCost>> {
    let mut out = Vec::new();
    for verify in [false, true] {
        let mut c = cfg.clone();
        c.pool.min_size = pool_size;
        c.pool.max_size = pool_size;
        c.routing.verify_on_checkout = verify;
        let pool = Arc::new(PgPool::new(&c, ConnectTarget::Primary, "primary".into())?);
        pool.fill().await?;
        let name = if verify { "deadpool Verified" } else { "deadpool Fast" };
        for &t in tasks {
            let per_task = total / t;
            let started = Instant::now();
            let handles: Vec<_> = (0..t)
                .map(|_| {
                    let p = pool.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            let c = p.get().await.expect("checkout");
                            drop(c);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.expect("bench task");
            }
            out.push(cost(name, pool_size, t, per_task, started));
        }
        if !verify {
            for &t in tasks {
                let per_task = total / 4 / t;
                let started = Instant::now();
                let handles: Vec<_> = (0..t)
                    .map(|_| {
                        let p = pool.clone();
                        tokio::spawn(async move {
                            for i in 0..per_task as i32 {
                                let c = p.get().await.expect("checkout");
                                let st = c.prepare_cached("SELECT $1::int4").await.expect("prepare");
                                let _ = c.query_one(&st, &[&i]).await.expect("query");
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.await.expect("bench task");
                }
                out.push(cost("deadpool Fast + select (cached)", pool_size, t, per_task, started));
            }
        }
        pool.drain();
    }
    out.extend(bare_deadpool(cfg, pool_size, tasks, total).await?);
    #[cfg(all(feature = "bb8", feature = "bb8-postgres"))]
    out.extend(bb8_impl::measure(cfg, pool_size, tasks, total).await?);
    Ok(out)
}

/// deadpool-postgres as it comes: no hooks, no wrapper (to tell its cost from ours).
async fn bare_deadpool(
    cfg: &PostgresConfig,
    pool_size: u32,
    tasks: &[usize],
    total: usize,
) -> Result<Vec<CheckoutCost>> {
    use crate::error::{Error, ErrorKind};
    use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
    let driver = super::connect::driver_config(cfg, &ConnectTarget::Primary)?;
    let mc = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = match super::tls::client_config(&cfg.tls)? {
        None => Manager::from_config(driver, tokio_postgres::NoTls, mc),
        Some(r) => Manager::from_config(driver, tokio_postgres_rustls::MakeRustlsConnect::new(r), mc),
    };
    let pool = Pool::builder(manager)
        .max_size(pool_size as usize)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, "bare deadpool").with_source(e))?;
    let warm = futures::future::join_all((0..pool_size).map(|_| pool.get())).await;
    drop(warm);
    let mut out = Vec::new();
    for &t in tasks {
        let per_task = total / t;
        let started = Instant::now();
        let handles: Vec<_> = (0..t)
            .map(|_| {
                let p = pool.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        let c = p.get().await.expect("checkout");
                        drop(c);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("bench task");
        }
        out.push(cost("deadpool bare Fast", pool_size, t, per_task, started));
    }
    Ok(out)
}

fn cost(name: &str, pool_size: u32, tasks: usize, per_task: usize, started: Instant) -> CheckoutCost {
    let n = (tasks * per_task) as u64;
    CheckoutCost {
        pool: name.into(),
        pool_size,
        tasks,
        checkouts: n,
        nanos_per_checkout: started.elapsed().as_nanos() as f64 / n as f64,
    }
}

#[cfg(all(feature = "bb8", feature = "bb8-postgres"))]
mod bb8_impl {
    use super::*;
    use crate::error::{Error, ErrorKind};
    use crate::postgres::{connect::driver_config, tls};
    use bb8_postgres::PostgresConnectionManager;
    use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
    use tokio_postgres::Socket;

    pub(super) async fn measure(
        cfg: &PostgresConfig,
        pool_size: u32,
        tasks: &[usize],
        total: usize,
    ) -> Result<Vec<CheckoutCost>> {
        let driver = driver_config(cfg, &ConnectTarget::Primary)?;
        match tls::client_config(&cfg.tls)? {
            None => run(driver, tokio_postgres::NoTls, pool_size, tasks, total).await,
            Some(r) => run(driver, tokio_postgres_rustls::MakeRustlsConnect::new(r), pool_size, tasks, total).await,
        }
    }

    async fn run<T>(
        driver: tokio_postgres::Config,
        tls: T,
        pool_size: u32,
        tasks: &[usize],
        total: usize,
    ) -> Result<Vec<CheckoutCost>>
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send + Sync,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let mut out = Vec::new();
        for test in [false, true] {
            let manager = PostgresConnectionManager::new(driver.clone(), tls.clone());
            let pool = bb8::Pool::builder()
                .max_size(pool_size)
                .min_idle(Some(pool_size))
                .test_on_check_out(test)
                .build(manager)
                .await
                .map_err(|e| Error::new(ErrorKind::Unavailable, "bb8 pool").with_source(e))?;
            // min_idle is filled in the background: wait for it.
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            while pool.state().connections < pool_size && Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            let name = if test { "bb8 test_on_check_out" } else { "bb8" };
            for &t in tasks {
                let per_task = total / t;
                let started = Instant::now();
                let handles: Vec<_> = (0..t)
                    .map(|_| {
                        let p = pool.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                let c = p.get().await.expect("checkout");
                                drop(c);
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.await.expect("bench task");
                }
                out.push(cost(name, pool_size, t, per_task, started));
            }
            if !test {
                for &t in tasks {
                    let per_task = total / 4 / t;
                    let started = Instant::now();
                    let handles: Vec<_> = (0..t)
                        .map(|_| {
                            let p = pool.clone();
                            tokio::spawn(async move {
                                for i in 0..per_task as i32 {
                                    let c = p.get().await.expect("checkout");
                                    let _ = c.query_one("SELECT $1::int4", &[&i]).await.expect("query");
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.await.expect("bench task");
                    }
                    out.push(cost("bb8 + select (no cache)", pool_size, t, per_task, started));
                }
            }
        }
        Ok(out)
    }
}
