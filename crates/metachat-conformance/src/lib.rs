//! # metachat-conformance
//!
//! One conformance suite for every backend.
