//! The engine's own threads yield to the application's.
//!
//! Every thread anosys starts for its own work (the pipeline's worker and
//! its blocking pool, the extraction thread, the proxy's capture and
//! access-log threads) calls [`mark_background_thread`] first. On Linux
//! that makes it `SCHED_BATCH`: the scheduler does not let it preempt a
//! running thread when it wakes, so a thread of the application (or a
//! proxy's serving thread) that is running keeps its core, and one that
//! wakes while ours runs gets it at once. Its share of the CPU stays the
//! same as any other thread's (unlike a higher `nice`, which would starve
//! a pipeline that must keep up under load and make it drop records).
//!
//! Measured on the proxy (plain chats at 1,000 requests/s evenly spaced,
//! 10,000 a run, five rounds of each build in turn): p99 0.70-1.04 ms
//! (mean 0.90) before, 0.68-0.94 (mean 0.82) after, lower in four rounds
//! of five; p50 and CPU per request unchanged. A small gain, within the
//! noise of the full `bench/proxy_load.sh` (see the README).
//!
//! A thread whose policy is not the normal one (the application runs
//! under a real-time or idle policy, which threads inherit) is left as it
//! is.

/// Marks the calling thread as background work: `SCHED_BATCH` on Linux
/// when its policy is the normal one (`SCHED_OTHER`), nothing elsewhere.
/// Never fails: a refusal (a seccomp filter) leaves the thread as it was.
///
/// ```
/// std::thread::spawn(|| {
///     anosys::embed::mark_background_thread();
///     // This thread's wake-ups no longer preempt the application's.
/// })
/// .join()
/// .unwrap();
/// ```
pub fn mark_background_thread() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: both calls act on the calling thread (pid 0) and read
        // only the `sched_param` they are given, which lives on the stack
        // for the duration of the call.
        unsafe {
            if libc::sched_getscheduler(0) == libc::SCHED_OTHER {
                let param = libc::sched_param { sched_priority: 0 };
                let _ = libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
            }
        }
    }
}

/// The scheduling policy of thread `tid` of this process, from
/// `/proc/self/task/<tid>/stat` (its 41st field): 0 normal, 3 batch.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn policy_of(tid: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The name, in parentheses, may hold spaces: count fields after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(41 - 3)?.parse().ok()
}

/// This process's threads named `name`, by thread id.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn threads_named(name: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|t| {
            let tid = t.ok()?.file_name().into_string().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
            (comm.trim_end() == name).then_some(tid)
        })
        .collect()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_marked_thread_is_batch_and_others_are_not() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let marked = std::thread::Builder::new()
            .name("bg-marked".into())
            .spawn(move || {
                mark_background_thread();
                tx.send(()).unwrap();
                let _ = done_rx.recv();
            })
            .unwrap();
        rx.recv().unwrap();
        let tids = threads_named("bg-marked");
        assert_eq!(tids.len(), 1);
        assert_eq!(policy_of(&tids[0]), Some(libc::SCHED_BATCH as u32));
        // The test's own thread is untouched.
        let own = unsafe { libc::gettid() }.to_string();
        assert_eq!(policy_of(&own), Some(libc::SCHED_OTHER as u32));
        done_tx.send(()).unwrap();
        marked.join().unwrap();
    }

    #[test]
    fn a_thread_under_another_policy_is_left_as_it_is() {
        std::thread::spawn(|| {
            let param = libc::sched_param { sched_priority: 0 };
            // SCHED_IDLE needs no privilege.
            assert_eq!(unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) }, 0);
            mark_background_thread();
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_pipeline_worker_is_a_background_thread() {
        let dir = std::env::temp_dir().join(format!("anosys-background-{}", std::process::id()));
        let config = crate::Config::builder()
            .sinks([crate::SinkKind::Jsonl])
            .jsonl_path(dir.join("r.jsonl"))
            .build()
            .unwrap();
        let pipeline = crate::Pipeline::new(config).unwrap();
        assert!(pipeline.submit(crate::Record::new(crate::RecordKind::Raw, "r")));
        pipeline.flush(None);
        let workers = threads_named("anosys-worker");
        assert!(!workers.is_empty());
        for tid in workers {
            assert_eq!(policy_of(&tid), Some(libc::SCHED_BATCH as u32), "thread {tid}");
        }
        assert_eq!(pipeline.shutdown(None).counters.delivered, 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
