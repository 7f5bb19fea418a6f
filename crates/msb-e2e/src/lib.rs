//! End-to-end VM tests live in tests/.
