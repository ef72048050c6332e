//! The lifecycle engine: observe → decide (pure) → act, shared by every backend.
