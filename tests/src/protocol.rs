//! The lines `pam-converse` prints, one JSON object each. The binary writes
//! them with these types and the tests read them back with the same types,
//! so the two cannot drift apart.
//!
//! ```text
//! {"type":"prompt_echo_off","msg":"Password: ","call":1}
//! {"type":"conv_error","call":2,"reason":"no answer left"}
//! {"type":"fail_delay","usec":2000000,"rc":7}
//! {"op":"authenticate","rc":7,"name":"PAM_AUTH_ERR"}
//! ```
//!
//! With `--threads` or `--repeat` above 1 every line also carries
//! `"thread"` and `"round"` (both counted from 0).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::codes::PamCode;

/// A libpam call that `pam-converse` can make on its handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `pam_start`; reported only when it fails.
    Start,
    /// `pam_authenticate`.
    Authenticate,
    /// `pam_acct_mgmt`.
    AcctMgmt,
    /// `pam_setcred(PAM_ESTABLISH_CRED)`.
    Setcred,
    /// `pam_open_session`.
    OpenSession,
    /// `pam_close_session`.
    CloseSession,
}

impl Op {
    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Authenticate => "authenticate",
            Op::AcctMgmt => "acct_mgmt",
            Op::Setcred => "setcred",
            Op::OpenSession => "open_session",
            Op::CloseSession => "close_session",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = String;

    /// Parses an op a caller may ask for (not `start`, which always runs).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Op::Authenticate,
            Op::AcctMgmt,
            Op::Setcred,
            Op::OpenSession,
            Op::CloseSession,
        ]
        .into_iter()
        .find(|op| op.name() == s)
        .ok_or_else(|| {
            format!(
                "unknown op {s:?} (authenticate, acct_mgmt, setcred, open_session, close_session)"
            )
        })
    }
}

/// Which transaction a line belongs to, when there are several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct At {
    /// The thread, from 0.
    pub thread: u32,
    /// The transaction within the thread, from 0.
    pub round: u32,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Line {
    /// The result of a libpam call.
    Op(OpLine),
    /// Something that happened inside a call: a conversation message, a
    /// failed conversation, a requested failure delay.
    Event(EventLine),
}

impl Line {
    /// The transaction it belongs to; thread 0, round 0 when there is one.
    pub fn at(&self) -> At {
        let (thread, round) = match self {
            Line::Op(l) => (l.thread, l.round),
            Line::Event(l) => (l.thread, l.round),
        };
        At {
            thread: thread.unwrap_or(0),
            round: round.unwrap_or(0),
        }
    }
}

/// `{"op":"authenticate","rc":0,"name":"PAM_SUCCESS"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpLine {
    /// The call.
    pub op: Op,
    /// What it returned.
    pub rc: i32,
    /// The Linux-PAM name of `rc`.
    pub name: String,
    /// The thread, with `--threads`/`--repeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<u32>,
    /// The round, with `--threads`/`--repeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
}

impl OpLine {
    /// The line for `op` returning `rc` in transaction `at` (`None` when
    /// there is only one transaction).
    pub fn new(op: Op, rc: i32, at: Option<At>) -> Self {
        OpLine {
            op,
            rc,
            name: PamCode(rc).label(),
            thread: at.map(|a| a.thread),
            round: at.map(|a| a.round),
        }
    }

    /// The return code.
    pub fn code(&self) -> PamCode {
        PamCode(self.rc)
    }
}

/// An [`Event`] and the transaction it happened in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
    /// The thread, with `--threads`/`--repeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<u32>,
    /// The round, with `--threads`/`--repeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
}

impl EventLine {
    /// `event` in transaction `at` (`None` when there is only one).
    pub fn new(event: Event, at: Option<At>) -> Self {
        EventLine {
            event,
            thread: at.map(|a| a.thread),
            round: at.map(|a| a.round),
        }
    }
}

/// The style of a conversation message (`struct pam_message.msg_style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// `PAM_PROMPT_ECHO_OFF`: a secret is asked for.
    PromptEchoOff,
    /// `PAM_PROMPT_ECHO_ON`: a visible answer is asked for.
    PromptEchoOn,
    /// `PAM_ERROR_MSG`.
    ErrorMsg,
    /// `PAM_TEXT_INFO`.
    TextInfo,
}

impl Style {
    /// The style for a `msg_style` number, if it is one of the four.
    pub fn from_raw(style: i32) -> Option<Style> {
        match style {
            1 => Some(Style::PromptEchoOff),
            2 => Some(Style::PromptEchoOn),
            3 => Some(Style::ErrorMsg),
            4 => Some(Style::TextInfo),
            _ => None,
        }
    }

    /// Whether the application must answer it.
    pub fn is_prompt(self) -> bool {
        matches!(self, Style::PromptEchoOff | Style::PromptEchoOn)
    }

    /// The `type` used in the output.
    pub fn name(self) -> &'static str {
        match self {
            Style::PromptEchoOff => "prompt_echo_off",
            Style::PromptEchoOn => "prompt_echo_on",
            Style::ErrorMsg => "error_msg",
            Style::TextInfo => "text_info",
        }
    }
}

/// One conversation message as the application saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// How it is to be shown and whether it wants an answer.
    pub style: Style,
    /// The text (lossily decoded if it was not UTF-8).
    pub msg: String,
    /// Which call of the conversation function it came in, from 1.
    pub call: u32,
}

/// Something that happened inside a libpam call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A `PAM_PROMPT_ECHO_OFF` message.
    PromptEchoOff {
        /// The text.
        msg: String,
        /// The conversation call, from 1.
        call: u32,
    },
    /// A `PAM_PROMPT_ECHO_ON` message.
    PromptEchoOn {
        /// The text.
        msg: String,
        /// The conversation call, from 1.
        call: u32,
    },
    /// A `PAM_ERROR_MSG` message.
    ErrorMsg {
        /// The text.
        msg: String,
        /// The conversation call, from 1.
        call: u32,
    },
    /// A `PAM_TEXT_INFO` message.
    TextInfo {
        /// The text.
        msg: String,
        /// The conversation call, from 1.
        call: u32,
    },
    /// A message of another style (radio, binary); the call fails.
    OtherStyle {
        /// `msg_style`.
        style: i32,
        /// The conversation call, from 1.
        call: u32,
    },
    /// The conversation function returned `PAM_CONV_ERR` for this call.
    ConvError {
        /// The conversation call, from 1.
        call: u32,
        /// Why: `no answer left`, `--conv-fail-at`, `bad arguments`...
        reason: String,
    },
    /// libpam asked the application to delay (`PAM_FAIL_DELAY`); pam-converse
    /// records the request instead of sleeping unless `--real-fail-delay`.
    FailDelay {
        /// The randomised delay in microseconds.
        usec: u64,
        /// The status of the call that ends.
        rc: i32,
    },
}

impl Event {
    /// The event for a message of `style` (as numbered in `msg_style`).
    pub fn message(style: i32, msg: String, call: u32) -> Event {
        match Style::from_raw(style) {
            Some(Style::PromptEchoOff) => Event::PromptEchoOff { msg, call },
            Some(Style::PromptEchoOn) => Event::PromptEchoOn { msg, call },
            Some(Style::ErrorMsg) => Event::ErrorMsg { msg, call },
            Some(Style::TextInfo) => Event::TextInfo { msg, call },
            None => Event::OtherStyle { style, call },
        }
    }

    /// The conversation message, if this is one of the four styles.
    pub fn as_message(&self) -> Option<Message> {
        let (style, msg, call) = match self {
            Event::PromptEchoOff { msg, call } => (Style::PromptEchoOff, msg, call),
            Event::PromptEchoOn { msg, call } => (Style::PromptEchoOn, msg, call),
            Event::ErrorMsg { msg, call } => (Style::ErrorMsg, msg, call),
            Event::TextInfo { msg, call } => (Style::TextInfo, msg, call),
            _ => return None,
        };
        Some(Message {
            style,
            msg: msg.clone(),
            call: *call,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(line: &Line) -> String {
        let text = serde_json::to_string(line).unwrap();
        let back: Line = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, line);
        text
    }

    #[test]
    fn op_lines_have_the_documented_shape() {
        let line = Line::Op(OpLine::new(Op::Authenticate, 7, None));
        assert_eq!(
            round_trip(&line),
            r#"{"op":"authenticate","rc":7,"name":"PAM_AUTH_ERR"}"#
        );
    }

    #[test]
    fn message_lines_start_with_their_type() {
        let line = Line::Event(EventLine::new(
            Event::message(1, "Password: ".into(), 1),
            None,
        ));
        assert_eq!(
            round_trip(&line),
            r#"{"type":"prompt_echo_off","msg":"Password: ","call":1}"#
        );
    }

    #[test]
    fn threaded_lines_carry_thread_and_round() {
        let at = At {
            thread: 3,
            round: 1,
        };
        let line = Line::Event(EventLine::new(
            Event::ConvError {
                call: 2,
                reason: "no answer left".into(),
            },
            Some(at),
        ));
        assert_eq!(
            round_trip(&line),
            r#"{"type":"conv_error","call":2,"reason":"no answer left","thread":3,"round":1}"#
        );
        let op = Line::Op(OpLine::new(Op::AcctMgmt, 0, Some(at)));
        assert_eq!(
            round_trip(&op),
            r#"{"op":"acct_mgmt","rc":0,"name":"PAM_SUCCESS","thread":3,"round":1}"#
        );
        assert_eq!(op.at(), at);
    }

    #[test]
    fn unknown_styles_are_kept_as_numbers() {
        let event = Event::message(7, "binary".into(), 4);
        assert_eq!(event, Event::OtherStyle { style: 7, call: 4 });
        assert_eq!(event.as_message(), None);
    }

    #[test]
    fn ops_parse_from_their_names_only() {
        assert_eq!("acct_mgmt".parse::<Op>(), Ok(Op::AcctMgmt));
        assert_eq!("setcred".parse::<Op>(), Ok(Op::Setcred));
        assert!("start".parse::<Op>().is_err());
        assert!("Authenticate".parse::<Op>().is_err());
    }
}
