//! Docker Engine backend (being written).
