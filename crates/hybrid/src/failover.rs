//! TODO(skeleton): failover, being written.
