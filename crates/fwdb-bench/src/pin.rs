//! `--pin`: the servers on one CPU, the benchmark's client on the other.
//!
//! Unpinned, on a two-core machine, the client's runtime threads and some
//! 70-200 server processes share both cores, and which of them the scheduler
//! runs next differs from one measurement to the next. Pinned, each side has
//! a core of its own, so every contender meets the same machine; throughput
//! is lower (one core of server), the ratios are steadier.

use crate::Res;

pub(crate) const SERVER_CPU: usize = 1;
pub(crate) const CLIENT_CPU: usize = 0;

/// Restricts the calling thread, and every thread or process it starts from
/// now on, to `cpu`.
pub(crate) fn this_thread_to(cpu: usize) -> Res<()> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cpu >= cpus {
        return Err(format!("--pin needs at least {} CPUs; this machine has {cpus}", cpu + 1).into());
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(format!("sched_setaffinity to CPU {cpu}: {}", std::io::Error::last_os_error()).into());
    }
    Ok(())
}
