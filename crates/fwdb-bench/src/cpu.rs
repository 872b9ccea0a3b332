//! CPU time per operation, the client and the servers apart: `--paired`'s
//! second measure. On two shared cores a cell's throughput swings by ±30 %
//! between rounds with whatever else wanted the cores; the CPU an operation
//! costs does not, and it says where a contender spends more than raw.

/// CPU seconds so far: this process (every thread), and every process named
/// `postgres` (the stack's servers and their backends; the machine's own
/// idle cluster adds nothing measurable).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Cpu {
    pub client: f64,
    pub servers: f64,
}

impl std::ops::Add for Cpu {
    type Output = Cpu;
    fn add(self, o: Cpu) -> Cpu {
        Cpu { client: self.client + o.client, servers: self.servers + o.servers }
    }
}

impl Cpu {
    pub(crate) fn total(&self) -> f64 {
        self.client + self.servers
    }

    pub(crate) fn per(&self, ops: f64) -> Cpu {
        Cpu { client: self.client / ops, servers: self.servers / ops }
    }
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, o: Cpu) -> Cpu {
        Cpu { client: self.client - o.client, servers: self.servers - o.servers }
    }
}

/// Reads both, keeping the scan of /proc out of the client's window: call
/// `start()` before the work and `end()` after.
pub(crate) fn start() -> Cpu {
    let servers = server_seconds();
    Cpu { client: client_seconds(), servers }
}

pub(crate) fn end() -> Cpu {
    let client = client_seconds();
    Cpu { client, servers: server_seconds() }
}

fn client_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    seconds(ru.ru_utime) + seconds(ru.ru_stime)
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// The sum of /proc/<pid>/schedstat's first field (nanoseconds on a CPU)
/// over PostgreSQL processes, which are single-threaded. Nanoseconds, where
/// /proc/<pid>/stat counts 10 ms ticks: a 0.4 s slice spread over 64
/// backends would round to nothing.
fn server_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return f64::NAN };
    let mut ns: u64 = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let is_postgres =
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "postgres");
        if !is_postgres {
            continue;
        }
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/schedstat")) {
            ns += parse_schedstat(&s).unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

/// The first field of a schedstat line, "run_ns wait_ns slices".
fn parse_schedstat(s: &str) -> Option<u64> {
    s.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedstat_line_gives_its_time_on_cpu() {
        assert_eq!(parse_schedstat("123456789 2000 17\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    #[test]
    fn busy_work_shows_in_the_client_time() {
        // Bounded by wall time, judged by CPU time: on a loaded machine 20 ms
        // of CPU may take far longer than 20 ms.
        let before = start();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        while (end() - before).client < 0.02 {
            assert!(std::time::Instant::now() < deadline, "10 s of busy work and no CPU time counted");
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!((end() - before).servers.is_finite());
    }
}
