//! Transparency-log math and C2SP formats.
