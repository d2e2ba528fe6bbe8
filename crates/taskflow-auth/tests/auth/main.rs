//! Integration tests of taskflow-auth against a real loopback JWKS server.

mod cache;
mod keyset;
mod schedule;
mod static_dev;
mod support;
mod token_cache;
mod tokens;
