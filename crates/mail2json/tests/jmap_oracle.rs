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
}

fn ours(data: &[u8]) -> Option<(Lists, Shape, Facts)> {
    let mut defects = Vec::new();
    let top = Walker::new(&mut defects, false).parse(data);
    if top.header.fields.is_empty() {
        return None;
    }
    let facts = Facts {
        no_body: top.children.is_empty() && top.body.iter().all(u8::is_ascii_whitespace),
        defects: defects.clone(),
    };
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
    /// Same tree, different lists, in a class of [`excused`].
    excused: Vec<(String, &'static str)>,
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
        let tree = if our_shape != their_shape {
            t.other_tree.push(name.clone());
            "other tree"
        } else if let Some(class) = excused(&facts, &ours, &theirs) {
            t.excused.push((name.clone(), class));
            class
        } else {
            t.differ.push(name.clone());
            "same tree"
        };
        if verbose {
            eprintln!("{set}: {name} ({tree})\n  ours   {ours:?}\n  theirs {theirs:?}");
        }
    }
    let compared = t.messages - t.refused;
    let same_tree = compared - t.other_tree.len();
    let explained = t.agree + t.excused.len();
    eprintln!(
        "jmap oracle, {set}: {} of {compared} messages agree on textBody, htmlBody and \
         attachments ({:.1}%); {} split into different MIME trees; of the {same_tree} \
         split alike, {} agree ({:.1}%), {} with the mechanically checked classes \
         ({:.1}%); {} are not messages",
        t.agree,
        percent(t.agree, compared),
        t.other_tree.len(),
        t.agree,
        percent(t.agree, same_tree),
        explained,
        percent(explained, same_tree),
        t.refused
    );
    let mut classes: Vec<&str> = t.excused.iter().map(|(_, c)| *c).collect();
    classes.sort();
    classes.dedup();
    for class in classes {
        let n = t.excused.iter().filter(|(_, c)| *c == class).count();
        eprintln!("  {class}: {n}");
    }
    t
}

fn percent(n: usize, of: usize) -> f64 {
    100.0 * n as f64 / of.max(1) as f64
}

/// The body model must agree on 99% of the messages both parsers split
/// alike (counting the mechanically checked classes); all messages, trees
/// split differently included, must agree at least `overall` percent.
fn check(set: &str, t: &Tally, overall: usize) {
    let compared = t.messages - t.refused;
    let same_tree = compared - t.other_tree.len();
    assert!(
        (t.agree + t.excused.len()) * 100 >= same_tree * 99,
        "{set}: only {} (+{} explained) of {same_tree} with the same tree agree; differ: {:?}",
        t.agree,
        t.excused.len(),
        t.differ
    );
    assert!(
        t.agree * 100 >= compared * overall,
        "{set}: only {} of {compared} agree; other trees: {:?}",
        t.agree,
        t.other_tree
    );
}

#[test]
fn body_model_agrees_with_mail_parser_on_the_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mail");
    let all = messages(&dir);
    assert!(all.len() >= 25, "fixtures found: {}", all.len());
    let t = compare("fixtures", &all);
    check("fixtures", &t, 95);
}

#[test]
fn body_model_agrees_with_mail_parser_on_the_shared_corpus() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        return;
    }
    let all = messages(&dir);
    let t = compare("shared corpus", &all);
    check("shared corpus", &t, 95);
}
