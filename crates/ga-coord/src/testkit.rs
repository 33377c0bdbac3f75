//! Reusable end-to-end checks (determinism, takeover) that run against any pair of stores.
