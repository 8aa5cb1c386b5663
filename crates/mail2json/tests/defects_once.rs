//! A defect is recorded once per place it is found: the text part that
//! hidden.rs searches for uuencode is the one `text` decoded, not a second
//! decoding that recorded its defects again (base64 text parts with missing
//! padding, or a charset label that does not fit, were listed twice).

use mail2json::convert::{convert, Options};
use mail2json::schema::{FieldSet, Source};

fn defects(message: &[u8]) -> Vec<String> {
    let options = Options {
        fields: FieldSet::default_set(),
        keep_content: false,
    };
    let source = Source {
        path: "-".to_string(),
        offset: None,
    };
    convert(message, source, &options).defects
}

#[test]
fn a_base64_text_part_missing_its_padding_is_one_defect() {
    let d = defects(
        b"From: a@example.org\nSubject: x\nContent-Type: text/plain; charset=utf-8\n\
          Content-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQ\n",
    );
    assert_eq!(d, ["base64-missing-padding"]);
}

#[test]
fn a_mislabelled_base64_text_part_is_one_defect() {
    // UTF-8 text labelled windows-1252.
    let d = defects(
        b"From: a@example.org\nSubject: x\nContent-Type: text/plain; charset=windows-1252\n\
          Content-Transfer-Encoding: base64\n\nY2Fmw6kgYXUgbGFpdA==\n",
    );
    assert_eq!(
        d.iter()
            .filter(|x| x.starts_with("charset-mismatch"))
            .count(),
        1,
        "{d:?}"
    );
}
