//! sled backend.
