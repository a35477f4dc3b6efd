//! The lab's shared pieces: its plots (`plotters`, SVG and PNG), used by the suite runner
//! (`gc-lab`) and the pacer lab (`pacer-lab`).

pub mod plot;
