// pyo3-ffi sets `Py_GIL_DISABLED` / `Py_3_x` cfgs only for itself; our crate
// needs them too, or e.g. the `Py_mod_gil` slot silently disappears and 3.13t
// re-enables the GIL on import (DESIGN.md, "Why raw pyo3-ffi").
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
