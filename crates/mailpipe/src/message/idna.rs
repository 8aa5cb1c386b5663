//! Internationalized addresses (RFC 6530-6533). A non-ASCII domain has an
//! ASCII spelling, its IDNA form (`例子.中国` is `xn--fsqu00a.xn--fiqs8s`), which
//! every server and header reader takes; a non-ASCII local part has none, and
//! needs SMTPUTF8 all the way (RFC 6531) and a UTF-8 header (RFC 6532).

/// The local part and the domain of `address`, split at its last `@`
/// (a quoted local part may hold an `@` of its own). No `@`: all local part.
pub fn split(address: &str) -> (&str, &str) {
    match address.rfind('@') {
        Some(i) => (&address[..i], &address[i + 1..]),
        None => (address, ""),
    }
}

/// `domain` in IDNA (A-label, punycode) form when it is not ASCII; an ASCII
/// domain is returned as written (its case kept). `Err` says why the name is
/// not a valid internationalized domain.
pub fn ascii_domain(domain: &str) -> Result<String, String> {
    if domain.is_ascii() {
        return Ok(domain.to_string());
    }
    idna::domain_to_ascii_strict(domain)
        .map_err(|_| format!("{domain:?} is not a valid internationalized domain name (IDNA)"))
}

/// `address` with its domain in IDNA form when its local part is ASCII: the
/// spelling that needs no SMTPUTF8. An address with a UTF-8 local part needs
/// SMTPUTF8 anyway and is returned as written.
pub fn ascii_domain_address(address: &str) -> Result<String, String> {
    if needs_smtputf8(address) {
        return Ok(address.to_string());
    }
    with_ascii_domain(address)
}

/// `address` with its domain in IDNA form, whatever its local part: what an
/// SMTP envelope carries (servers route and look up domains by their A-labels;
/// RFC 6531 allows them with SMTPUTF8 too).
pub fn with_ascii_domain(address: &str) -> Result<String, String> {
    let (local, domain) = split(address);
    if domain.is_ascii() {
        return Ok(address.to_string());
    }
    Ok(format!("{local}@{}", ascii_domain(domain)?))
}

/// True when no ASCII spelling of `address` exists: its local part is not
/// ASCII (a non-ASCII domain alone has its IDNA form).
pub fn needs_smtputf8(address: &str) -> bool {
    !split(address).0.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_become_idna_and_local_parts_stay() {
        // The punycode of 例子.中国, as RFC 3492's encoder and Python's
        // `"例子.中国".encode("idna")` both give it.
        assert_eq!(
            ascii_domain("例子.中国").as_deref(),
            Ok("xn--fsqu00a.xn--fiqs8s")
        );
        assert_eq!(ascii_domain("bücher.de").as_deref(), Ok("xn--bcher-kva.de"));
        assert_eq!(ascii_domain("Example.ORG").as_deref(), Ok("Example.ORG"));
        assert!(ascii_domain("a b.中国").is_err() && ascii_domain("a\u{0}b.中国").is_err());
        assert_eq!(
            ascii_domain_address("user@例子.中国").as_deref(),
            Ok("user@xn--fsqu00a.xn--fiqs8s")
        );
        assert_eq!(
            ascii_domain_address("张三@例子.中国").as_deref(),
            Ok("张三@例子.中国")
        );
        assert_eq!(
            with_ascii_domain("张三@例子.中国").as_deref(),
            Ok("张三@xn--fsqu00a.xn--fiqs8s")
        );
        assert_eq!(
            ascii_domain_address("\"a@b\"@x.org").as_deref(),
            Ok("\"a@b\"@x.org")
        );
    }

    #[test]
    fn only_a_utf8_local_part_needs_smtputf8() {
        assert!(needs_smtputf8("张三@example.test"));
        assert!(needs_smtputf8("josé@例子.中国"));
        assert!(!needs_smtputf8("user@例子.中国"));
        assert!(!needs_smtputf8("user@example.org"));
        assert_eq!(split("\"a@b\"@x"), ("\"a@b\"", "x"));
        assert_eq!(split("nodomain"), ("nodomain", ""));
    }
}
