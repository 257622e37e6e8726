//! New `bytes` objects filled from memory outside the interpreter (a pinned
//! `bytes` of another interpreter): one copy, no zeroing, and for large ones
//! transparent huge pages asked for first.
//!
//! A large `bytes` gets fresh memory from the allocator (glibc maps every
//! block of 32 MiB or more anew; mimalloc gives huge blocks their own
//! segment), so copying into it first-touches every page: at 64 MiB that is
//! 16,384 page faults, and they, not the copy, are the cost (measured on
//! 3.14, 2-vCPU AMD EPYC VM, THP in `madvise` mode: 31-124 ms per 64 MiB
//! copy into a fresh `bytes`, 7-8 ms with `MADV_HUGEPAGE` on its 2 MiB-aligned
//! middle). The advice only changes how the kernel backs those pages; where
//! THP is off or unsupported it fails and is ignored.

use super::{sys, Owned, PyResult};
use std::ffi::c_char;

/// From this size a new `bytes` asks for huge pages: at and above glibc's
/// largest mmap threshold the block is always a fresh mapping of its own;
/// smaller ones are usually recycled heap memory, already faulted in.
pub const HUGE_PAGES_FROM: usize = 32 << 20;

/// The size of a huge page on x86-64 and aarch64 (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// Ask the kernel to back the whole huge pages inside `[ptr, ptr + len)` with
/// transparent huge pages (a hint: errors are ignored).
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
    let end = (ptr as usize + len) & !(HUGE_PAGE - 1);
    if end <= start {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `[start, end)` lies inside the caller's live allocation and is
    // page aligned; MADV_HUGEPAGE changes only how the kernel backs those
    // pages (their contents and mapping stay), so no memory is invalidated.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

/// A new `bytes` of the attached interpreter holding a copy of `src`.
///
/// # Safety
/// Attached; `src` stays valid and unchanged during the call.
pub unsafe fn bytes_copy_of(src: &[u8]) -> PyResult<Owned> {
    // SAFETY: attached; a NULL source gives an uninitialized buffer of
    // `src.len()` bytes (plus the NUL CPython writes), which is fully written
    // below before the object is handed out; `src` does not overlap a block
    // just allocated.
    unsafe {
        let o = Owned::from_new(sys::PyBytes_FromStringAndSize(
            std::ptr::null::<c_char>(),
            src.len() as sys::Py_ssize_t,
        ))?;
        let dst = sys::PyBytes_AsString(o.as_ptr()) as *mut u8;
        if src.len() >= HUGE_PAGES_FROM {
            advise_huge_pages(dst, src.len());
        }
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
        Ok(o)
    }
}
