//! The status page: one self-contained HTML document (inline CSS and SVG, no
//! script, no external resource), refreshed every 5 s by the browser.

use super::Sample;
use fwdb::{HealthReport, MetricsSnapshot};
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const COLORS: [&str; 6] = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2"];

pub fn render(health: &HealthReport, m: &MetricsSnapshot, samples: &[Sample], replicas_required: bool) -> String {
    let ready = health.ready(replicas_required);
    let overall = if !ready {
        "UNREADY"
    } else if health.healthy {
        "READY"
    } else {
        "DEGRADED"
    };
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>fwdb: {overall}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#111;background:#fafafa}}
h1{{font-size:1.3rem}} h2{{font-size:1.05rem;margin-top:1.6rem}}
table{{border-collapse:collapse;background:#fff}} td,th{{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top;white-space:nowrap}} td code{{white-space:normal}}
th{{background:#f0f0f0}} .ok{{color:#166534;font-weight:600}} .bad{{color:#b91c1c;font-weight:600}}
.badge{{display:inline-block;padding:.1rem .6rem;border-radius:.4rem;color:#fff}}
.READY{{background:#16a34a}} .DEGRADED{{background:#d97706}} .UNREADY{{background:#dc2626}}
code{{font-size:12px}} .gauge{{width:160px;height:12px;background:#e5e7eb;display:inline-block;vertical-align:middle}}
.gauge span{{display:block;height:12px;background:#2563eb}}
</style></head><body>
<h1>fwdb <span id="overall" class="badge {overall}">{overall}</span></h1>
<p>Uptime {up:.0} s · scrape {scrape:.1} ms · database <code>{db}</code></p>
<h2>Servers</h2><table id="servers"><tr><th>Server</th><th>Status</th><th>Response</th><th>Detail</th></tr>"#,
        up = m.uptime_seconds,
        scrape = m.scrape_ms,
        db = esc(m.pg.as_ref().map(|p| p.database.as_str()).unwrap_or("?")),
    );
    for s in &health.servers {
        let (class, word) = if s.healthy { ("ok", "healthy") } else { ("bad", "unhealthy") };
        let _ = write!(
            h,
            r#"<tr class="server" data-server="{name}" data-healthy="{healthy}"><td>{name}</td><td class="{class}">{word}</td><td>{ms:.1} ms</td><td>{detail}</td></tr>"#,
            name = esc(&s.name),
            healthy = s.healthy,
            ms = s.response_ms,
            detail = esc(s.error.as_deref().or(s.detail.as_deref()).unwrap_or("")),
        );
    }
    h.push_str("</table>");

    // Pools.
    h.push_str(r#"<h2>Connection pools</h2><table id="pools"><tr><th>Pool</th><th>In use / max</th><th></th><th>Idle</th><th>Waiting</th><th>Timeouts</th><th>Shared (reads on them)</th></tr>"#);
    let c = &m.cluster;
    let pools = std::iter::once(("primary".to_string(), &c.primary.pool))
        .chain(c.replicas.iter().enumerate().map(|(i, r)| (format!("replica{i}"), &r.pool)));
    for (name, p) in pools {
        let pct = if p.max_size == 0 { 0.0 } else { 100.0 * p.in_use as f64 / p.max_size as f64 };
        let _ = write!(
            h,
            r#"<tr class="pool" data-pool="{name}"><td>{name}</td><td>{} / {}</td><td><div class="gauge"><span style="width:{pct:.0}%"></span></div></td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td></tr>"#,
            p.in_use, p.max_size, p.idle, p.waiting, p.timeouts, p.shared, p.shared_reads
        );
    }
    h.push_str("</table>");
    read_shapes(&mut h, m);

    // Replication.
    h.push_str(r#"<h2>Replication</h2><table id="replication"><tr><th>Replica</th><th>Routing</th><th>Lag (bytes)</th><th>Lag (s)</th><th>Reads</th><th>Why not routed</th></tr>"#);
    for (i, r) in c.replicas.iter().enumerate() {
        let state = if r.ejected {
            "ejected"
        } else if r.eligible {
            "eligible"
        } else {
            "skipped"
        };
        let _ = write!(
            h,
            r#"<tr class="replica" data-replica="{i}" data-state="{state}"><td>replica{i} ({host})</td><td class="{cls}">{state}</td><td>{bytes}</td><td>{secs}</td><td>{reads}</td><td>{why}</td></tr>"#,
            host = esc(&r.host),
            cls = if r.eligible { "ok" } else { "bad" },
            bytes = r.lag_bytes.map(|b| b.to_string()).unwrap_or_else(|| "?".into()),
            secs = r.lag_seconds.map(|s| format!("{s:.2}")).unwrap_or_else(|| "?".into()),
            reads = r.reads,
            why = esc(r.reason.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</table>");
    if let Some(pg) = &m.pg {
        let conns: i64 = pg.activity.iter().map(|a| a.2).sum();
        let _ = write!(
            h,
            r#"<p id="pgstats">Connections {conns} / {max} · cache hit ratio {ratio:.2}% · deadlocks {dl} · WAL archive failures {af} · last archived {age} · size {size:.1} MiB</p>"#,
            max = pg.max_connections,
            ratio = pg.cache_hit_ratio() * 100.0,
            dl = pg.deadlocks,
            af = pg.archiver_failed,
            age = pg.last_archive_age_s.map(|a| format!("{a:.0} s ago")).unwrap_or_else(|| "never".into()),
            size = pg.size_bytes as f64 / 1048576.0,
        );
    } else if let Some(e) = &m.pg_error {
        let _ = write!(h, r#"<p id="pgstats" class="bad">PostgreSQL statistics unavailable: {}</p>"#, esc(e));
    }

    // Latency chart.
    h.push_str("<h2>Recent latency</h2>");
    h.push_str(&chart(samples, m));

    // Slowest statements.
    h.push_str(r#"<h2>Slowest statements (pg_stat_statements, by mean time)</h2><table id="statements"><tr><th>Mean</th><th>Calls</th><th>Total</th><th>Statement</th></tr>"#);
    for s in &m.statements {
        let _ = write!(
            h,
            r#"<tr class="statement"><td>{:.1} ms</td><td>{}</td><td>{:.2} s</td><td><code>{}</code></td></tr>"#,
            s.mean_ms,
            s.calls,
            s.total_seconds,
            esc(&truncate(&s.query, 300))
        );
    }
    h.push_str("</table>");
    if let Some(e) = &m.statements_error {
        let _ = write!(h, r#"<p class="bad">{}</p>"#, esc(e));
    }
    if !m.queries.slow.is_empty() {
        let _ = write!(
            h,
            r#"<h2>Slow queries of this process (over {:.0} ms)</h2><table id="slow"><tr><th>Duration</th><th>Route</th><th>Statement</th></tr>"#,
            m.queries.slow_query_threshold_ms
        );
        for s in m.queries.slow.iter().take(20) {
            let _ = write!(
                h,
                "<tr><td>{:.1} ms</td><td>{}</td><td><code>{}</code></td></tr>",
                s.duration_ms,
                esc(&s.route),
                esc(&truncate(&s.statement, 300))
            );
        }
        h.push_str("</table>");
    }
    let mg = &m.mongo;
    let _ = write!(
        h,
        r#"<h2>MongoDB</h2><p id="mongo">{} {} · connections {}</p>"#,
        if mg.up { "up" } else { "DOWN" },
        esc(mg.version.as_deref().unwrap_or("")),
        mg.connections.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    );
    h.push_str(r#"<h2>Migrations</h2><ul id="migrations">"#);
    for g in &m.migrations {
        let _ = write!(
            h,
            "<li>{}: {} applied, {} pending (version {})</li>",
            g.store,
            g.applied,
            g.pending,
            g.current_version.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
        );
    }
    h.push_str("</ul>");
    backups(&mut h, m);
    h.push_str("</body></html>\n");
    h
}

/// The read shapes that took the most server time: each one's estimate and
/// lane (shared pipelined connections, or one of its own).
fn read_shapes(h: &mut String, m: &MetricsSnapshot) {
    if m.cluster.shapes.is_empty() {
        return;
    }
    h.push_str(r#"<h2>Read shapes (top by server time)</h2><table id="shapes"><tr><th>Estimate</th><th>Lane</th><th>Reads</th><th>Statement</th></tr>"#);
    for s in m.cluster.shapes.iter().take(5) {
        let _ = write!(
            h,
            r#"<tr class="shape" data-lane="{lane}"><td>{ms:.2} ms</td><td>{lane}</td><td>{reads}</td><td><code>{sql}</code></td></tr>"#,
            ms = s.estimate_seconds * 1000.0,
            lane = s.lane.as_str(),
            reads = s.reads,
            sql = esc(&truncate(&s.sql, 300)),
        );
    }
    h.push_str("</table>");
}

/// The last success of each backup job (schedule and catalog merged); nothing when backups are not configured.
fn backups(h: &mut String, m: &MetricsSnapshot) {
    if m.backups.is_empty() && m.backups_error.is_none() {
        return;
    }
    h.push_str(r#"<h2>Backups</h2><table id="backups"><tr><th>Kind</th><th>Last success</th><th>Size</th><th>What</th><th>Failures</th><th>Last error</th></tr>"#);
    for b in &m.backups {
        let age = b.last_success.map(|t| format!("{:.0} s ago", (m.at - t).max(0.0))).unwrap_or_else(|| "never".into());
        let size = b.last_size_bytes.map(|n| format!("{:.1} MiB", n as f64 / 1048576.0)).unwrap_or_default();
        let _ = write!(
            h,
            r#"<tr class="backup" data-kind="{kind}"><td>{kind}{running}</td><td class="{cls}">{age}</td><td>{size}</td><td><code>{what}</code></td><td>{f}</td><td>{err}</td></tr>"#,
            kind = esc(&b.kind),
            running = if b.running { " (running)" } else { "" },
            cls = if b.last_success.is_some() { "ok" } else { "bad" },
            what = esc(b.last_detail.as_deref().unwrap_or("")),
            f = b.failures,
            err = esc(&truncate(b.last_error.as_deref().unwrap_or(""), 200)),
        );
    }
    h.push_str("</table>");
    if let Some(e) = &m.backups_error {
        let _ = write!(h, r#"<p class="bad">Backup catalog: {}</p>"#, esc(e));
    }
}

fn truncate(s: &str, n: usize) -> String {
    let one = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > n {
        one.chars().take(n - 1).collect::<String>() + "…"
    } else {
        one
    }
}

/// One polyline per server: readiness-check response time over the last samples.
fn chart(samples: &[Sample], m: &MetricsSnapshot) -> String {
    const W: f64 = 600.0;
    const H: f64 = 160.0;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let t0 = samples.first().map(|s| s.0).unwrap_or(0.0);
    let t1 = samples.last().map(|s| s.0).unwrap_or(1.0).max(t0 + 1.0);
    for (t, servers) in samples {
        for (name, ms, _) in servers {
            match series.iter_mut().find(|(n, _)| n == name) {
                Some((_, pts)) => pts.push((*t, *ms)),
                None => series.push((name.clone(), vec![(*t, *ms)])),
            }
        }
    }
    let max = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.1)).fold(1.0_f64, f64::max) * 1.1;
    let mut svg = format!(
        r##"<svg id="latency-chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" viewBox="0 0 {W} {}" role="img" aria-label="readiness check response time, ms"><rect x="0" y="0" width="{W}" height="{H}" fill="#fff" stroke="#ddd"/><text x="4" y="12" font-size="10">{max:.1} ms</text><text x="4" y="{}" font-size="10">0</text>"##,
        H + 40.0,
        H + 40.0,
        H - 3.0
    );
    for (k, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let points: Vec<String> = pts
            .iter()
            .map(|(t, ms)| format!("{:.1},{:.1}", (t - t0) / (t1 - t0) * (W - 10.0) + 5.0, H - ms / max * (H - 15.0)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="series" data-server="{}" fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            esc(name),
            points.join(" ")
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="11" fill="{color}">{}</text>"#,
            5 + (k % 3) * 200,
            H + 15.0 + (k / 3) as f64 * 14.0,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    let q = &m.queries;
    if !q.history.is_empty() {
        let _ = write!(
            svg,
            "<p>Statements of this process, last {} s: ",
            q.history.first().map(|p| p.age_s + 1).unwrap_or(0)
        );
        let n: u64 = q.history.iter().map(|p| p.count).sum();
        let worst = q.history.iter().map(|p| p.max_ms).fold(0.0, f64::max);
        let _ = write!(svg, "{n} run, slowest {worst:.1} ms</p>");
    }
    svg
}
