//! PAM's conversation (pam-bindings' [`Conv`]), adapted to the flow's
//! [`Prompter`]: one message per call (SECURITY item 20).
//!
//! The flow hands over texts that fit one Linux-PAM message, having cut
//! longer ones itself (the [`Prompter`] contract), so each call sends
//! exactly one message and nothing is cut here. The crate treats a failing
//! call and a NULL response array as failures and wipes and frees every
//! answer; a NULL answer to a prompt is a failure here.
#![forbid(unsafe_code)]

use mfa_core::flow::{ConversationFailed, Prompter};
use pam::constants::{PamMessageStyle, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_TEXT_INFO};
use pam::conv::Conv;
use zeroize::Zeroizing;

/// The application's conversation.
pub struct PamPrompter<'h> {
    conv: Conv<'h>,
}

impl<'h> PamPrompter<'h> {
    pub fn new(conv: Conv<'h>) -> Self {
        PamPrompter { conv }
    }

    fn send(
        &self,
        style: PamMessageStyle,
        text: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationFailed> {
        // The crate's copy of `text` is wiped before it is freed.
        let answer =
            crate::ffi::wiping(|| self.conv.send(style, text)).map_err(|_| ConversationFailed)?;
        // One copy, sized once, into the flow's wiped buffer; the crate's
        // own copy is wiped when `answer` drops.
        Ok(answer.map(|a| Zeroizing::new(a.as_bytes().to_vec())))
    }
}

impl Prompter for PamPrompter<'_> {
    fn prompt(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationFailed> {
        // A NULL answer is a failed conversation, not an empty code.
        self.send(PAM_PROMPT_ECHO_OFF, prompt)?
            .ok_or(ConversationFailed)
    }

    fn info(&mut self, text: &str) -> Result<(), ConversationFailed> {
        self.send(PAM_TEXT_INFO, text).map(drop)
    }

    fn error(&mut self, text: &str) -> Result<(), ConversationFailed> {
        self.send(PAM_ERROR_MSG, text).map(drop)
    }
}
