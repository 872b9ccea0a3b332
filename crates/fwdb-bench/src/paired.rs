//! `fwdb-bench postgres --paired`: the 0.95-of-raw target, measured so
//! the machine's drift cancels out.
//!
//! The full run gives each contender one whole `--secs` cell per round, so on
//! a two-core machine that also runs the servers a cell moves by ±30 %
//! between rounds, and a ratio of two cells measured seconds apart carries
//! that noise. Here only raw tokio-postgres, fwdb Strong (reads multiplexed,
//! the default, and with `postgres.pool.multiplex = 0`) and the bare LIFO pool (the control: raw's own
//! prepared statements behind a pool) run, in
//! short slices ordered A B C D D C B A, so each pair is measured back to back
//! and a linear drift over the round weighs the same on every contender.
//! Every round gives one ratio per cell; the report is the median of those
//! ratios with a distribution-free 95 % interval for the median.
//!
//! Each slice also records the CPU it cost, this client and the PostgreSQL
//! servers apart (cpu.rs): a second table gives CPU per operation, which on
//! a saturated machine bounds throughput and swings far less than it.

use crate::cpu::{self, Cpu};
use crate::{measure, median, uptime, Ctx, Op, Res, Who};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

type Cells<T> = BTreeMap<(Op, usize, Who), Vec<T>>;

pub(crate) const WHO: [Who; 4] = [Who::Raw, Who::PoolLifo, Who::FwdbStrong, Who::FwdbOwn];
/// The contenders held to the target.
const HELD: [Who; 2] = [Who::FwdbStrong, Who::FwdbOwn];
const TARGET: f64 = 0.95;

/// Runs `rounds` rounds of `slice`-second slices; returns the report.
pub(crate) async fn run(ctx: &Arc<Ctx>, rounds: usize, slice: f64, tasks: &[usize]) -> Res<String> {
    // (op, tasks, who) -> per-round throughput (mean of its two slices), and CPU per operation.
    let mut rates: Cells<f64> = BTreeMap::new();
    let mut costs: Cells<Cpu> = BTreeMap::new();
    let mut loads = Vec::new();
    for round in 0..rounds {
        loads.push(uptime());
        eprintln!("paired round {} of {rounds} (load {})", round + 1, uptime());
        for &c in tasks {
            for op in [Op::Point, Op::List, Op::Insert] {
                let order = abccba(round);
                let mut got: BTreeMap<Who, f64> = BTreeMap::new();
                let mut spent: BTreeMap<Who, (Cpu, f64)> = BTreeMap::new();
                for w in order {
                    let before = cpu::start();
                    let t = Instant::now();
                    let rate = measure(ctx, w, op, c, slice).await?;
                    let ops = rate * t.elapsed().as_secs_f64();
                    let cost = cpu::end() - before;
                    *got.entry(w).or_default() += rate / 2.0;
                    let e = spent.entry(w).or_default();
                    *e = (e.0 + cost, e.1 + ops);
                }
                for (w, r) in got {
                    rates.entry((op, c, w)).or_default().push(r);
                }
                for (w, (cost, ops)) in spent {
                    costs.entry((op, c, w)).or_default().push(cost.per(ops));
                }
            }
        }
    }
    loads.push(uptime());
    Ok(report(&rates, rounds, slice, &loads, tasks) + &cpu_report(&costs, tasks))
}

/// CPU per operation in microseconds, and each contender's total against
/// raw's in the same round (above 1: it costs more).
fn cpu_report(costs: &Cells<Cpu>, tasks: &[usize]) -> String {
    let mut out = String::from(
        "\nCPU per operation (µs; the client is this process, the servers every PostgreSQL process), \
         median over rounds; total against raw: median of per-round ratios, 95 % interval\n\n\
         | operation | tasks | contender | client µs/op | servers µs/op | total µs/op | total vs raw | 95 % interval |\n\
         | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |\n",
    );
    for op in [Op::Point, Op::List, Op::Insert] {
        for &c in tasks {
            let Some(base) = costs.get(&(op, c, Who::Raw)) else { continue };
            for w in WHO {
                let Some(v) = costs.get(&(op, c, w)) else { continue };
                let us = |f: fn(&Cpu) -> f64| median(&v.iter().map(|x| f(x) * 1e6).collect::<Vec<_>>());
                let ratios: Vec<f64> = v.iter().zip(base).map(|(x, b)| x.total() / b.total()).collect();
                let (lo, hi) = median_interval(&ratios);
                out.push_str(&format!(
                    "| {} | {c} | {} | {:.1} | {:.1} | {:.1} | {:.3} | {lo:.3} – {hi:.3} |\n",
                    op.name(),
                    w.name(),
                    us(|x| x.client),
                    us(|x| x.servers),
                    us(Cpu::total),
                    median(&ratios),
                ));
            }
        }
    }
    out
}

/// The slice order of `round`: the three contenders, turned by one each
/// round, then the same backwards.
fn abccba(round: usize) -> Vec<Who> {
    let fwd: Vec<Who> = WHO.iter().cycle().skip(round % WHO.len()).take(WHO.len()).copied().collect();
    fwd.iter().chain(fwd.iter().rev()).copied().collect()
}

fn report(rates: &Cells<f64>, rounds: usize, slice: f64, loads: &[String], tasks: &[usize]) -> String {
    let mut out = format!(
        "\nfwdb-bench postgres --paired: {rounds} rounds, slices of {slice:.2} s ordered A B C D D C B A; \
         ratio = round's ops/s against raw tokio-postgres in the same round; load averages at each round: {}\n\n\
         | operation | tasks | contender | median ops/s | median ratio | 95 % interval | rounds at or above {TARGET} | per-round ratios |\n\
         | --- | ---: | --- | ---: | ---: | --- | ---: | --- |\n",
        loads.join(" | ")
    );
    let mut met: BTreeMap<Who, usize> = BTreeMap::new();
    let mut cells = 0;
    for op in [Op::Point, Op::List, Op::Insert] {
        for &c in tasks {
            let Some(base) = rates.get(&(op, c, Who::Raw)) else { continue };
            cells += 1;
            for w in [Who::FwdbStrong, Who::FwdbOwn, Who::PoolLifo] {
                let Some(v) = rates.get(&(op, c, w)) else { continue };
                let ratios: Vec<f64> = v.iter().zip(base).map(|(x, b)| x / b).collect();
                let m = median(&ratios);
                let (lo, hi) = median_interval(&ratios);
                if HELD.contains(&w) {
                    *met.entry(w).or_default() += usize::from(m >= TARGET);
                }
                let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
                out.push_str(&format!(
                    "| {} | {c} | {} | {:.0} | **{m:.3}** | {lo:.3} – {hi:.3} | {} of {} | {} |\n",
                    op.name(),
                    w.name(),
                    median(v),
                    ratios.iter().filter(|r| **r >= TARGET).count(),
                    ratios.len(),
                    each.join(", ")
                ));
            }
        }
    }
    for w in HELD {
        let n = met.get(&w).copied().unwrap_or(0);
        out.push_str(&format!("\n{}: median ratio at or above {TARGET} in {n} of {cells} cells.\n", w.name()));
    }
    out
}

/// A distribution-free interval for the median of `v` with at least 95 %
/// coverage: the k-th smallest and k-th largest values, k the largest with
/// P(Binomial(n, ½) < k) ≤ 2.5 %. Fewer than 6 values cannot reach 95 %:
/// then it is the full range.
pub(crate) fn median_interval(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = s.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let k = order_statistic_rank(n);
    (s[k - 1], s[n - k])
}

/// The rank k (1-based) of [`median_interval`]: the interval
/// [x(k), x(n-k+1)] misses the median with probability 2 P(X <= k-1),
/// X ~ Binomial(n, 1/2).
fn order_statistic_rank(n: usize) -> usize {
    let mut term = 0.5f64.powi(n as i32); // P(X = 0)
    let mut cdf = 0.0;
    let mut k = 1;
    for j in 0..n {
        cdf += term; // P(X <= j)
        if cdf > 0.025 {
            break;
        }
        k = j + 1;
        term *= (n - j) as f64 / (j + 1) as f64; // P(X = j + 1)
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_interval_ranks_match_the_binomial_tables() {
        // n: rank k of the ~95 % interval (Conover, Practical Nonparametric
        // Statistics, table A3): 6 -> 1, 9 -> 2, 11 -> 2, 15 -> 4, 21 -> 6.
        for (n, k) in [(5, 1), (6, 1), (9, 2), (11, 2), (15, 4), (21, 6), (25, 8)] {
            assert_eq!(order_statistic_rank(n), k, "n = {n}");
        }
    }

    #[test]
    fn the_slices_run_forward_then_backward_and_turn_each_round() {
        assert_eq!(
            abccba(0),
            vec![
                Who::Raw,
                Who::PoolLifo,
                Who::FwdbStrong,
                Who::FwdbOwn,
                Who::FwdbOwn,
                Who::FwdbStrong,
                Who::PoolLifo,
                Who::Raw
            ]
        );
        assert_eq!(abccba(1)[0], Who::PoolLifo);
        assert_eq!(abccba(4), abccba(0));
    }
}
