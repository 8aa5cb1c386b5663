//! Bytes as written in a message to the bytes or text they stand for.

pub mod base64;
pub mod charset;
pub mod encoded_word;
pub mod quoted_printable;
pub mod transfer;
pub mod utf7;

pub use charset::Charset;
pub use encoded_word::HeaderDecoder;
pub use transfer::TransferEncoding;

/// Two hex digits (`E9`, `e9`) to their byte: quoted-printable, the `Q`
/// encoding and RFC 2231's `%XX`.
pub fn hex_pair(pair: &[u8]) -> Option<u8> {
    let h = (*pair.first()? as char).to_digit(16)?;
    let l = (*pair.get(1)? as char).to_digit(16)?;
    Some((h * 16 + l) as u8)
}
