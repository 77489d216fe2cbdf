//! The `leadloop` binary: everything lives in the library; see `leadloop::cli`. Only the
//! allocator is chosen here, since a library cannot choose it for the programs that use it.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this symbol when it starts (before `main`); the options
/// and why are in `leadloop::daemon::MALLOC_CONF`. `_RJEM_MALLOC_CONF` in the environment
/// still overrides them, for diagnosis.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: ConfPtr = ConfPtr(leadloop::daemon::MALLOC_CONF.as_ptr());

/// A C string pointer that may sit in a static: it points to a literal that never changes.
#[repr(transparent)]
struct ConfPtr(*const std::ffi::c_char);

// SAFETY: the pointer is to a `'static` immutable C string, only ever read.
unsafe impl Sync for ConfPtr {}

fn main() -> std::process::ExitCode {
    leadloop::cli::main()
}
