//! What mail hides in its bodies, through the mail2json binary: files
//! uuencoded in text, files inside winmail.dat (TNEF), and the
//! Authentication-Results and DKIM-Signature fields.
//!
//! Expected sizes and SHA-256 sums were computed outside mailpipe: the TNEF
//! ones with the Python library tnefparse 1.4.0 (whose test files the
//! fixtures wrap), the uuencode ones from the payloads that Python's
//! `binascii.b2a_uu` encoded (tests/fixtures/SOURCES.md says how).

use std::path::PathBuf;

use serde_json::Value;

mod binary;
use binary::{fixture, record};

fn record_of(file: &str) -> Value {
    record(&[], &std::fs::read(fixture(file)).expect("fixture"))
}

/// (origin, origin_part, filename, size, sha256) of an attachment; `-` for
/// what is absent.
type Row = (String, String, String, u64, String);

fn found(r: &Value) -> Vec<Row> {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    r["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .map(|a| {
            (
                s(&a["origin"]),
                s(&a["origin_part"]),
                s(&a["filename"]),
                a["size"].as_u64().expect("size"),
                s(&a["sha256"]),
            )
        })
        .collect()
}

/// Only the attachments found inside parts.
fn hidden(r: &Value) -> Vec<Row> {
    found(r).into_iter().filter(|a| a.0 != "-").collect()
}

fn row(origin: &str, part: &str, name: &str, size: u64, sha: &str) -> Row {
    (origin.into(), part.into(), name.into(), size, sha.into())
}

/// Name, size and SHA-256 of one file.
type Expected = (&'static str, u64, &'static str);

#[test]
fn tnef_attachments_match_an_independent_decoder() {
    let cases: [(&str, &[Expected]); 4] = [
        (
            "tnef-two-files.eml",
            &[
                (
                    "AUTHORS",
                    244,
                    "36c47da7d11846caf0474a4b3df83bb4eba9ea01d2bca500c288fa108e123d28",
                ),
                (
                    "README",
                    893,
                    "d0f163180d6ad5d8d3b4e7c6bc0cc948d05888bff0f69dba375b946ea4c6b0fa",
                ),
            ],
        ),
        (
            // Long names in PidTagAttachLongFilename, one of them UTF-16 with umlauts.
            "tnef-umlaut.eml",
            &[
                (
                    "TBZ PARIV GmbH.jpg",
                    44764,
                    "67597116a0dbb64f7576edbf4285183441536529aa5643b4127de7d4e0097822",
                ),
                (
                    "image003.jpg",
                    1001,
                    "49b597682736b44a6ce499a05bcadf60d996244b5679d46cfe37ad5cc820fb00",
                ),
                (
                    "UmlautAnhang-äüö.txt",
                    14,
                    "9b34b140af86a7de1be22a13fd6bc8abf03abb8094c0e65751b2f221188a3b41",
                ),
            ],
        ),
        (
            // The 8.3 title is ALLPRO~1.DAT; the long name wins.
            "tnef-long-filename.eml",
            &[(
                "allproductsmar2000.dat",
                279,
                "de2ad5d4e20a2456ad12808dee82af2d0d1236ddf5bd55832581a7886cdcd807",
            )],
        ),
        (
            // attAttachData before attAttachTitle.
            "tnef-data-before-name.eml",
            &[
                (
                    "AUTOEXEC.BAT",
                    0,
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                ),
                (
                    "CONFIG.SYS",
                    0,
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                ),
                (
                    "boot.ini",
                    289,
                    "a815374e31481bbb939d99e73ecfe1de7914363ecd5c670c60a9022474251bce",
                ),
            ],
        ),
    ];
    for (file, expected) in cases {
        let r = record_of(file);
        let all = found(&r);
        // winmail.dat itself stays, as the MIME attachment it is.
        assert_eq!(all[0].0, "-", "{file}");
        assert_eq!(all[0].2, "winmail.dat", "{file}");
        let want: Vec<_> = expected
            .iter()
            .map(|(name, size, sha)| row("tnef", "2", name, *size, sha))
            .collect();
        assert_eq!(all[1..], want[..], "{file}");
        assert_eq!(r["defects"], serde_json::json!([]), "{file}");
        assert_eq!(r["text"], "See the attached files.\n", "{file}");
    }
}

#[test]
fn uuencoded_files_become_attachments() {
    let r = record_of("uuencode-two-files.eml");
    assert_eq!(
        found(&r),
        [
            row(
                "uuencode",
                "1",
                "bytes.bin",
                780,
                "833f5a69540a0f00538897ed25c8da5c59bb0ab62742dc83e3c1cff7f0d6ad2c"
            ),
            row(
                "uuencode",
                "1",
                "greeting.txt",
                360,
                "5b0096e00090144351ecb37474f08364691c1be3fc5283aa264b9ded62fea378"
            ),
        ]
    );
    assert_eq!(r["defects"], serde_json::json!([]));
    // The text is kept whole, the blocks included (documented choice).
    let text = r["text"].as_str().expect("text");
    assert!(text.starts_with("Hi,\n") && text.ends_with("Cheers\n"));
    assert!(text.contains("begin 644 bytes.bin\n"));
}

/// A multipart message whose second part is text/plain `body`, base64 when
/// `base64` is set (then a raw search for `begin` cannot see the block).
fn multipart_with_text(body: &str, base64: bool) -> Vec<u8> {
    let (cte, encoded) = if base64 {
        ("base64", b64(body.as_bytes()))
    } else {
        ("7bit", body.to_string())
    };
    format!(
        "From: a@example.org\nSubject: files\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=b\n\n\
         --b\nContent-Type: text/plain\n\nfirst part\n\
         --b\nContent-Type: text/plain\nContent-Transfer-Encoding: {cte}\n\n{encoded}\n--b--\n"
    )
    .into_bytes()
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                s.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

// "Cat" uuencoded (by hand: C=0x43 a=0x61 t=0x74 -> 0 V % T).
const CAT: &str = "begin 644 cat.txt\n#0V%T\n`\nend\n";

#[test]
fn blocks_in_a_base64_part_and_their_section() {
    let r = record(&[], &multipart_with_text(&format!("see:\n{CAT}"), true));
    let all = hidden(&r);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        (
            all[0].0.as_str(),
            all[0].1.as_str(),
            all[0].2.as_str(),
            all[0].3
        ),
        ("uuencode", "2", "cat.txt", 3)
    );
    assert_eq!(all[0].4, sha256_hex(b"Cat"));
}

#[test]
fn bad_uuencode_is_a_defect_and_nothing_is_lost() {
    // No `end`, a short line and a character outside the alphabet.
    let body = "text before\nbegin 644 a.bin\n#0V%T\n#00\n#0V{T\nThanks, Bob\n";
    let r = record(&[], &multipart_with_text(body, false));
    let all = hidden(&r);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].3, 9);
    let defects: Vec<&str> = r["defects"]
        .as_array()
        .expect("defects")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        defects,
        [
            "uuencode-short-line: a.bin",
            "uuencode-bad-character: a.bin",
            "uuencode-missing-end: a.bin"
        ]
    );
    assert_eq!(r["subject"], "files");
}

#[test]
fn broken_winmail_dat_is_a_defect_and_the_rest_stays() {
    let whole = std::fs::read_to_string(fixture("tnef-two-files.eml")).expect("fixture");
    // Cut the base64 of winmail.dat after 40 lines (2,280 of 3,481 bytes):
    // inside the attribute that starts the second attachment.
    let start = whole.find("\n\neJ8+").expect("winmail.dat base64") + 2;
    let lines: Vec<&str> = whole[start..].lines().collect();
    let cut = format!(
        "{}{}\n\n------=_NextPart_000_0001--\n",
        &whole[..start],
        lines[..40].join("\n")
    );
    let r = record(&[], cut.as_bytes());
    let all = found(&r);
    assert_eq!(all[0].2, "winmail.dat");
    assert_eq!(all[0].3, 2280);
    assert_eq!(all.len(), 2, "README never started");
    // AUTHORS (244 bytes) was whole before the cut.
    assert_eq!(all[1].2, "AUTHORS");
    assert_eq!(
        all[1].4,
        "36c47da7d11846caf0474a4b3df83bb4eba9ea01d2bca500c288fa108e123d28"
    );
    let defects = r["defects"].to_string();
    assert!(
        defects.contains("tnef-truncated: at byte 2273"),
        "{defects}"
    );
    assert_eq!(r["text"], "See the attached files.\n");

    // Labelled ms-tnef but not TNEF at all.
    let fake =
        "From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n\
                --b\nContent-Type: text/plain\n\nhi\n\
                --b\nContent-Type: application/ms-tnef; name=winmail.dat\n\nnot tnef\n--b--\n";
    let r = record(&[], fake.as_bytes());
    assert_eq!(found(&r).len(), 1);
    assert_eq!(
        r["defects"],
        serde_json::json!(["tnef-bad-signature: part 2"])
    );
}

#[test]
fn extract_writes_found_files_under_safe_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("out");
    let hostile = format!(
        "{}{}{}",
        CAT.replace("cat.txt", "../../.bashrc"),
        CAT.replace("cat.txt", "..\\..\\win.ini"),
        CAT.replace("cat.txt", "CON")
    );
    let message = multipart_with_text(&hostile, false);
    let tnef = std::fs::read(fixture("tnef-umlaut.eml")).expect("fixture");
    let args = ["--extract", target.to_str().expect("utf-8")];
    let r = record(&args, &message);
    let r2 = record(&args, &tnef);
    let canonical = target.canonicalize().expect("exists");
    let mut names = Vec::new();
    for rec in [&r, &r2] {
        for a in rec["attachments"].as_array().expect("list") {
            let path = PathBuf::from(a["path"].as_str().expect("every file has a path"));
            let real = path.canonicalize().expect("written");
            assert_eq!(
                real.parent(),
                Some(canonical.as_path()),
                "{path:?} left the directory"
            );
            let content = std::fs::read(&real).expect("read");
            assert_eq!(content.len() as u64, a["size"].as_u64().expect("size"));
            assert_eq!(sha256_hex(&content), a["sha256"].as_str().expect("sha"));
            names.push(
                real.file_name()
                    .and_then(|n| n.to_str())
                    .expect("name")
                    .to_string(),
            );
        }
    }
    names.sort();
    // The text part holding the blocks is body text under RFC 8621 (an
    // inline text/plain in multipart/mixed), not an attachment of its own.
    assert_eq!(
        names,
        [
            "TBZ PARIV GmbH.jpg",
            "UmlautAnhang-äüö.txt",
            "_CON",
            "bashrc",
            "image003.jpg",
            "win.ini",
            "winmail.dat",
        ]
    );
}

#[test]
fn auth_results_as_gmail_writes_them() {
    let r = record_of("auth-gmail.eml");
    // ARC-Authentication-Results is not Authentication-Results.
    assert_eq!(r["auth"].as_array().expect("auth").len(), 1);
    let a = &r["auth"][0];
    assert_eq!(a["authserv_id"], "mx.google.com");
    assert_eq!(
        methods(a),
        [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
    );
    assert_eq!(a["results"][0]["properties"]["header.i"], "@example.com");
    assert_eq!(a["results"][0]["properties"]["header.s"], "20230601");
    assert_eq!(
        a["results"][1]["properties"]["smtp.mailfrom"],
        "alice@example.com"
    );
    assert_eq!(a["results"][2]["properties"]["header.from"], "example.com");
    assert_eq!(
        r["dkim_signatures"],
        serde_json::json!([{"d": "example.com", "s": "20230601", "a": "rsa-sha256"}])
    );
    assert_eq!(r["defects"], serde_json::json!([]));
}

#[test]
fn auth_results_as_outlook_writes_them() {
    let r = record_of("auth-outlook.eml");
    let auth = r["auth"].as_array().expect("auth");
    assert_eq!(auth.len(), 3);
    // No authserv-id, no space after `;`, `action=`, `compauth` with a reason.
    assert_eq!(auth[0]["authserv_id"], Value::Null);
    assert_eq!(
        methods(&auth[0]),
        [
            ("spf", "softfail"),
            ("dkim", "fail"),
            ("dmarc", "fail"),
            ("compauth", "fail")
        ]
    );
    assert_eq!(auth[0]["results"][2]["properties"]["action"], "quarantine");
    assert_eq!(auth[0]["results"][3]["reason"], "001");
    assert_eq!(methods(&auth[1]), [("dkim", "none"), ("dmarc", "none")]);
    // A `;` missing between results: split at the method name, and said.
    assert_eq!(methods(&auth[2]), [("spf", "none"), ("dkim", "none")]);
    assert_eq!(
        auth[2]["results"][0]["properties"]["smtp.mailfrom"],
        "example.net"
    );
    assert_eq!(
        r["defects"],
        serde_json::json!(["auth-results-missing-semicolon"])
    );
    assert_eq!(r["dkim_signatures"], serde_json::json!([]));
}

#[test]
fn auth_results_as_postfix_with_opendkim_writes_them() {
    let r = record_of("auth-opendkim.eml");
    let auth = r["auth"].as_array().expect("auth");
    assert_eq!(auth.len(), 3);
    for a in auth {
        assert_eq!(a["authserv_id"], "mail.example.org");
    }
    assert_eq!(methods(&auth[0]), [("dmarc", "pass")]);
    // The comment holds a `;`: it must not split the result.
    assert_eq!(
        methods(&auth[1]),
        [("dkim", "pass"), ("dkim-atps", "neutral")]
    );
    assert_eq!(
        auth[1]["results"][0]["properties"]["header.d"],
        "example.com"
    );
    assert_eq!(
        auth[1]["results"][0]["properties"]["header.a"],
        "rsa-sha256"
    );
    assert_eq!(methods(&auth[2]), [("spf", "pass")]);
    assert_eq!(
        auth[2]["results"][0]["properties"]["smtp.mailfrom"],
        "example.com"
    );
    assert_eq!(
        r["dkim_signatures"],
        serde_json::json!([
            {"d": "example.com", "s": "mail", "a": "rsa-sha256"},
            {"d": "example.com", "s": "ed", "a": "ed25519-sha256"}
        ])
    );
}

#[test]
fn auth_fields_are_default_and_can_be_left_out() {
    let message = std::fs::read(fixture("auth-gmail.eml")).expect("fixture");
    let r = record(&["--fields", "subject"], &message);
    assert!(r.get("auth").is_none() && r.get("dkim_signatures").is_none());
    let r = record(&["--fields", "auth"], &message);
    assert_eq!(r["auth"][0]["authserv_id"], "mx.google.com");
    assert!(r.get("dkim_signatures").is_none());
}

fn methods(a: &Value) -> Vec<(&str, &str)> {
    a["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["method"].as_str().expect("method"),
                r["result"].as_str().expect("result"),
            )
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
