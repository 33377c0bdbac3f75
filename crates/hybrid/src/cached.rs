//! TODO(skeleton): cached, being written.
