//! Rendering of reports (text like rustc, JSON).
