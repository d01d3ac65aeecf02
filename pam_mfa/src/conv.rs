//! PAM's conversation, adapted to the flow's [`Prompter`].

use std::ffi::c_char;
use std::ptr;

use mfa_core::flow::{ConversationFailed, Prompter, MAX_MESSAGE};
use mfa_core::qr::chunk_lines;
use nix::libc;
use zeroize::{Zeroize, Zeroizing};

use crate::pam::{
    code, PamConv, PamMessage, PamResponse, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_TEXT_INFO,
};

/// The application's conversation, one message per call (SECURITY item 20).
pub struct PamPrompter<'h> {
    conv: &'h PamConv,
}

impl<'h> PamPrompter<'h> {
    pub fn new(conv: &'h PamConv) -> Self {
        PamPrompter { conv }
    }

    fn send(
        &mut self,
        style: i32,
        text: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationFailed> {
        if text.as_bytes().contains(&0) {
            return Err(ConversationFailed);
        }
        // The text may be a secret (the QR code, the URI, recovery codes): a
        // NUL-terminated copy sized once and wiped when dropped.
        let mut c_text = Zeroizing::new(Vec::with_capacity(text.len() + 1));
        c_text.extend_from_slice(text.as_bytes());
        c_text.push(0);
        let conv = self.conv.conv.ok_or(ConversationFailed)?;
        let msg = PamMessage {
            msg_style: style,
            msg: c_text.as_ptr().cast::<c_char>(),
        };
        let mut msgs: *const PamMessage = &msg;
        let mut resp: *mut PamResponse = ptr::null_mut();
        // SAFETY: one valid message behind a valid array pointer; `resp` is a
        // valid out pointer; appdata is the application's own pointer.
        let rc = unsafe { conv(1, &mut msgs, &mut resp, self.conv.appdata_ptr) };
        // Whatever came back is ours to wipe and free, even on failure.
        // SAFETY: `resp` is NULL or an array of one response allocated by the
        // application with malloc, as the PAM conversation contract requires.
        let answer = unsafe { take_response(resp) };
        if rc == code::SUCCESS {
            Ok(answer)
        } else {
            Err(ConversationFailed)
        }
    }

    fn show(&mut self, style: i32, text: &str) -> Result<(), ConversationFailed> {
        if text.len() <= MAX_MESSAGE {
            return self.send(style, text).map(drop);
        }
        let lines: Zeroizing<Vec<String>> =
            Zeroizing::new(text.lines().map(str::to_owned).collect());
        for chunk in Zeroizing::new(chunk_lines(&lines, MAX_MESSAGE)).iter() {
            self.send(style, chunk)?;
        }
        Ok(())
    }
}

/// Copies the answer out of a response array into a buffer that is wiped on
/// drop, then wipes and frees the application's copy.
///
/// # Safety
/// `resp` must be NULL or point to one `pam_response` allocated with malloc
/// whose `resp` is NULL or a malloc'd NUL-terminated string.
unsafe fn take_response(resp: *mut PamResponse) -> Option<Zeroizing<Vec<u8>>> {
    if resp.is_null() {
        return None;
    }
    // SAFETY: non-NULL, and by the contract points to one response.
    let text: *mut c_char = unsafe { (*resp).resp };
    let answer = if text.is_null() {
        None
    } else {
        // SAFETY: a NUL-terminated malloc'd string, owned by us now.
        let len = unsafe { libc::strlen(text) };
        // SAFETY: `len` bytes before the NUL are readable and writable.
        let bytes = unsafe { std::slice::from_raw_parts_mut(text.cast::<u8>(), len) };
        let copy = Zeroizing::new(bytes.to_vec());
        bytes.zeroize();
        // SAFETY: allocated with malloc by the application; freed once.
        unsafe { libc::free(text.cast()) };
        Some(copy)
    };
    // SAFETY: the array itself was malloc'd by the application; freed once.
    unsafe { libc::free(resp.cast()) };
    answer
}

impl Prompter for PamPrompter<'_> {
    fn prompt(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationFailed> {
        // A NULL array or NULL answer is a failed conversation, not an empty code.
        self.send(PAM_PROMPT_ECHO_OFF, prompt)?
            .ok_or(ConversationFailed)
    }

    fn info(&mut self, text: &str) -> Result<(), ConversationFailed> {
        self.show(PAM_TEXT_INFO, text)
    }

    fn error(&mut self, text: &str) -> Result<(), ConversationFailed> {
        self.show(PAM_ERROR_MSG, text)
    }
}
