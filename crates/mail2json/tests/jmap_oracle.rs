//! The body-model oracle: Stalwart's `mail-parser` (an independent RFC 8621
//! implementation, a dev-dependency only) against `mailpipe::message::body`,
//! which mail2json's `text`, `html` and `attachments` come from. For every
//! message of tests/fixtures/mail (always) and of the shared corpus
//! (../shared/corpus from the workspace root, or `MAIL2JSON_CORPUS`; that part
//! is skipped when the directory is absent) both sides list which parts, by
//! their position in the MIME tree, are `textBody`, `htmlBody` and
//! `attachments`. docs/mail2json-oracles.md explains each class of
//! difference; `MAIL2JSON_ORACLE_VERBOSE=1` prints every disagreement.

mod common;

use std::path::Path;

use common::{corpus_dir, files_under};
use mail_parser::{MessageParser, PartType};
use mailpipe::message::body::BodyParts;
use mailpipe::message::parse::{Part, Walker};

/// A part's position: the child indexes from the top part down.
type PartPath = Vec<usize>;

#[derive(Debug, PartialEq, Eq)]
struct Lists {
    text: Vec<PartPath>,
    html: Vec<PartPath>,
    attachments: Vec<PartPath>,
}

/// Every part's position, sorted: two parsers that split a message into
/// the same tree have the same shape.
type Shape = Vec<PartPath>;

fn shape_of(top: &Part<'_>, path: &mut PartPath, out: &mut Shape) {
    out.push(path.clone());
    for (i, child) in top.children.iter().enumerate() {
        path.push(i);
        shape_of(child, path, out);
        path.pop();
    }
}

fn path_of(top: &Part<'_>, target: &Part<'_>) -> Option<PartPath> {
    if std::ptr::eq(top, target) {
        return Some(Vec::new());
    }
    for (i, child) in top.children.iter().enumerate() {
        if let Some(mut p) = path_of(child, target) {
            p.insert(0, i);
            return Some(p);
        }
    }
    None
}

/// mailpipe's lists, as mail2json writes them: `attachments` with the
/// inline media of both bodies; None for input with no header field (an
/// `error` record, not a message).
/// What mailpipe saw that explains a difference mechanically.
struct Facts {
    defects: Vec<String>,
    /// The message has no body at all (it ends in its header block).
    no_body: bool,
    /// The boundary of every multipart that was split.
    boundaries: Vec<String>,
    /// Empty parts without a header that end a multipart whose close
    /// delimiter never came (the message ends in a delimiter line).
    empty_last: Vec<PartPath>,
    /// The last part of the message ends in its header block: no empty
    /// line, no body (an mbox cut at an unescaped From_ line does that).
    ends_in_header: bool,
}

/// Collects [`Facts::boundaries`] and [`Facts::empty_last`].
fn multipart_facts(part: &Part<'_>, path: &mut PartPath, facts: &mut Facts) {
    if let (true, Some(b)) = (part.is_multipart(), part.content_type.get("boundary")) {
        facts.boundaries.push(b.to_string());
        let delimiter = format!("--{b}");
        if let Some(last) = part.children.last() {
            if last.header.fields.is_empty()
                && last.body.trim_ascii().is_empty()
                && part.body.trim_ascii_end().ends_with(delimiter.as_bytes())
            {
                let mut p = path.clone();
                p.push(part.children.len() - 1);
                facts.empty_last.push(p);
            }
        }
    }
    for (i, child) in part.children.iter().enumerate() {
        path.push(i);
        multipart_facts(child, path, facts);
        path.pop();
    }
}

fn ours(data: &[u8]) -> Option<(Lists, Shape, Facts)> {
    let mut defects = Vec::new();
    let top = Walker::new(&mut defects, false).parse(data);
    if top.header.fields.is_empty() {
        return None;
    }
    let mut facts = Facts {
        no_body: top.children.is_empty() && top.body.iter().all(u8::is_ascii_whitespace),
        defects: defects.clone(),
        boundaries: Vec::new(),
        empty_last: Vec::new(),
        ends_in_header: false,
    };
    multipart_facts(&top, &mut Vec::new(), &mut facts);
    let mut last = &top;
    while let Some(child) = last.children.last() {
        last = child;
    }
    facts.ends_in_header = !last.header.fields.is_empty()
        && last.body.is_empty()
        && !data.ends_with(b"\n\n")
        && !data.ends_with(b"\n\r\n");
    let body = BodyParts::of(&top);
    let paths = |list: &[&Part<'_>]| -> Vec<PartPath> {
        list.iter()
            .map(|p| path_of(&top, p).expect("a part of the tree"))
            .collect()
    };
    let mut attachments = paths(&body.attachments);
    attachments.extend(paths(&body.inline_media()));
    attachments.sort();
    let mut shape = Vec::new();
    shape_of(&top, &mut Vec::new(), &mut shape);
    shape.sort();
    let lists = Lists {
        text: paths(&body.text),
        html: paths(&body.html),
        attachments,
    };
    Some((lists, shape, facts))
}

/// The class of a difference that is mail-parser departing from the RFCs,
/// recognised mechanically (docs/mail2json-oracles.md explains each).
fn excused(facts: &Facts, ours: &Lists, theirs: &Lists) -> Option<&'static str> {
    let has = |code: &str| facts.defects.iter().any(|d| d.starts_with(code));
    if facts.no_body
        && theirs.text.is_empty()
        && theirs.html.is_empty()
        && theirs.attachments.is_empty()
    {
        return Some("mail-parser-lists-no-part-without-body");
    }
    if has("multipart-close-boundary-missing")
        && theirs.html.is_empty()
        && theirs.text == ours.text
        && theirs.attachments == ours.attachments
    {
        return Some("mail-parser-unclosed-alternative");
    }
    if has("multipart-boundary-not-found")
        && theirs.text == ours.text
        && theirs.html == ours.html
        && theirs
            .attachments
            .iter()
            .all(|a| ours.attachments.contains(a))
    {
        return Some("unsplittable-multipart-kept-as-attachment");
    }
    if has("invalid-content-type") {
        return Some("invalid-content-type-is-text-plain");
    }
    None
}

/// The classes where mail-parser departs from RFC 5322 or RFC 2046 on the
/// MIME tree itself, so that the trees may differ too. Each is checked by
/// undoing the one irregularity in the input, in a way that leaves
/// mailpipe's lists as they are: mail-parser must then give mailpipe's
/// lists exactly (docs/mail2json-oracles.md has the RFC text for each).
fn departs(data: &[u8], facts: &Facts, ours: &Lists, theirs: &Lists) -> Option<&'static str> {
    let agree_on = |input: &[u8]| -> bool {
        let ours_there = self::ours(input).map(|(l, _, _)| l);
        let theirs_there = self::theirs(input).map(|(l, _)| l);
        ours_there.as_ref() == Some(ours) && theirs_there.as_ref() == Some(ours)
    };
    // RFC 5322 section 2.1: the body "is separated from the header section
    // by an empty line (i.e., a line with nothing preceding the CRLF)"; a
    // first line of spaces is no such line.
    let first_line = data.split_inclusive(|&b| b == b'\n').next().unwrap_or(&[]);
    let spaces = first_line
        .strip_suffix(b"\n")
        .map_or(first_line, |l| l.strip_suffix(b"\r").unwrap_or(l));
    if !spaces.is_empty()
        && spaces.iter().all(|&b| b == b' ' || b == b'\t')
        && agree_on(&data[first_line.len()..])
    {
        return Some("mail-parser-line-of-spaces-ends-header");
    }
    // RFC 2046 section 5.1.1: "The boundary delimiter MUST occur at the
    // beginning of a line"; an occurrence inside a line is text.
    if let Some(hidden) = hide_boundaries_inside_lines(data, &facts.boundaries) {
        if agree_on(&hidden) {
            return Some("mail-parser-boundary-inside-a-line");
        }
    }
    // RFC 8621 section 4.1.4 lists every part (parseStructure visits each);
    // mail-parser drops a part that ends in its header block (no empty line,
    // no body), and lists it once an empty line ends the header, which
    // changes no part's content.
    if facts.ends_in_header {
        let mut ended = data.to_vec();
        ended.extend_from_slice(if data.ends_with(b"\r\n") {
            b"\r\n"
        } else {
            b"\n"
        });
        if agree_on(&ended) {
            return Some("mail-parser-lists-no-part-without-body");
        }
    }
    // RFC 2046 section 5.1.1: a body part without header fields takes the
    // defaults (text/plain), which RFC 8621 puts in textBody; mail-parser
    // lists such an empty last part as an attachment, or drops it.
    for part in &facts.empty_last {
        let without = |l: &Lists| Lists {
            text: l.text.iter().filter(|p| *p != part).cloned().collect(),
            html: l.html.iter().filter(|p| *p != part).cloned().collect(),
            attachments: l
                .attachments
                .iter()
                .filter(|p| *p != part)
                .cloned()
                .collect(),
        };
        if ours.text.contains(part) && without(ours) == without(theirs) {
            return Some("mail-parser-empty-last-part-is-not-text");
        }
    }
    None
}

/// `data` with the dashes of every `--boundary` that does not start a line
/// (nor is a parameter's value) changed to `-_`; None when there is none.
fn hide_boundaries_inside_lines(data: &[u8], boundaries: &[String]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    let mut changed = false;
    for b in boundaries {
        let delimiter = format!("--{b}");
        let hits = data
            .windows(delimiter.len())
            .enumerate()
            .filter(|(_, w)| *w == delimiter.as_bytes())
            .map(|(at, _)| at);
        for at in hits {
            if at > 0 && !matches!(data[at - 1], b'\n' | b'"' | b'=') {
                out[at + 1] = b'_';
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// mail-parser's lists, or None when it finds no message at all.
fn theirs(data: &[u8]) -> Option<(Lists, Shape)> {
    let message = MessageParser::new().with_mime_headers().parse(data)?;
    let mut paths: Vec<Option<PartPath>> = vec![None; message.parts.len()];
    let mut stack = vec![(0usize, Vec::new())];
    while let Some((id, path)) = stack.pop() {
        let Some(part) = message.parts.get(id) else {
            continue;
        };
        if let PartType::Multipart(children) = &part.body {
            for (i, &c) in children.iter().enumerate() {
                let mut p = path.clone();
                p.push(i);
                stack.push((c as usize, p));
            }
        }
        paths[id] = Some(path);
    }
    let map = |ids: &[u32]| -> Vec<PartPath> {
        ids.iter()
            .map(|&id| {
                paths
                    .get(id as usize)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| vec![usize::MAX])
            })
            .collect()
    };
    let mut attachments = map(&message.attachments);
    attachments.sort();
    let mut shape: Shape = paths.iter().flatten().cloned().collect();
    shape.sort();
    let lists = Lists {
        text: map(&message.text_body),
        html: map(&message.html_body),
        attachments,
    };
    Some((lists, shape))
}

/// Every message under `dir`, mboxes split with mailpipe's reader.
fn messages(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    let mut out = Vec::new();
    for path in files {
        let data = std::fs::read(&path).expect("readable");
        let name = path
            .strip_prefix(dir)
            .expect("under dir")
            .display()
            .to_string();
        if data.starts_with(b"From ") {
            for (k, m) in mailpipe::mbox::MboxReader::new(&data[..]).enumerate() {
                let m = m.expect("mbox in memory reads");
                out.push((format!("{name}#{k}"), m.data));
            }
        } else if !data.is_empty() {
            out.push((name, data));
        }
    }
    out
}

struct Tally {
    messages: usize,
    agree: usize,
    /// Not messages: no header field for mailpipe (mail2json writes an
    /// `error`) or no message at all for mail-parser.
    refused: usize,
    /// The two parsers split the message into different trees: a MIME
    /// parsing difference, not one of the body model.
    other_tree: Vec<String>,
    /// Different lists in a class of [`departs`] or [`excused`]; whether
    /// the trees are the same.
    excused: Vec<(String, &'static str, bool)>,
    /// Different trees, unexplained.
    other_tree_unexplained: Vec<String>,
    /// Same tree, different lists, unexplained.
    differ: Vec<String>,
}

fn compare(set: &str, messages: &[(String, Vec<u8>)]) -> Tally {
    let verbose = std::env::var_os("MAIL2JSON_ORACLE_VERBOSE").is_some();
    let mut t = Tally {
        messages: 0,
        agree: 0,
        refused: 0,
        other_tree: Vec::new(),
        excused: Vec::new(),
        other_tree_unexplained: Vec::new(),
        differ: Vec::new(),
    };
    for (name, data) in messages {
        t.messages += 1;
        let (Some((ours, our_shape, facts)), Some((theirs, their_shape))) =
            (ours(data), theirs(data))
        else {
            t.refused += 1;
            continue;
        };
        if ours == theirs {
            t.agree += 1;
            continue;
        }
        let same_tree = our_shape == their_shape;
        let class = departs(data, &facts, &ours, &theirs)
            .or_else(|| same_tree.then(|| excused(&facts, &ours, &theirs)).flatten());
        if !same_tree {
            t.other_tree.push(name.clone());
        }
        let tree = match class {
            Some(class) => {
                t.excused.push((name.clone(), class, same_tree));
                class
            }
            None if same_tree => {
                t.differ.push(name.clone());
                "same tree"
            }
            None => {
                t.other_tree_unexplained.push(name.clone());
                "other tree"
            }
        };
        if verbose {
            eprintln!("{set}: {name} ({tree})\n  ours   {ours:?}\n  theirs {theirs:?}");
        }
    }
    let compared = t.messages - t.refused;
    let same_tree = compared - t.other_tree.len();
    let same_tree_explained = t.agree + t.excused.iter().filter(|e| e.2).count();
    let explained = t.agree + t.excused.len();
    eprintln!(
        "jmap oracle, {set}: {} of {compared} messages agree on textBody, htmlBody and \
         attachments ({:.1}%), {explained} with the mechanically checked classes ({:.1}%); \
         {} split into different MIME trees ({} of them unexplained); of the {same_tree} \
         split alike, {} agree ({:.1}%), {same_tree_explained} with the classes ({:.1}%); \
         {} are not messages",
        t.agree,
        percent(t.agree, compared),
        percent(explained, compared),
        t.other_tree.len(),
        t.other_tree_unexplained.len(),
        t.agree,
        percent(t.agree, same_tree),
        percent(same_tree_explained, same_tree),
        t.refused
    );
    let mut classes: Vec<&str> = t.excused.iter().map(|e| e.1).collect();
    classes.sort();
    classes.dedup();
    for class in classes {
        let n = t.excused.iter().filter(|e| e.1 == class).count();
        eprintln!("  {class}: {n}");
    }
    t
}

fn percent(n: usize, of: usize) -> f64 {
    100.0 * n as f64 / of.max(1) as f64
}

/// The body model must agree, counting the mechanically checked classes,
/// on 99% of the messages both parsers split alike and on 99% of all
/// messages, trees split differently included.
fn check(set: &str, t: &Tally) {
    let compared = t.messages - t.refused;
    let same_tree = compared - t.other_tree.len();
    let same_tree_explained = t.agree + t.excused.iter().filter(|e| e.2).count();
    assert!(
        same_tree_explained * 100 >= same_tree * 99,
        "{set}: only {same_tree_explained} of {same_tree} with the same tree agree; differ: {:?}",
        t.differ
    );
    let explained = t.agree + t.excused.len();
    assert!(
        explained * 100 >= compared * 99,
        "{set}: only {explained} of {compared} agree; unexplained: {:?} and other trees {:?}",
        t.differ,
        t.other_tree_unexplained
    );
}

#[test]
fn body_model_agrees_with_mail_parser_on_the_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mail");
    let all = messages(&dir);
    assert!(all.len() >= 25, "fixtures found: {}", all.len());
    let t = compare("fixtures", &all);
    check("fixtures", &t);
}

#[test]
fn body_model_agrees_with_mail_parser_on_the_shared_corpus() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        return;
    }
    let all = messages(&dir);
    let t = compare("shared corpus", &all);
    check("shared corpus", &t);
}
