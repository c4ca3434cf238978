//! A chat message's identity: derived from who sent it and the id their client gave it, so a
//! send retried — on the same socket, or on another gateway after a crash — is the same
//! message, shown once and stored once.

use uuid::Uuid;

/// The namespace of message ids (UUIDv5).
const NAMESPACE: Uuid = Uuid::from_u128(0x5b1e_8c1f_1d4e_4a57_9a0c_77f3_c4e1_0d2a);

/// The longest client message id.
pub const CLIENT_MSG_ID_MAX: usize = 64;
/// The longest message text, in characters.
pub const TEXT_MAX_CHARS: usize = 2_000;

/// The id of the message `user` sent with `client_msg_id`.
pub fn message_id(user: Uuid, client_msg_id: &str) -> Uuid {
    let mut name = Vec::with_capacity(16 + client_msg_id.len());
    name.extend_from_slice(user.as_bytes());
    name.extend_from_slice(client_msg_id.as_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

/// Whether a client message id is acceptable: 1 to 64 visible ASCII characters.
pub fn is_client_msg_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= CLIENT_MSG_ID_MAX && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_send_has_one_id_whoever_retries_it_and_others_differ() {
        let alice = Uuid::from_u128(1);
        let bob = Uuid::from_u128(2);
        assert_eq!(message_id(alice, "m-1"), message_id(alice, "m-1"));
        assert_ne!(message_id(alice, "m-1"), message_id(alice, "m-2"));
        assert_ne!(message_id(alice, "m-1"), message_id(bob, "m-1"));
    }

    #[test]
    fn client_message_ids_are_short_visible_ascii() {
        assert!(is_client_msg_id("7f3a-01"));
        assert!(!is_client_msg_id(""));
        assert!(!is_client_msg_id("has space"));
        assert!(!is_client_msg_id(&"x".repeat(65)));
    }
}
