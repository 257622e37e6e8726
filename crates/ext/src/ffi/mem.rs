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

/// Copy `n` bytes from `src` to `dst` (not overlapping), inline when `n` is
/// at most 16: the copies of short `str`s' characters (most dict keys and
/// names), where a call to `memcpy` cost about as many instructions as the
/// copy (callgrind on 3.14, a put + get of a 100-entry `str`->`int`
/// dict: 78,755 -> 77,015 instructions). Two overlapping 8-byte (or 4-byte) moves cover 4-16 bytes; three
/// single bytes cover 1-3. Longer copies call `memcpy`.
///
/// # Safety
/// `src` is valid for reading `n` bytes, `dst` for writing `n` bytes, and
/// the ranges do not overlap.
#[inline(always)]
pub unsafe fn copy_short(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: the caller's contract; every access below lies in
    // `[0, n)` of its range (`n - 8 >= 0` when `n >= 8`, and so on).
    unsafe {
        if n >= 8 {
            if n > 16 {
                std::ptr::copy_nonoverlapping(src, dst, n);
                return;
            }
            let (a, b) = (
                src.cast::<u64>().read_unaligned(),
                src.add(n - 8).cast::<u64>().read_unaligned(),
            );
            dst.cast::<u64>().write_unaligned(a);
            dst.add(n - 8).cast::<u64>().write_unaligned(b);
        } else if n >= 4 {
            let (a, b) = (
                src.cast::<u32>().read_unaligned(),
                src.add(n - 4).cast::<u32>().read_unaligned(),
            );
            dst.cast::<u32>().write_unaligned(a);
            dst.add(n - 4).cast::<u32>().write_unaligned(b);
        } else if n > 0 {
            let (a, m, z) = (*src, *src.add(n / 2), *src.add(n - 1));
            *dst = a;
            *dst.add(n / 2) = m;
            *dst.add(n - 1) = z;
        }
    }
}

/// Append `n` bytes at `src` to `out` ([`copy_short`]'s copy).
///
/// # Safety
/// `src` is valid for reading `n` bytes and not inside `out`'s buffer.
#[inline(always)]
pub unsafe fn extend_short(out: &mut Vec<u8>, src: *const u8, n: usize) {
    out.reserve(n);
    // SAFETY: `reserve` made room for `n` more bytes past the length; they
    // are all written before the length covers them; `src` is the caller's.
    unsafe {
        copy_short(src, out.as_mut_ptr().add(out.len()), n);
        out.set_len(out.len() + n);
    }
}
