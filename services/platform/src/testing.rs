//! For the tests of every crate: where the real backends are.

/// The value of `var`, naming a real backend the calling test needs. Missing, the test
/// fails with what to do: a real-backend test never passes without running.
pub fn backend(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: this test needs a real backend. Run scripts/test.sh (it starts PostgreSQL, \
             Redis and the Kafka broker and sets WW_TEST_*), or rebuild the tests with WW_TEST_NO_BACKENDS=1 \
             to have every real-backend test reported as ignored."
        ),
    }
}
