//! The binary's allocator: mimalloc, tuned to give memory back soon.
//!
//! Measured on a Bulk Data export of 20,000 clients (docs/benchmarks.md): with mimalloc's
//! defaults (its arena on transparent huge pages, freed pages kept for a second) the process
//! peaked 20 to 40 MB higher than with these settings, in freed pages not yet returned. SQLite keeps glibc's
//! malloc: handed mimalloc, its page caches and result buffers were committed and purged over
//! and over (5 GB purged in one export) for no smaller peak.

// glibc's malloc spent a third of an export's time in malloc, free and consolidation (building
// and dropping millions of small JSON values); mimalloc's thread-local free lists do it for less.
#[global_allocator]
static ALLOCATOR: Mimalloc = Mimalloc;

/// mimalloc, asked for a plain block wherever the layout allows one. The `mimalloc` crate calls
/// `mi_malloc_aligned` for every allocation, and its alignment handling cost a third of each
/// allocation (callgrind, `validate`: about 50 instructions per allocation, 600 allocations per
/// CarePlan). Every mimalloc block is aligned to the machine word (mimalloc's own aligned
/// allocation takes the plain path for `alignment == sizeof(void*)`), so layouts aligned to 8
/// bytes or less need no more; larger alignments still go to the aligned functions.
struct Mimalloc;

/// The alignment every mimalloc block has.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: each method hands the layout's size, and its alignment where it exceeds a word, to
// mimalloc, which returns null or a block of that size and alignment; blocks are freed and
// resized only by mimalloc (`mi_free` takes blocks of either kind).
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        unsafe {
            if layout.align() <= WORD {
                libmimalloc_sys::mi_malloc(layout.size()).cast()
            } else {
                libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        unsafe {
            if layout.align() <= WORD {
                libmimalloc_sys::mi_zalloc(layout.size()).cast()
            } else {
                libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        unsafe {
            if layout.align() <= WORD {
                libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// mimalloc's `mi_option_purge_delay` in the vendored v3 (`mimalloc.h`); the `extended`
/// bindings name only the options v2 and v3 share.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// v3's default purge delay (ms): read back before setting, so that a renumbered option is
/// left alone rather than a wrong one set.
const MI_DEFAULT_PURGE_DELAY: std::ffi::c_long = 1000;
/// Freed pages go back to the OS after this long (ms). v3's 1000 ms held a second of an
/// export's churn, 30 MB; 50 ms costs no measurable time.
const PURGE_DELAY_MS: std::ffi::c_long = 50;

/// Call first in `main`. `MIMALLOC_PURGE_DELAY` in the environment still wins.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: reading and setting an option are plain calls on mimalloc's option table.
        unsafe {
            if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_DEFAULT_PURGE_DELAY {
                libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
            }
        }
    }
}
