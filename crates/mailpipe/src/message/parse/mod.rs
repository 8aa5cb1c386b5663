//! The structure of a message: its header block, MIME tree, parameters,
//! addresses and dates.

pub mod address;
pub mod date;
pub mod header;
pub mod mime;
pub mod params;

pub use address::Mailbox;
pub use header::{Field, HeaderBlock};
pub use mime::{Part, Walker};
pub use params::ParamValue;
