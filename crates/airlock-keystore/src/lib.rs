#![forbid(unsafe_code)]
//! Key files on disk: encrypted by default (mode 0600), passphrase from a prompt, an environment
//! variable or a file descriptor.
