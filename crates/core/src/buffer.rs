//! Owner-free shared memory: the storage of `SharedBuffer` (seed 000's
//! "memoryview variant"). A block of bytes, 64-byte aligned, zero-filled or
//! copied at creation, owned by no interpreter and freed when the last
//! reference to it goes — in whichever interpreter or thread that is.
//!
//! Reference counting is an [`Arc`]: the only cross-thread protocol here is
//! "the last drop frees", which `Arc`'s release-decrement / acquire-fence pair
//! provides (`tests/loom.rs`: `shared_mem_freed_once_after_last_drop`).

use crate::sync::Arc;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fmt;
use std::ptr::NonNull;

/// The alignment of every block: a cache line, and enough for any SIMD type.
pub const ALIGN: usize = 64;

/// The block could not be allocated (too large, or out of memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError {
    /// The size asked for.
    pub nbytes: usize,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot allocate a shared buffer of {} bytes",
            self.nbytes
        )
    }
}
impl std::error::Error for AllocError {}

/// A block of shared bytes.
///
/// Ownership: owned by no interpreter; shared through `Arc<SharedMem>` by every
/// `SharedBuffer` object (in any interpreter) and value in transit; freed by
/// the last `Arc` drop on any thread. Reads and writes through
/// [`SharedMem::as_ptr`] are unsynchronised, like a `bytearray` shared between
/// threads: callers order them (queues, locks, atomics).
pub struct SharedMem {
    ptr: NonNull<u8>,
    len: usize,
    readonly: bool,
}

// SAFETY: the block is plain memory with no thread affinity; the pointer is
// only freed by `Drop`, which runs once, after every `Arc` is gone.
unsafe impl Send for SharedMem {}
// SAFETY: shared access hands out only the raw pointer; synchronising the
// bytes is the user's contract (documented above), as for Python buffers.
unsafe impl Sync for SharedMem {}

impl SharedMem {
    fn layout(nbytes: usize) -> Result<Layout, AllocError> {
        Layout::from_size_align(nbytes.max(1), ALIGN).map_err(|_| AllocError { nbytes })
    }

    /// A zero-filled block of `nbytes`.
    pub fn zeroed(nbytes: usize, readonly: bool) -> Result<Arc<SharedMem>, AllocError> {
        let layout = Self::layout(nbytes)?;
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(p).ok_or(AllocError { nbytes })?;
        Ok(Arc::new(SharedMem {
            ptr,
            len: nbytes,
            readonly,
        }))
    }

    /// A block holding a copy of `bytes`.
    pub fn copy_of(bytes: &[u8], readonly: bool) -> Result<Arc<SharedMem>, AllocError> {
        let m = Self::zeroed(bytes.len(), false)?;
        // SAFETY: the fresh block has `bytes.len()` bytes, is not shared yet,
        // and does not overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), m.ptr.as_ptr(), bytes.len()) };
        let mut m = m;
        if readonly {
            // The Arc is unique here (just made): set the flag in place.
            if let Some(inner) = Arc::get_mut(&mut m) {
                inner.readonly = true;
            }
        }
        Ok(m)
    }

    /// The first byte (64-byte aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether exports must be read-only.
    pub fn readonly(&self) -> bool {
        self.readonly
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this very layout (the length is
        // immutable), freed exactly once here.
        unsafe {
            dealloc(
                self.ptr.as_ptr(),
                Self::layout(self.len).expect("layout was valid at allocation"),
            )
        };
    }
}

impl fmt::Debug for SharedMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMem")
            .field("len", &self.len)
            .field("readonly", &self.readonly)
            .finish()
    }
}
