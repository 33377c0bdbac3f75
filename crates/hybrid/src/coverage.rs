//! TODO(skeleton): coverage, being written.
