//! The libpam functions the module calls, and a handle wrapper that keeps
//! every raw pointer in this file.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::ptr;

/// Linux-PAM return codes (`security/_pam_types.h`).
pub mod code {
    use std::ffi::c_int;
    pub const SUCCESS: c_int = 0;
    pub const SERVICE_ERR: c_int = 3;
    pub const SYSTEM_ERR: c_int = 4;
    pub const AUTH_ERR: c_int = 7;
    pub const AUTHINFO_UNAVAIL: c_int = 9;
    pub const USER_UNKNOWN: c_int = 10;
    pub const MAXTRIES: c_int = 11;
    pub const CONV_ERR: c_int = 19;
    pub const IGNORE: c_int = 25;
}

/// `flags` bit asking the module to print nothing.
pub const PAM_SILENT: c_int = 0x8000;

const PAM_SERVICE: c_int = 1;
const PAM_CONV: c_int = 5;
const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;

/// Message styles (`security/_pam_types.h`).
pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub const PAM_ERROR_MSG: c_int = 3;
pub const PAM_TEXT_INFO: c_int = 4;

/// The opaque libpam handle.
#[repr(C)]
pub struct PamHandleT {
    _private: [u8; 0],
}

/// `struct pam_message`.
#[repr(C)]
pub struct PamMessage {
    pub msg_style: c_int,
    pub msg: *const c_char,
}

/// `struct pam_response`.
#[repr(C)]
pub struct PamResponse {
    pub resp: *mut c_char,
    pub resp_retcode: c_int,
}

/// `struct pam_conv`.
#[repr(C)]
pub struct PamConv {
    pub conv: Option<
        unsafe extern "C" fn(
            num_msg: c_int,
            msg: *mut *const PamMessage,
            resp: *mut *mut PamResponse,
            appdata_ptr: *mut c_void,
        ) -> c_int,
    >,
    pub appdata_ptr: *mut c_void,
}

type Cleanup = unsafe extern "C" fn(pamh: *mut PamHandleT, data: *mut c_void, error_status: c_int);

#[link(name = "pam")]
extern "C" {
    fn pam_get_user(
        pamh: *mut PamHandleT,
        user: *mut *const c_char,
        prompt: *const c_char,
    ) -> c_int;
    fn pam_get_item(pamh: *const PamHandleT, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_set_data(
        pamh: *mut PamHandleT,
        name: *const c_char,
        data: *mut c_void,
        cleanup: Option<Cleanup>,
    ) -> c_int;
    fn pam_get_data(
        pamh: *const PamHandleT,
        name: *const c_char,
        data: *mut *const c_void,
    ) -> c_int;
    fn pam_fail_delay(pamh: *mut PamHandleT, usec: c_uint) -> c_int;
}

/// A PAM handle for the duration of one `pam_sm_*` call.
pub struct Handle {
    raw: *mut PamHandleT,
}

impl Handle {
    /// Wraps the handle libpam passed in; `None` for NULL.
    pub fn new(raw: *mut PamHandleT) -> Option<Self> {
        (!raw.is_null()).then_some(Handle { raw })
    }

    /// `PAM_USER`, asking the application for it if unset. `None` if there
    /// is none or it is not UTF-8.
    pub fn user(&self) -> Option<String> {
        let mut user: *const c_char = ptr::null();
        // SAFETY: `raw` is the live handle of this call; `user` is a valid out
        // pointer; a NULL prompt asks libpam to use its default.
        let rc = unsafe { pam_get_user(self.raw, &mut user, ptr::null()) };
        if rc != code::SUCCESS || user.is_null() {
            return None;
        }
        // SAFETY: on success libpam returns a NUL-terminated string it owns,
        // valid until the item changes; we copy it at once.
        let user = unsafe { CStr::from_ptr(user) };
        user.to_str().ok().map(str::to_owned)
    }

    fn string_item(&self, item: c_int) -> Option<String> {
        let mut value: *const c_void = ptr::null();
        // SAFETY: `raw` is live; `value` is a valid out pointer.
        let rc = unsafe { pam_get_item(self.raw, item, &mut value) };
        if rc != code::SUCCESS || value.is_null() {
            return None;
        }
        // SAFETY: string items are NUL-terminated strings owned by libpam; copied at once.
        let s = unsafe { CStr::from_ptr(value.cast::<c_char>()) };
        Some(s.to_string_lossy().into_owned())
    }

    /// `PAM_SERVICE`.
    pub fn service(&self) -> Option<String> {
        self.string_item(PAM_SERVICE)
    }

    /// `PAM_RHOST`, for the log only.
    pub fn rhost(&self) -> Option<String> {
        self.string_item(PAM_RHOST).filter(|r| !r.is_empty())
    }

    /// `PAM_TTY`: what the application says the login's terminal is.
    pub fn tty(&self) -> Option<String> {
        self.string_item(PAM_TTY).filter(|t| !t.is_empty())
    }

    /// The application's conversation function, if it set a usable one.
    pub fn conversation(&self) -> Option<&PamConv> {
        let mut value: *const c_void = ptr::null();
        // SAFETY: `raw` is live; `value` is a valid out pointer.
        let rc = unsafe { pam_get_item(self.raw, PAM_CONV, &mut value) };
        if rc != code::SUCCESS || value.is_null() {
            return None;
        }
        // SAFETY: PAM_CONV is a `struct pam_conv` owned by libpam that lives
        // as long as the handle, which outlives this borrow of `self`.
        let conv = unsafe { &*value.cast::<PamConv>() };
        conv.conv.is_some().then_some(conv)
    }

    /// Asks libpam to delay a failure report by `millis` (the largest delay
    /// any module asks for wins); the module itself never sleeps.
    pub fn fail_delay(&self, millis: u32) {
        // SAFETY: `raw` is live.
        unsafe {
            pam_fail_delay(self.raw, millis.saturating_mul(1000));
        }
    }

    /// Stores `value` under `name` until the handle ends, replacing any
    /// earlier value (which is dropped). Returns whether it was stored.
    pub fn set_data<T>(&self, name: &CStr, value: Box<T>) -> bool {
        unsafe extern "C" fn drop_box<T>(_: *mut PamHandleT, data: *mut c_void, _: c_int) {
            if !data.is_null() {
                // A panic must not unwind into libpam.
                let _ = std::panic::catch_unwind(|| {
                    // SAFETY: `data` came from `Box::into_raw` in `set_data::<T>`
                    // and libpam calls the cleanup exactly once.
                    drop(unsafe { Box::from_raw(data.cast::<T>()) });
                });
            }
        }
        let raw = Box::into_raw(value);
        // SAFETY: `raw` is live; `name` is NUL-terminated; the cleanup frees
        // exactly the box we pass.
        let rc = unsafe { pam_set_data(self.raw, name.as_ptr(), raw.cast(), Some(drop_box::<T>)) };
        if rc != code::SUCCESS {
            // SAFETY: libpam did not take ownership; reclaim and drop it.
            drop(unsafe { Box::from_raw(raw) });
            return false;
        }
        true
    }

    /// The value stored under `name` by [`Handle::set_data`] with the same `T`.
    pub fn get_data<T>(&self, name: &CStr) -> Option<&T> {
        let mut value: *const c_void = ptr::null();
        // SAFETY: `raw` is live; `value` is a valid out pointer.
        let rc = unsafe { pam_get_data(self.raw, name.as_ptr(), &mut value) };
        if rc != code::SUCCESS || value.is_null() {
            return None;
        }
        // SAFETY: only `set_data::<T>` stores under our names, so the pointer
        // is a live `T` owned by libpam until the handle ends.
        Some(unsafe { &*value.cast::<T>() })
    }
}
