//! The frames of `GET /ws/chat/{room}`: JSON text frames with a `type`.
//!
//! Client → server: `auth {token}` (first frame, when the token did not come with the
//! upgrade), `send {clientMsgId, text}`, `resume {epoch, sinceOffset}`, `reauth {token}`,
//! `ping`. Server → client: `ready {room, epoch, userId}` (once authenticated), `message {room,
//! offset, id, userId, nickname, text, sentAt}`, `ack {clientMsgId, id, offset}`, `presence
//! {online}`, `resumed {recovered}`, `deleted {room, id}`, `error {code, message}`, `pong`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::{CLIENT_MSG_ID_MAX, TEXT_MAX_CHARS, is_client_msg_id};

/// The largest frame a client may send, in bytes (a text of 2,000 characters of up to four
/// bytes each, escaped, fits); larger frames close the socket with 1009.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ClientFrame {
    Auth { token: String },
    Send { client_msg_id: String, text: String },
    Resume { epoch: String, since_offset: i64 },
    Reauth { token: String },
    Ping,
}

const CLIENT_TYPES: &[&str] = &["auth", "send", "resume", "reauth", "ping"];

/// Why a client frame was refused: answered with an `error` frame, the socket stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frames are JSON objects with a `type`: {0}")]
    Malformed(String),
    #[error("unknown frame type `{0}` (expected one of auth, send, resume, reauth, ping)")]
    UnknownType(String),
    #[error("{0}")]
    Invalid(String),
}

impl FrameError {
    /// The `code` of the error frame.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::Malformed(_) => "malformed-frame",
            FrameError::UnknownType(_) => "unknown-frame",
            FrameError::Invalid(_) => "invalid-frame",
        }
    }
}

/// Reads one client frame, checking its fields' bounds.
pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| FrameError::Malformed("no string `type`".to_owned()))?
        .to_owned();
    if !CLIENT_TYPES.contains(&kind.as_str()) {
        return Err(FrameError::UnknownType(kind.chars().take(32).collect()));
    }
    let frame: ClientFrame =
        serde_json::from_value(value).map_err(|e| FrameError::Invalid(format!("`{kind}` frame: {e}")))?;
    match &frame {
        ClientFrame::Send { client_msg_id, text } => {
            if !is_client_msg_id(client_msg_id) {
                return Err(FrameError::Invalid(format!(
                    "clientMsgId must be 1 to {CLIENT_MSG_ID_MAX} visible ASCII characters"
                )));
            }
            let chars = text.chars().count();
            if text.trim().is_empty() || chars > TEXT_MAX_CHARS {
                return Err(FrameError::Invalid(format!("text must be 1 to {TEXT_MAX_CHARS} characters, not blank")));
            }
        }
        ClientFrame::Resume { since_offset, .. } if *since_offset < -1 => {
            return Err(FrameError::Invalid("sinceOffset must be -1 (from the start) or an offset seen".to_owned()));
        }
        ClientFrame::Auth { token } | ClientFrame::Reauth { token } if token.is_empty() || token.len() > 4096 => {
            return Err(FrameError::Invalid("token must be 1 to 4096 characters".to_owned()));
        }
        _ => {}
    }
    Ok(frame)
}

/// A message as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub room: String,
    /// The message's position in its room: grows with every message of the room (not by one).
    pub offset: i64,
    pub id: Uuid,
    pub user_id: Uuid,
    pub nickname: String,
    pub text: String,
    pub sent_at: DateTime<Utc>,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ServerFrame {
    Ready {
        room: String,
        /// The epoch of the room's offsets: give it back in `resume`.
        epoch: String,
        user_id: Uuid,
    },
    Message(MessageView),
    Ack {
        client_msg_id: String,
        id: Uuid,
        offset: i64,
    },
    Presence {
        online: u64,
    },
    Resumed {
        recovered: bool,
    },
    Deleted {
        room: String,
        id: Uuid,
    },
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    Pong,
}

impl ServerFrame {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerFrame::Error { code: code.to_owned(), message: message.into(), retry_after_ms: None }
    }

    /// The frame as the text sent on the socket.
    pub fn to_text(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Close codes, with the reason sent beside them.
pub mod close {
    /// The server is shutting down: reconnect (elsewhere).
    pub const GOING_AWAY: u16 = 1001;
    /// A binary frame: only JSON text frames are spoken.
    pub const UNSUPPORTED: u16 = 1003;
    /// A frame over [`super::MAX_FRAME_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// No valid token (none in time, or not valid).
    pub const UNAUTHORIZED: u16 = 4001;
    /// The token expired and no `reauth` brought a later one.
    pub const TOKEN_EXPIRED: u16 = 4003;
    /// The login session was ended (logout, password change…).
    pub const SESSION_REVOKED: u16 = 4004;
    /// Not a room name.
    pub const BAD_ROOM: u16 = 4005;
    /// The client reads too slowly: its queue filled up.
    pub const TOO_SLOW: u16 = 4008;
    /// Pings went unanswered.
    pub const DEAD: u16 = 4009;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_from_their_json() {
        assert_eq!(
            parse(r#"{"type":"send","clientMsgId":"c1","text":"hi"}"#),
            Ok(ClientFrame::Send { client_msg_id: "c1".into(), text: "hi".into() })
        );
        assert_eq!(
            parse(r#"{"type":"resume","epoch":"e","sinceOffset":41}"#),
            Ok(ClientFrame::Resume { epoch: "e".into(), since_offset: 41 })
        );
        assert_eq!(parse(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping));
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        assert_eq!(parse("not json").unwrap_err().code(), "malformed-frame");
        assert_eq!(parse("[1,2]").unwrap_err().code(), "malformed-frame");
        assert_eq!(parse(r#"{"type":"shout"}"#).unwrap_err().code(), "unknown-frame");
        assert_eq!(parse(r#"{"type":"send","text":"hi"}"#).unwrap_err().code(), "invalid-frame");
        assert_eq!(parse(r#"{"type":"send","clientMsgId":"c","text":"   "}"#).unwrap_err().code(), "invalid-frame");
        let long = format!(r#"{{"type":"send","clientMsgId":"c","text":"{}"}}"#, "가".repeat(TEXT_MAX_CHARS + 1));
        assert_eq!(parse(&long).unwrap_err().code(), "invalid-frame");
        let exact = format!(r#"{{"type":"send","clientMsgId":"c","text":"{}"}}"#, "가".repeat(TEXT_MAX_CHARS));
        assert!(parse(&exact).is_ok());
        assert!(exact.len() < MAX_FRAME_BYTES, "the longest text fits in a frame");
        assert_eq!(parse(r#"{"type":"resume","epoch":"e","sinceOffset":"x"}"#).unwrap_err().code(), "invalid-frame");
    }

    #[test]
    fn server_frames_are_tagged_camel_case_json() {
        let ack = ServerFrame::Ack { client_msg_id: "c1".into(), id: Uuid::nil(), offset: 7 };
        let v: serde_json::Value = serde_json::from_str(&ack.to_text()).unwrap();
        assert_eq!(v["type"], "ack");
        assert_eq!(v["clientMsgId"], "c1");
        assert_eq!(v["offset"], 7);
        let e: serde_json::Value = serde_json::from_str(&ServerFrame::error("x", "y").to_text()).unwrap();
        assert_eq!(e, serde_json::json!({"type": "error", "code": "x", "message": "y"}));
    }
}
