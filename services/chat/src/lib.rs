//! Real-time chat (`docs/decisions/0010-chat-design.md`): gateways that take WebSockets,
//! produce each sent message to the cluster's topic keyed by room (so a room keeps one order)
//! and fan out what the topic carries to their own sockets in the room; a persister that
//! writes the messages to SQL; history and moderation over HTTP.
//!
//! The protocol ([`protocol`]), the room names ([`room`]), the message identity
//! ([`message`]), the local rooms of one gateway ([`hub`]) and a socket's conversation
//! ([`session`]) are written over plain values, streams and sinks, so they are tested without
//! a network.

pub mod hub;
pub mod message;
pub mod protocol;
pub mod room;
pub mod session;
