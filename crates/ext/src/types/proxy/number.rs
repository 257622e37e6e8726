//! The number protocol of `SharedObjectProxy`: truth, the unary and
//! conversion slots, and the binary and ternary operators (the proxy may be
//! either operand; the other one crosses by value, see
//! [`owner_op_mode`](super::call::owner_op_mode)).

use super::call::{int_op, some};
use super::target::proxy_target;
use super::SharedObjectProxy;
use crate::ffi::class::This;
use crate::ffi::{sys, Owned, PyResult};

type P<'a> = This<'a, SharedObjectProxy>;

/// A binary number operation of the C API.
type BinaryFn = unsafe extern "C" fn(*mut sys::PyObject, *mut sys::PyObject) -> *mut sys::PyObject;

pub(super) fn bool(this: P) -> PyResult<bool> {
    // SAFETY: in the closure: attached to the owner, a live object.
    int_op(&this.target, &[], &|o, _| unsafe {
        sys::PyObject_IsTrue(o) as i64
    })
    .map(|v| v != 0)
}

macro_rules! unary {
    ($($name:ident => $f:path),* $(,)?) => {$(
        pub(super) fn $name(this: P) -> PyResult<Owned> {
            // SAFETY: in the closure: attached to the owner, a live object.
            unsafe { some(c_op!(&this.target, [], |o, a| $f(o))) }
        }
    )*};
}

unary! {
    negative => sys::PyNumber_Negative,
    positive => sys::PyNumber_Positive,
    invert => sys::PyNumber_Invert,
    absolute => sys::PyNumber_Absolute,
    int => sys::PyNumber_Long,
    float => sys::PyNumber_Float,
    index => sys::PyNumber_Index,
}

/// A binary number slot: the proxy may be either operand.
fn binop(a: *mut sys::PyObject, b: *mut sys::PyObject, f: BinaryFn) -> PyResult<Owned> {
    // SAFETY: CPython passes live operands; `f` gets live objects in the owner.
    unsafe {
        let r = if let Some(t) = proxy_target(a) {
            c_op_val!(t, [b], |o, x| f(o, x[0]))
        } else if let Some(t) = proxy_target(b) {
            c_op_val!(t, [a], |o, x| f(x[0], o))
        } else {
            return Ok(Owned::from_borrowed(sys::Py_NotImplemented()));
        };
        some(r)
    }
}

macro_rules! binary {
    ($($name:ident => $f:path),* $(,)?) => {$(
        pub(super) fn $name(a: *mut sys::PyObject, b: *mut sys::PyObject) -> PyResult<Owned> {
            binop(a, b, $f)
        }
    )*};
}

binary! {
    add => sys::PyNumber_Add,
    subtract => sys::PyNumber_Subtract,
    multiply => sys::PyNumber_Multiply,
    remainder => sys::PyNumber_Remainder,
    divmod => sys::PyNumber_Divmod,
    lshift => sys::PyNumber_Lshift,
    rshift => sys::PyNumber_Rshift,
    and => sys::PyNumber_And,
    xor => sys::PyNumber_Xor,
    or => sys::PyNumber_Or,
    floor_divide => sys::PyNumber_FloorDivide,
    true_divide => sys::PyNumber_TrueDivide,
    matrix_multiply => sys::PyNumber_MatrixMultiply,
    inplace_add => sys::PyNumber_InPlaceAdd,
    inplace_subtract => sys::PyNumber_InPlaceSubtract,
    inplace_multiply => sys::PyNumber_InPlaceMultiply,
    inplace_remainder => sys::PyNumber_InPlaceRemainder,
    inplace_lshift => sys::PyNumber_InPlaceLshift,
    inplace_rshift => sys::PyNumber_InPlaceRshift,
    inplace_and => sys::PyNumber_InPlaceAnd,
    inplace_xor => sys::PyNumber_InPlaceXor,
    inplace_or => sys::PyNumber_InPlaceOr,
    inplace_floor_divide => sys::PyNumber_InPlaceFloorDivide,
    inplace_true_divide => sys::PyNumber_InPlaceTrueDivide,
    inplace_matrix_multiply => sys::PyNumber_InPlaceMatrixMultiply,
}

fn ternop(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    c: *mut sys::PyObject,
    inplace: bool,
) -> PyResult<Owned> {
    let f = if inplace {
        sys::PyNumber_InPlacePower
    } else {
        sys::PyNumber_Power
    };
    // SAFETY: CPython passes live operands; `f` gets live objects in the owner.
    unsafe {
        let r = if let Some(t) = proxy_target(a) {
            c_op_val!(t, [b, c], |o, x| f(o, x[0], x[1]))
        } else if let Some(t) = proxy_target(b) {
            c_op_val!(t, [a, c], |o, x| f(x[0], o, x[1]))
        } else {
            return Ok(Owned::from_borrowed(sys::Py_NotImplemented()));
        };
        some(r)
    }
}

pub(super) fn power(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    c: *mut sys::PyObject,
) -> PyResult<Owned> {
    ternop(a, b, c, false)
}

pub(super) fn inplace_power(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    c: *mut sys::PyObject,
) -> PyResult<Owned> {
    ternop(a, b, c, true)
}
