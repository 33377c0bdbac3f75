//! TODO(skeleton): stack, being written.
