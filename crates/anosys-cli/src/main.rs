//! `anosys`: see `anosys --help`.

// The proxy and the store free records on other threads than the ones that
// built them; glibc's allocator spent about a fifth of the proxy's CPU on
// that (malloc_consolidate, unlink_chunk, _int_free), mimalloc a fraction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process, and memory mimalloc frees
/// given back at once: its arenas would otherwise be backed by 2 MiB pages,
/// purged only in such units and a second late; the proxy's peak RSS at
/// 500-1,000 req/s was 52-56 MiB instead of 36-39 MiB (glibc's allocator:
/// about 36 MiB, for 15-20% more CPU per request).
#[cfg(target_os = "linux")]
fn bound_memory() {
    unsafe extern "C" {
        fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    const PR_SET_THP_DISABLE: std::ffi::c_int = 41;
    // mimalloc 3's option numbers: `mi_option_purge_delay` (default 1000 ms,
    // also checked to tell the numbering) and `mi_option_allow_thp` (default 1).
    const MI_PURGE_DELAY: std::ffi::c_int = 15;
    const MI_ALLOW_THP: std::ffi::c_int = 43;
    let (zero, one): (std::ffi::c_ulong, std::ffi::c_ulong) = (0, 1);
    // SAFETY: prctl(2) with PR_SET_THP_DISABLE takes one flag argument and
    // touches nothing of ours (on a kernel without it, it fails harmlessly);
    // mimalloc's option API may be called at any time, and an option is set
    // only when the numbering is the one above.
    unsafe {
        prctl(PR_SET_THP_DISABLE, one, zero, zero, zero);
        if mi_option_get(MI_PURGE_DELAY) == 1000 && mi_option_get(MI_ALLOW_THP) == 1 {
            mi_option_set(MI_ALLOW_THP, 0);
            mi_option_set(MI_PURGE_DELAY, 0);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn bound_memory() {}

fn main() -> std::process::ExitCode {
    bound_memory();
    anosys_cli::run(std::env::args_os())
}
