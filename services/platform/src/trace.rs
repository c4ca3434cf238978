//! W3C trace context, kept light: the `traceparent` header
//! (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`) is read from each request or
//! a new trace is started; its trace id goes into the request's span, events published
//! while handling the request carry it in their envelope, and consumers put it into the
//! span of their handling — so one trace id follows a signup from the HTTP request to the
//! profile built from its event. No tracing SDK: exporting spans can come later.

use std::fmt;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;

pub const HEADER: &str = "traceparent";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    /// The span that caused this work.
    pub parent_id: [u8; 8],
    pub flags: u8,
}

tokio::task_local! {
    static CURRENT: TraceParent;
}

impl TraceParent {
    /// Parses a `traceparent` header value; `None` when it is not a valid one (the caller
    /// then starts a new trace, as the specification asks).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let bytes = value.as_bytes();
        // Version 00 is exactly 55 characters; later versions may append fields.
        if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
            return None;
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let version = hex::<1>(&value[0..2])?[0];
        if version == 0xff || (version == 0 && bytes.len() != 55) {
            return None;
        }
        let trace_id = hex::<16>(&value[3..35])?;
        let parent_id = hex::<8>(&value[36..52])?;
        let flags = hex::<1>(&value[53..55])?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self { trace_id, parent_id, flags })
    }

    /// A new trace (sampled), for work that arrived without one.
    pub fn new_root() -> Self {
        let mut trace_id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut trace_id);
        Self { trace_id, parent_id: new_span_id(), flags: 1 }
    }

    /// The same trace, with a new span of ours as the parent of what follows.
    pub fn child(&self) -> Self {
        Self { trace_id: self.trace_id, parent_id: new_span_id(), flags: self.flags }
    }

    pub fn trace_id_hex(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The trace context of the work in progress on this task, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(|t| *t).ok()
    }

    /// Runs `work` with `self` as the current trace context.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", to_hex(&self.trace_id), to_hex(&self.parent_id), self.flags)
    }
}

fn new_span_id() -> [u8; 8] {
    let mut id = [0u8; 8];
    while id == [0; 8] {
        rand::thread_rng().fill_bytes(&mut id);
    }
    id
}

/// Lowercase hex only, as the specification requires.
fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Middleware: continues the caller's trace (or starts one) for the rest of the request.
/// The context is put into the request's extensions (for the request span) and made
/// current, so events published while handling the request carry it.
pub(crate) async fn propagate(mut req: Request, next: Next) -> Response {
    let incoming = req.headers().get(HEADER).and_then(|v| v.to_str().ok()).and_then(TraceParent::parse);
    let context = incoming.map_or_else(TraceParent::new_root, |parent| parent.child());
    req.extensions_mut().insert(context);
    context.scope(next.run(req)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_round_trips() {
        let parsed = TraceParent::parse(SAMPLE).unwrap();
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.flags, 1);
        assert_eq!(parsed.to_string(), SAMPLE);
        assert_eq!(parsed.to_string().len(), 55);
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad}");
        }
        // A later version may append fields; the known ones are still read.
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later").is_some());
    }

    #[test]
    fn a_child_continues_the_trace_under_a_new_span() {
        let parent = TraceParent::parse(SAMPLE).unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.parent_id, parent.parent_id);
        let root = TraceParent::new_root();
        assert!(TraceParent::parse(&root.to_string()).is_some());
    }

    #[tokio::test]
    async fn the_current_context_is_scoped_to_the_work() {
        assert!(TraceParent::current().is_none());
        let parent = TraceParent::parse(SAMPLE).unwrap();
        let seen = parent.scope(async { TraceParent::current() }).await;
        assert_eq!(seen, Some(parent));
    }
}
