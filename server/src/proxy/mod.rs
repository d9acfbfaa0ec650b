//! Proxy mode: powgate in front of the application, no nginx needed.

pub(crate) mod upstream;
