//! TODO(skeleton): replay, being written.
