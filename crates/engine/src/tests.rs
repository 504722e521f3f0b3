//! Engine tests with real processes (see also the API crate's HTTP tests).
