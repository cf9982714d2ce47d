//! Release-tree layout rules (being written).
