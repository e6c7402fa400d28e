//! The result of a comparison: what `--json` prints, and the summary a person reads.

use std::fmt::Write as _;

use serde::Serialize;
use sha2::Digest as _;

/// The same thing on side A and side B.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pair<T> {
    pub a: T,
    pub b: T,
}

/// How two artifacts (or two archives inside them) differ, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Byte for byte the same.
    Identical,
    /// The bytes differ, but every member has the same content: only times, modes, owners,
    /// order, compression or signatures differ.
    MetadataOnly,
    /// A member was added or removed, or differs in content, kind or link target.
    Content,
}

/// Counts of differing members at every depth; an archive member that was opened is counted
/// through its own members, not itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub metadata_only: u64,
}

/// A field that differs; `None` where a side lacks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// How a member differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Added,
    Removed,
    /// Its bytes, kind, link target or content fields differ.
    Content,
    /// Only its metadata differs (for an archive member: only its members' metadata).
    Metadata,
}

/// How a member's bytes differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentDiff {
    /// A unified diff of two UTF-8 texts, cut after `Options::text_max_lines` lines.
    Text { diff: String, truncated: bool },
    /// Sizes and SHA-256 of bytes that are not both text (or too large for a text diff).
    Binary {
        size: Pair<u64>,
        sha256: Pair<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Both sides are archives; how their members differ.
    Archive { node: Box<Node> },
}

/// One member that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberDiff {
    pub name: String,
    pub change: Change,
    /// "file", "directory", "symlink", ...; `None` on the side that lacks the member.
    pub kind: Pair<Option<String>>,
    pub size: Pair<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentDiff>,
    /// Content differences besides the bytes: kind, link target, a phar entry's metadata.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDiff>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<FieldDiff>,
}

/// Two archives (or two plain files) compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// e.g. "tar.gz"; `None` for a side that is not an archive.
    pub format: Pair<Option<String>>,
    pub verdict: Verdict,
    /// Archive-level metadata that differs: compression headers, comments, member order,
    /// signatures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<FieldDiff>,
    /// What a person should know about how the sides were read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The members that differ, in A's order, then those only in B.
    pub members: Vec<MemberDiff>,
}

/// The comparison of two artifacts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub a: String,
    pub b: String,
    pub verdict: Verdict,
    pub size: Pair<u64>,
    pub sha256: Pair<String>,
    pub summary: Summary,
    /// `None` when the files are identical.
    pub root: Option<Node>,
}

impl Report {
    pub(crate) fn new(a: String, b: String, bytes: (&[u8], &[u8]), root: Option<Node>) -> Self {
        let mut summary = Summary::default();
        if let Some(node) = &root {
            count(node, &mut summary);
        }
        Report {
            a,
            b,
            verdict: root.as_ref().map_or(Verdict::Identical, |n| n.verdict),
            size: Pair {
                a: bytes.0.len() as u64,
                b: bytes.1.len() as u64,
            },
            sha256: Pair {
                a: hex::encode(sha2::Sha256::digest(bytes.0)),
                b: hex::encode(sha2::Sha256::digest(bytes.1)),
            },
            summary,
            root,
        }
    }

    /// The `--json` form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// One line a person judges at a glance.
    pub fn headline(&self) -> String {
        let s = &self.summary;
        match self.verdict {
            Verdict::Identical => "IDENTICAL: the files are byte for byte the same".into(),
            Verdict::MetadataOnly if s.metadata_only == 0 => {
                "METADATA ONLY: every member is the same; only the archive's own headers, \
                 order or encoding differ"
                    .into()
            }
            Verdict::MetadataOnly => format!(
                "METADATA ONLY: every member has the same content; {} differ only in times, \
                 modes, owners, order or headers",
                plural(s.metadata_only, "member")
            ),
            Verdict::Content => {
                let mut line = format!(
                    "CONTENT DIFFERS: {} changed, {} added, {} removed",
                    s.changed, s.added, s.removed
                );
                if s.metadata_only > 0 {
                    let _ = write!(line, "; {} more differ in metadata only", s.metadata_only);
                }
                line
            }
        }
    }

    /// The whole human report: both files, the headline, content differences (with text
    /// diffs), then metadata-only differences (the first `max_metadata_lines`; `--json` has
    /// them all) and notes.
    pub fn render(&self, max_metadata_lines: usize) -> String {
        let mut out = String::new();
        let formats = self.root.as_ref().map(|n| n.format.clone());
        for (sign, path, size, sha, format) in [
            (
                "---",
                &self.a,
                self.size.a,
                &self.sha256.a,
                formats.as_ref().and_then(|f| f.a.clone()),
            ),
            (
                "+++",
                &self.b,
                self.size.b,
                &self.sha256.b,
                formats.as_ref().and_then(|f| f.b.clone()),
            ),
        ] {
            let format = format.map(|f| format!("{f}, ")).unwrap_or_default();
            let _ = writeln!(
                out,
                "{sign} {path} ({format}{size} bytes, sha256 {})",
                sha.get(..16).unwrap_or(sha)
            );
        }
        let _ = writeln!(out, "{}", self.headline());
        let Some(root) = &self.root else {
            return out;
        };
        let mut lines = Lines::default();
        walk(root, "", &mut lines);
        if !lines.content.is_empty() {
            out.push_str("\nContent differences:\n");
            for l in &lines.content {
                out.push_str(l);
            }
        }
        if !lines.metadata.is_empty() {
            out.push_str("\nMetadata-only differences:\n");
            for l in lines.metadata.iter().take(max_metadata_lines) {
                out.push_str(l);
            }
            if lines.metadata.len() > max_metadata_lines {
                let _ = writeln!(
                    out,
                    "  ... and {} more (--json lists them all)",
                    lines.metadata.len() - max_metadata_lines
                );
            }
        }
        if !lines.notes.is_empty() {
            out.push_str("\nNotes:\n");
            for l in &lines.notes {
                out.push_str(l);
            }
        }
        out
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn count(node: &Node, s: &mut Summary) {
    for m in &node.members {
        if let Some(ContentDiff::Archive { node }) = &m.content
            && m.fields.is_empty()
        {
            count(node, s);
            continue;
        }
        match m.change {
            Change::Added => s.added += 1,
            Change::Removed => s.removed += 1,
            Change::Content => s.changed += 1,
            Change::Metadata => s.metadata_only += 1,
        }
    }
}

#[derive(Default)]
struct Lines {
    content: Vec<String>,
    metadata: Vec<String>,
    notes: Vec<String>,
}

fn fields_text(fields: &[FieldDiff]) -> String {
    let show = |v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                if s.chars().count() > 80 {
                    format!("{}...", s.chars().take(77).collect::<String>())
                } else {
                    s.to_string()
                }
            })
            .unwrap_or_else(|| "(none)".into())
    };
    fields
        .iter()
        .map(|f| format!("{} {} -> {}", f.field, show(&f.a), show(&f.b)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn walk(node: &Node, prefix: &str, lines: &mut Lines) {
    let here = if prefix.is_empty() {
        "(archive)".to_string()
    } else {
        prefix.trim_end_matches("!/").to_string()
    };
    if !node.metadata.is_empty() {
        lines
            .metadata
            .push(format!("  {here}: {}\n", fields_text(&node.metadata)));
    }
    for n in &node.notes {
        lines.notes.push(format!("  {here}: {n}\n"));
    }
    for m in &node.members {
        let path = format!("{prefix}{}", m.name);
        let kind = |k: &Option<String>, size: Option<u64>| match (k, size) {
            (Some(k), Some(s)) if k == "file" => format!("{k}, {s} bytes"),
            (Some(k), _) => k.clone(),
            (None, _) => "absent".into(),
        };
        match m.change {
            Change::Added => lines.content.push(format!(
                "  added    {path} ({})\n",
                kind(&m.kind.b, m.size.b)
            )),
            Change::Removed => lines.content.push(format!(
                "  removed  {path} ({})\n",
                kind(&m.kind.a, m.size.a)
            )),
            Change::Content | Change::Metadata => {
                let mut shown_as_archive = false;
                if let Some(ContentDiff::Archive { node }) = &m.content {
                    walk(node, &format!("{path}!/"), lines);
                    shown_as_archive = true;
                }
                if !m.fields.is_empty() || (m.content.is_some() && !shown_as_archive) {
                    let mut line = format!("  changed  {path}");
                    if !m.fields.is_empty() {
                        let _ = write!(line, ": {}", fields_text(&m.fields));
                    }
                    match &m.content {
                        Some(ContentDiff::Text { diff, truncated }) => {
                            line.push_str(" (text)\n");
                            for d in diff.lines() {
                                let _ = writeln!(line, "      {d}");
                            }
                            if *truncated {
                                line.push_str("      ... (diff cut; --json has the same cut)\n");
                            }
                        }
                        Some(ContentDiff::Binary { size, sha256, note }) => {
                            let _ = write!(
                                line,
                                " (binary: {} -> {} bytes, sha256 {} -> {}",
                                size.a,
                                size.b,
                                sha256.a.get(..16).unwrap_or(&sha256.a),
                                sha256.b.get(..16).unwrap_or(&sha256.b)
                            );
                            if let Some(n) = note {
                                let _ = write!(line, "; {n}");
                            }
                            line.push_str(")\n");
                        }
                        _ => line.push('\n'),
                    }
                    lines.content.push(line);
                }
                if !m.metadata.is_empty() {
                    lines
                        .metadata
                        .push(format!("  {path}: {}\n", fields_text(&m.metadata)));
                }
            }
        }
    }
}
