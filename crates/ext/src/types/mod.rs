//! The Python types, one file (or folder) each, every one declared with the
//! typed class layer (`ffi::class`). Each file exports an [`Entry`]: its
//! classes, its part in owners' lives (a hook) and how its objects cross
//! between interpreters (converters); `module.rs` lists the entries.
//!
//! Imports `ffi`, `runtime` and `xi` (and, sideways, other types).

use crate::ffi::class::ClassDef;
use crate::ffi::{sys, PyResult};
use crate::runtime::fork;
use crate::runtime::owners::{self, Hook};
use crate::runtime::OwnerRecord;
use crate::xi::{self, Converter};

pub mod atomic_dict;
pub mod atomic_ref;
pub mod atomics;
pub mod borrowed;
pub mod buffer;
pub mod channel;
/// The worked example of docs/development.md (type-checked, not registered).
#[cfg(test)]
#[allow(dead_code)]
mod example_counter;
pub mod ids;
pub mod proxy;
pub mod queue;
pub mod views;
pub mod waker;

/// What one type file contributes to the module.
pub struct Entry {
    /// The native classes it declares (made once per interpreter).
    pub classes: &'static [&'static ClassDef],
    /// Its part in owners' lives, if any.
    pub hook: Option<Hook>,
    /// How its objects cross between interpreters.
    pub converters: &'static [&'static Converter],
    /// Holds its structures still across a `fork()` (`runtime::fork`), if
    /// a child could otherwise find one locked or half changed.
    pub fork_hold: Option<fork::HoldFn>,
}

impl Entry {
    /// An entry with nothing in it (to fill with struct update syntax).
    pub const EMPTY: Entry = Entry {
        classes: &[],
        hook: None,
        converters: &[],
        fork_hold: None,
    };
}

/// Set up `entries` for the interpreter of `rec` in `module`'s exec slot:
/// create the classes, register the hooks and (once per process) the
/// converters.
///
/// # Safety
/// Attached; `module` is our module object, in its exec slot.
pub unsafe fn setup(
    module: *mut sys::PyObject,
    rec: &OwnerRecord,
    entries: &'static [Entry],
) -> PyResult<()> {
    for e in entries {
        if let Some(h) = e.hook {
            owners::register_hook(h);
        }
        if let Some(f) = e.fork_hold {
            fork::register(f);
        }
        for def in e.classes {
            // SAFETY: the caller's contract.
            unsafe { rec.types.add_class(module, def)? };
        }
    }
    fork::register(xi::graph::fork_hold);
    static ALL: std::sync::OnceLock<&'static [&'static Converter]> = std::sync::OnceLock::new();
    xi::register(ALL.get_or_init(|| {
        let v: Vec<&'static Converter> = entries
            .iter()
            .flat_map(|e| e.converters.iter().copied())
            .collect();
        Vec::leak(v)
    }));
    Ok(())
}
