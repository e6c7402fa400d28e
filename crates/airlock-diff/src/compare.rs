//! Pairing members by name and sorting each difference into content or metadata.

use std::collections::{BTreeMap, HashMap};

use sha2::Digest as _;

use crate::format::{self, Archive, Budget, Kind, Member, Opened};
use crate::report::{Change, ContentDiff, FieldDiff, MemberDiff, Node, Pair, Verdict};
use crate::{DiffError, Options};

/// The sides' budgets and the options, passed down the recursion.
struct Ctx<'a> {
    a: &'a mut Budget,
    b: &'a mut Budget,
    options: &'a Options,
}

/// Compare two top-level artifacts whose bytes differ.
pub(crate) fn compare_top(
    (name_a, a): (&str, &[u8]),
    (name_b, b): (&str, &[u8]),
    budget_a: &mut Budget,
    budget_b: &mut Budget,
    options: &Options,
) -> Result<Node, DiffError> {
    let mut ctx = Ctx {
        a: budget_a,
        b: budget_b,
        options,
    };
    let oa = format::open(a, name_a, 0, ctx.a)?;
    let ob = format::open(b, name_b, 0, ctx.b)?;
    match (oa, ob) {
        (Opened::Archive(x), Opened::Archive(y)) => compare_archives(&x, &y, "", &mut ctx),
        (oa, ob) => {
            let content = plain(a, b, "(content)", &[&oa, &ob], &ctx);
            let verdict = Verdict::Content;
            Ok(Node {
                format: Pair {
                    a: format_of(&oa),
                    b: format_of(&ob),
                },
                verdict,
                metadata: Vec::new(),
                notes: notes_of(&oa, &ob),
                members: vec![MemberDiff {
                    name: "(content)".into(),
                    change: Change::Content,
                    kind: Pair {
                        a: Some("file".into()),
                        b: Some("file".into()),
                    },
                    size: Pair {
                        a: Some(a.len() as u64),
                        b: Some(b.len() as u64),
                    },
                    content: Some(content),
                    fields: Vec::new(),
                    metadata: Vec::new(),
                }],
            })
        }
    }
}

fn format_of(o: &Opened) -> Option<String> {
    match o {
        Opened::Archive(a) => Some(a.format.clone()),
        Opened::Plain { .. } => None,
    }
}

fn notes_of(a: &Opened, b: &Opened) -> Vec<String> {
    let mut notes = Vec::new();
    for (side, o) in [("A", a), ("B", b)] {
        if let Opened::Plain { note: Some(n) } = o {
            notes.push(format!("{side} was compared as bytes: {n}"));
        }
    }
    notes
}

/// The members of an archive keyed by name; a name that appears again gets " (2)", " (3)"...
fn keyed(members: &[Member]) -> Vec<(String, &Member)> {
    let mut seen: HashMap<&str, u32> = HashMap::new();
    members
        .iter()
        .map(|m| {
            let n = seen.entry(m.name.as_str()).or_insert(0);
            *n += 1;
            let key = if *n == 1 {
                m.name.clone()
            } else {
                format!("{} ({n})", m.name)
            };
            (key, m)
        })
        .collect()
}

fn field_diffs<K: AsRef<str>>(a: &[(K, String)], b: &[(K, String)]) -> Vec<FieldDiff> {
    let mut all: BTreeMap<&str, (Option<&String>, Option<&String>)> = BTreeMap::new();
    for (k, v) in a {
        all.entry(k.as_ref()).or_default().0 = Some(v);
    }
    for (k, v) in b {
        all.entry(k.as_ref()).or_default().1 = Some(v);
    }
    // In A's field order (the format's natural one), then fields only B has.
    let mut order: Vec<&str> = a.iter().map(|(k, _)| k.as_ref()).collect();
    order.extend(
        b.iter()
            .map(|(k, _)| k.as_ref())
            .filter(|k| !a.iter().any(|(ka, _)| ka.as_ref() == *k)),
    );
    order.dedup();
    order
        .into_iter()
        .filter_map(|k| {
            let (va, vb) = all.get(k).copied().unwrap_or_default();
            (va != vb).then(|| FieldDiff {
                field: k.to_string(),
                a: va.cloned(),
                b: vb.cloned(),
            })
        })
        .collect()
}

fn compare_archives(
    x: &Archive,
    y: &Archive,
    prefix: &str,
    ctx: &mut Ctx<'_>,
) -> Result<Node, DiffError> {
    let mut metadata = Vec::new();
    if x.format != y.format {
        metadata.push(FieldDiff {
            field: "format".into(),
            a: Some(x.format.clone()),
            b: Some(y.format.clone()),
        });
    }
    metadata.extend(field_diffs(&x.meta, &y.meta));
    let mut notes = Vec::new();
    for (side, a) in [("A", x), ("B", y)] {
        for n in &a.notes {
            notes.push(format!("{side}: {n}"));
        }
    }

    let ka = keyed(&x.members);
    let kb = keyed(&y.members);
    let index_b: HashMap<&str, usize> = kb
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.as_str(), i))
        .collect();
    let index_a: HashMap<&str, usize> = ka
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.as_str(), i))
        .collect();

    // Order: the members both sides have, in A's order and in B's.
    let common_a: Vec<&str> = ka
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| index_b.contains_key(k))
        .collect();
    let common_b: Vec<&str> = kb
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| index_a.contains_key(k))
        .collect();
    if let Some((first_a, first_b)) = common_a.iter().zip(&common_b).find(|(p, q)| p != q) {
        metadata.push(FieldDiff {
            field: "member order".into(),
            a: Some(format!("{first_a} comes first")),
            b: Some(format!("{first_b} comes first")),
        });
    }

    let mut members = Vec::new();
    for (key, ma) in &ka {
        match index_b.get(key.as_str()).and_then(|&i| kb.get(i)) {
            Some((_, mb)) => {
                if let Some(d) = compare_member(key, ma, mb, x.depth, y.depth, prefix, ctx)? {
                    members.push(d);
                }
            }
            None => members.push(one_side(key, ma, Change::Removed)),
        }
    }
    for (key, mb) in &kb {
        if !index_a.contains_key(key.as_str()) {
            members.push(one_side(key, mb, Change::Added));
        }
    }

    let content = members
        .iter()
        .any(|m| matches!(m.change, Change::Added | Change::Removed | Change::Content));
    if members.is_empty() && metadata.is_empty() {
        // Only reached for archives whose bytes differ.
        metadata.push(FieldDiff {
            field: "encoding".into(),
            a: Some("differs".into()),
            b: Some("differs".into()),
        });
        notes.push(
            "the archives' bytes differ but every member and field read compares equal \
             (compression level, padding, or fields not read)"
                .into(),
        );
    }
    Ok(Node {
        format: Pair {
            a: Some(x.format.clone()),
            b: Some(y.format.clone()),
        },
        verdict: if content {
            Verdict::Content
        } else {
            Verdict::MetadataOnly
        },
        metadata,
        notes,
        members,
    })
}

fn size_of(m: &Member) -> Option<u64> {
    matches!(m.kind, Kind::File).then_some(m.data.len() as u64)
}

fn one_side(key: &str, m: &Member, change: Change) -> MemberDiff {
    let (kind, size) = if change == Change::Added {
        (
            Pair {
                a: None,
                b: Some(m.kind.name()),
            },
            Pair {
                a: None,
                b: size_of(m),
            },
        )
    } else {
        (
            Pair {
                a: Some(m.kind.name()),
                b: None,
            },
            Pair {
                a: size_of(m),
                b: None,
            },
        )
    };
    MemberDiff {
        name: key.to_string(),
        change,
        kind,
        size,
        content: None,
        fields: Vec::new(),
        metadata: Vec::new(),
    }
}

fn link_target(k: &Kind) -> Option<&str> {
    match k {
        Kind::Symlink(t) | Kind::Hardlink(t) => Some(t),
        _ => None,
    }
}

fn compare_member(
    key: &str,
    ma: &Member,
    mb: &Member,
    depth_a: u32,
    depth_b: u32,
    prefix: &str,
    ctx: &mut Ctx<'_>,
) -> Result<Option<MemberDiff>, DiffError> {
    let mut fields = Vec::new();
    if ma.kind.name() != mb.kind.name() {
        fields.push(FieldDiff {
            field: "kind".into(),
            a: Some(ma.kind.name()),
            b: Some(mb.kind.name()),
        });
    } else if link_target(&ma.kind) != link_target(&mb.kind) {
        fields.push(FieldDiff {
            field: "link target".into(),
            a: link_target(&ma.kind).map(str::to_string),
            b: link_target(&mb.kind).map(str::to_string),
        });
    }
    fields.extend(field_diffs(&ma.fields, &mb.fields));
    let metadata = field_diffs(&ma.meta, &mb.meta);

    let content = if ma.data == mb.data {
        None
    } else {
        let path = format!("{prefix}{key}");
        Some(content_diff(
            &ma.data, &mb.data, &path, depth_a, depth_b, ctx,
        )?)
    };
    let nested_metadata_only = matches!(
        &content,
        Some(ContentDiff::Archive { node }) if node.verdict == Verdict::MetadataOnly
    );
    let change = if !fields.is_empty() || (content.is_some() && !nested_metadata_only) {
        Change::Content
    } else if content.is_some() || !metadata.is_empty() {
        Change::Metadata
    } else {
        return Ok(None);
    };
    Ok(Some(MemberDiff {
        name: key.to_string(),
        change,
        kind: Pair {
            a: Some(ma.kind.name()),
            b: Some(mb.kind.name()),
        },
        size: Pair {
            a: size_of(ma),
            b: size_of(mb),
        },
        content,
        fields,
        metadata,
    }))
}

/// How two different blobs differ: as archives when both are, else as text or bytes.
fn content_diff(
    a: &[u8],
    b: &[u8],
    path: &str,
    depth_a: u32,
    depth_b: u32,
    ctx: &mut Ctx<'_>,
) -> Result<ContentDiff, DiffError> {
    if format::looks_like_archive(a) && format::looks_like_archive(b) {
        let oa = format::open(a, path, depth_a, ctx.a)?;
        let ob = format::open(b, path, depth_b, ctx.b)?;
        if let (Opened::Archive(x), Opened::Archive(y)) = (&oa, &ob) {
            let node = compare_archives(x, y, &format!("{path}!/"), ctx)?;
            return Ok(ContentDiff::Archive {
                node: Box::new(node),
            });
        }
        return Ok(plain(a, b, path, &[&oa, &ob], ctx));
    }
    Ok(plain(a, b, path, &[], ctx))
}

fn is_text(data: &[u8]) -> bool {
    !data.contains(&0) && std::str::from_utf8(data).is_ok()
}

fn plain(a: &[u8], b: &[u8], path: &str, opened: &[&Opened], ctx: &Ctx<'_>) -> ContentDiff {
    let o = ctx.options;
    let small = a.len() as u64 <= o.text_max_bytes && b.len() as u64 <= o.text_max_bytes;
    if small && is_text(a) && is_text(b) {
        let (ta, tb) = (
            std::str::from_utf8(a).unwrap_or_default(),
            std::str::from_utf8(b).unwrap_or_default(),
        );
        return text_diff(ta, tb, path, o);
    }
    let mut notes: Vec<String> = Vec::new();
    if let [oa, ob] = opened {
        match (format_of(oa), format_of(ob)) {
            (Some(f), None) => notes.push(format!("A is {f}, B is not an archive")),
            (None, Some(f)) => notes.push(format!("A is not an archive, B is {f}")),
            _ => {}
        }
        for (side, op) in [("A", oa), ("B", ob)] {
            if let Opened::Plain { note: Some(n) } = op {
                notes.push(format!("{side} not read as an archive: {n}"));
            }
        }
    }
    if !small && is_text(a) && is_text(b) {
        notes.push(format!(
            "text larger than the {} bytes shown as a diff",
            o.text_max_bytes
        ));
    }
    ContentDiff::Binary {
        size: Pair {
            a: a.len() as u64,
            b: b.len() as u64,
        },
        sha256: Pair {
            a: hex::encode(sha2::Sha256::digest(a)),
            b: hex::encode(sha2::Sha256::digest(b)),
        },
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

fn text_diff(a: &str, b: &str, path: &str, o: &Options) -> ContentDiff {
    let diff = similar::TextDiff::from_lines(a, b);
    let full = diff
        .unified_diff()
        .context_radius(o.context_lines)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    let mut out = String::new();
    let mut truncated = false;
    for (i, line) in full.split_inclusive('\n').enumerate() {
        if i >= o.text_max_lines {
            truncated = true;
            break;
        }
        out.push_str(line);
    }
    ContentDiff::Text {
        diff: out,
        truncated,
    }
}
