//! mail2json's conversion of one message's bytes to its JSON record, with
//! every field asked for (headers, parts, attachments), then serialized.
//! `convert` is called directly, not `convert_safely`, so that a panic is a
//! crash here rather than an error record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mail2json::convert::{convert, Options};
use mail2json::schema::{FieldSet, Source};

fuzz_target!(|data: &[u8]| {
    let mut fields = FieldSet::default_set();
    fields.insert("headers");
    fields.insert("parts");
    let options = Options {
        fields,
        keep_content: data.first().is_some_and(|b| b & 1 == 1),
    };
    let source = Source {
        path: "-".to_string(),
        offset: None,
    };
    let record = convert(data, source, &options);
    serde_json::to_vec(&record).expect("a record serializes");
});
