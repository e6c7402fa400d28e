//! Figures → the "Updating" section of docs/benchmarks.md.

use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::measure::Usage;
use crate::repo::Repo;

pub const A_COLD: &str = "(a) cold: init + refresh + download, 100k targets in one targets.json";
pub const A_WARM: &str = "(a) warm: refresh, nothing changed";
pub const B_SUCCINCT: &str = "(b) cold, 256 TAP 15 succinct bins";
pub const B_PREFIX: &str = "(b) cold, 256 bins by path_hash_prefixes";
pub const C_BIG: &str = "(c) download and verify one 1 GiB target";
pub const CURL: &str = "curl to file";
pub const CURL_SYNC: &str = "curl to file, then fsync (`sync FILE`)";
pub const OPENSSL: &str = "openssl dgst -sha256 (over curl's file)";
const AIRLOCK: &str = "airlock-client";
pub const AIRLOCK_TMPFS: &str = "airlock-client, dirs on tmpfs (diagnostic)";

const HEADING: &str = "## Updating";
const END_MARKER: &str = "<!-- end of updating section -->";

/// One run of one client.
#[derive(Clone, Debug)]
pub struct Sample {
    pub usage: Usage,
    /// Requests the server received during the run.
    pub requests: u64,
    /// The client's own error when it failed.
    pub error: Option<String>,
}

/// Every run of one client on one piece of work.
#[derive(Clone, Debug)]
pub struct Row {
    pub work: String,
    pub client: String,
    pub samples: Vec<Sample>,
}

impl Row {
    pub fn new(work: &str, client: &str) -> Self {
        Self {
            work: work.to_string(),
            client: client.to_string(),
            samples: Vec::new(),
        }
    }

    fn values(&self, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        let mut v: Vec<f64> = self.samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn wall(&self) -> Vec<f64> {
        self.values(|s| s.usage.wall_s)
    }

    fn cpu(&self) -> Vec<f64> {
        self.values(|s| s.usage.user_s + s.usage.sys_s)
    }

    fn rss_mib(&self) -> Vec<f64> {
        self.values(|s| s.usage.max_rss_kib as f64 / 1024.0)
    }

    fn requests(&self) -> Vec<f64> {
        self.values(|s| s.requests as f64)
    }

    fn all_ok(&self) -> bool {
        !self.samples.is_empty() && self.samples.iter().all(|s| s.error.is_none())
    }

    fn result(&self) -> String {
        let failed: Vec<&Sample> = self.samples.iter().filter(|s| s.error.is_some()).collect();
        match failed.first() {
            None => "ok".into(),
            Some(first) => {
                let err = first
                    .error
                    .as_deref()
                    .unwrap_or_default()
                    .replace('|', "\\|");
                if failed.len() == self.samples.len() {
                    format!("**fails**: `{err}`")
                } else {
                    format!("{}/{} runs fail: `{err}`", failed.len(), self.samples.len())
                }
            }
        }
    }
}

/// Median of sorted values (mean of the middle two for an even count).
pub fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn range(v: &[f64], f: fn(f64) -> String) -> String {
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) if v.len() > 1 => {
            format!("{} ({}–{})", f(median(v)), f(*lo), f(*hi))
        }
        _ => f(median(v)),
    }
}

fn count(v: &[f64]) -> String {
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) if lo == hi => format!("{lo:.0}"),
        (Some(lo), Some(hi)) => format!("{lo:.0}–{hi:.0}"),
        _ => "-".into(),
    }
}

/// The machine the figures come from.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub mem: String,
    pub kernel: String,
    pub load_start: String,
    pub load_end: String,
    pub date: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            mem,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            load_start: Self::loadavg(),
            load_end: String::new(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }

    /// 1, 5 and 15 minute load averages.
    pub fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Clone, Debug)]
pub struct Versions {
    pub airlock: String,
    pub rustc: String,
    pub python_tuf: String,
    pub tough: String,
    pub curl: String,
    pub openssl: String,
}

pub struct Context {
    pub command: String,
    pub machine: Machine,
    pub versions: Versions,
    pub targets: usize,
    pub repeat: usize,
    pub big_repeat: usize,
    pub big_mib: u64,
    pub flat: Repo,
    pub succinct: Repo,
    pub prefix: Repo,
    pub notes: Option<String>,
    pub rows: Vec<Row>,
    /// Callgrind instruction counts of airlock-client's flat cold and warm runs.
    pub instructions: Option<crate::callgrind::Counts>,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

impl Context {
    fn row(&self, work: &str, client: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.work == work && r.client == client)
    }

    fn table(&self, out: &mut String, work: &str) {
        let rows: Vec<&Row> = self.rows.iter().filter(|r| r.work == work).collect();
        if rows.is_empty() {
            return;
        }
        let big = work == C_BIG;
        let curl_wall = self.row(C_BIG, CURL).map(|r| median(&r.wall()));
        let _ = writeln!(out, "**{work}**\n");
        if big {
            let _ = writeln!(
                out,
                "| Client | Wall, median (min–max) | Throughput | vs curl | CPU user+sys | Peak RSS | Requests | Result |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        } else {
            let _ = writeln!(
                out,
                "| Client | Wall, median (min–max) | CPU user+sys | Peak RSS | Requests | Result |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|");
        }
        for r in rows {
            let wall = r.wall();
            let cpu = r.cpu();
            let rss = r.rss_mib();
            let rss = format!("{:.1} MiB", median(&rss));
            if big {
                let w = median(&wall);
                let tput = format!("{:.0} MiB/s", self.big_mib as f64 / w);
                let vs = curl_wall.map_or("-".into(), |c| format!("{:.0}%", 100.0 * c / w));
                let _ = writeln!(
                    out,
                    "| {} | {} | {tput} | {vs} | {} | {rss} | {} | {} |",
                    r.client,
                    range(&wall, secs),
                    secs(median(&cpu)),
                    count(&r.requests()),
                    r.result()
                );
            } else {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {rss} | {} | {} |",
                    r.client,
                    range(&wall, secs),
                    secs(median(&cpu)),
                    count(&r.requests()),
                    r.result()
                );
            }
        }
        let _ = writeln!(out);
    }

    fn aims(&self, out: &mut String) {
        let _ = writeln!(out, "### Aims (issue 3) for airlock-client, this run\n");
        let _ = writeln!(
            out,
            "| Aim | Measured (median wall; CPU user+sys) | Met? (on wall time) |"
        );
        let _ = writeln!(out, "|---|---|---|");
        let mut aim = |what: &str, measured: String, met: Option<bool>| {
            let verdict = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(out, "| {what} | {measured} | {verdict} |");
        };
        let wall = |work: &str| self.row(work, AIRLOCK).map(|r| (median(&r.wall()), r));
        let both = |w: f64, r: &Row| format!("{}; CPU {}", secs(w), secs(median(&r.cpu())));
        match wall(A_COLD) {
            Some((w, r)) => {
                let rss = median(&r.rss_mib());
                aim("(a) cold ≤ 0.1 s", both(w, r), Some(w <= 0.1 && r.all_ok()));
                aim(
                    "(a) cold peak RSS ≤ 64 MiB",
                    format!("{rss:.1} MiB"),
                    Some(rss <= 64.0 && r.all_ok()),
                );
            }
            None => aim("(a) cold", "-".into(), None),
        }
        match wall(A_WARM) {
            Some((w, r)) => aim(
                "(a) warm ≤ 20 ms",
                both(w, r),
                Some(w <= 0.020 && r.all_ok()),
            ),
            None => aim("(a) warm", "-".into(), None),
        }
        for work in [B_SUCCINCT, B_PREFIX] {
            match wall(work) {
                Some((w, r)) => {
                    let req = r.requests();
                    // 2.root.json (404), timestamp, snapshot, targets, one bin, the target.
                    let minimal = req.last().is_some_and(|&n| n <= 6.0);
                    aim(
                        &format!("{} ≤ 15 ms", work.trim_start_matches("(b) cold, ")),
                        both(w, r),
                        Some(w <= 0.015 && r.all_ok()),
                    );
                    aim(
                        &format!(
                            "{}: only the needed bin fetched (6 requests: 2.root.json → 404, timestamp, snapshot, targets, 1 bin, the target)",
                            work.trim_start_matches("(b) cold, ")
                        ),
                        format!("{} requests", count(&req)),
                        Some(minimal && r.all_ok()),
                    );
                }
                None => aim(work, "-".into(), None),
            }
        }
        let curl = self.row(C_BIG, CURL).map(|r| median(&r.wall()));
        match (wall(C_BIG), curl) {
            (Some((w, r)), Some(c)) => {
                let ratio = c / w;
                let rss = median(&r.rss_mib());
                aim(
                    "(c) ≥ 90% of curl-to-file speed",
                    format!(
                        "{:.0} MiB/s vs curl {:.0} MiB/s = {:.0}%",
                        self.big_mib as f64 / w,
                        self.big_mib as f64 / c,
                        ratio * 100.0
                    ),
                    Some(ratio >= 0.9 && r.all_ok()),
                );
                aim(
                    "(c) peak RSS < 16 MiB",
                    format!("{rss:.1} MiB"),
                    Some(rss < 16.0 && r.all_ok()),
                );
            }
            _ => aim("(c)", "-".into(), None),
        }
        let _ = writeln!(out);
    }
}

/// The body of the Updating section (without its heading and end marker).
pub fn section(cx: &Context) -> String {
    let m = &cx.machine;
    let v = &cx.versions;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Generated by the command below on {}; every figure is from that one run. Do not edit by hand:\nre-run the command (hand-written notes live in `bench/update-bench/NOTES.md`).\n",
        m.date
    );
    let _ = writeln!(out, "```sh\n{}\n```\n", cx.command);
    let _ = writeln!(
        out,
        "- Machine: {} CPUs ({}), {} RAM, Linux {}; shared with other builds, load average {} at the start, {} at the end.",
        m.nproc, m.cpu, m.mem, m.kernel, m.load_start, m.load_end
    );
    let _ = writeln!(
        out,
        "- Clients: airlock-client ({}, release build, `bench/update-bench/src/bin/airlock-bench-client.rs`); {} (`bench/python-peer/ngclient_peer.py`); {} from crates.io (`bench/tough-peer`, release build, its own Cargo project), once as shipped and once with `HttpTransportBuilder::initial_backoff(Duration::ZERO)`; {}; {}; {}.",
        v.airlock, v.python_tuf, v.tough, v.curl, v.openssl, v.rustc
    );
    let _ = writeln!(
        out,
        "- Server: airlock-serve's static HTTPS server (rustls) on 127.0.0.1 with a certificate from a test CA made at run time; every client trusts that CA (airlock: `Trust::ca_bundle_file`; python-tuf and tough: `SSL_CERT_FILE`; curl: `--cacert`). All clients use HTTPS. The server runs in the runner process; requests are counted there."
    );
    let _ = writeln!(
        out,
        "- Measure: each client run is a child process; wall time from spawn to exit, CPU time (user+sys) and peak RSS from `getrusage(RUSAGE_CHILDREN)` of an intermediate process whose only child it is. {} runs per client for (a) and (b), {} for (c), interleaved across clients; median (min–max). Client directories live under $TMPDIR (ext4 on the machine's disk); the row \"{}\" runs the same airlock binary with its directories on /dev/shm, where fsync is free, to show what its durable writes cost. Cold runs start from an empty metadata directory holding only the trusted root; warm runs refresh right after a cold run.",
        cx.repeat, cx.big_repeat, AIRLOCK_TMPFS
    );
    let size = |r: &Repo, f: &str| r.metadata_sizes.get(f).copied().unwrap_or(0);
    let bins = |r: &Repo| {
        let sizes: Vec<u64> = r
            .metadata_sizes
            .iter()
            .filter(|(k, _)| k.starts_with("1.bin-"))
            .map(|(_, v)| *v)
            .collect();
        let avg = sizes.iter().sum::<u64>() / (sizes.len().max(1) as u64);
        format!("{} bins of about {} each", sizes.len(), kib(avg))
    };
    let _ = writeln!(
        out,
        "- Repositories, generated at run time with airlock-core's metadata model (Ed25519, consistent snapshots, `bench/update-bench/src/repo.rs`): {} targets; flat: targets.json {}, snapshot {}; succinct: targets.json {}, snapshot {}, {}; path_hash_prefixes: targets.json {}, snapshot {}, {}. The downloaded small target is `{}` ({} bytes). (c): one target of {} MiB of pseudo-random bytes, written to a temp dir and deleted after the run; each client's copy is deleted after its run. Target files are served at TUF's `dir/HASH.name` and also at `HASH.dir/name`, the URL tough 0.24 asks for.\n",
        cx.targets,
        mib(size(&cx.flat, "1.targets.json")),
        kib(size(&cx.flat, "1.snapshot.json")),
        kib(size(&cx.succinct, "1.targets.json")),
        kib(size(&cx.succinct, "1.snapshot.json")),
        bins(&cx.succinct),
        kib(size(&cx.prefix, "1.targets.json")),
        kib(size(&cx.prefix, "1.snapshot.json")),
        bins(&cx.prefix),
        cx.flat.target,
        cx.flat.target_len,
        cx.big_mib
    );
    for work in [A_COLD, A_WARM, B_SUCCINCT, B_PREFIX, C_BIG] {
        cx.table(&mut out, work);
    }
    if let Some(c) = &cx.instructions {
        let _ = writeln!(
            out,
            "Instructions executed by airlock-client on the flat repository (`valgrind --tool=callgrind`, `Ir` of every thread, one run each, after the timed runs; steady under load, unlike the times above; `./bench/run-callgrind` prints them alone): cold {}, warm {}.\n",
            crate::callgrind::group(c.cold),
            crate::callgrind::group(c.warm)
        );
    }
    cx.aims(&mut out);
    if let Some(notes) = &cx.notes {
        let _ = writeln!(out, "{}", notes.trim_end());
        let _ = writeln!(out);
    }
    out
}

/// `doc` with everything between the `## Updating` heading line and the end marker replaced by
/// `body`; the heading and the marker stay.
/// `doc` with the body of the section under `heading` (up to `end_marker`) replaced, or the
/// section appended when the document has none.
pub fn replace_or_append(doc: &str, heading: &str, end_marker: &str, body: &str) -> String {
    if let Some(h) = doc.find(heading)
        && let Some(after) = doc[h..].find('\n').map(|i| h + i + 1)
        && let Some(end) = doc[after..].find(end_marker).map(|i| after + i)
    {
        return format!("{}{}\n{}", &doc[..after], body.trim_end(), &doc[end..]);
    }
    format!(
        "{}\n\n{heading}\n{}\n\n{end_marker}\n",
        doc.trim_end(),
        body.trim_end()
    )
}

pub fn replace_section(doc: &str, body: &str) -> Result<String> {
    let Some(h) = doc.find(HEADING) else {
        bail!("no {HEADING:?} heading in the document");
    };
    let Some(after_heading) = doc[h..].find('\n').map(|i| h + i + 1) else {
        bail!("the {HEADING:?} heading is the last line");
    };
    let Some(end) = doc[after_heading..]
        .find(END_MARKER)
        .map(|i| after_heading + i)
    else {
        bail!("no {END_MARKER:?} after the {HEADING:?} heading");
    };
    Ok(format!(
        "{}\n{}\n{}",
        &doc[..after_heading],
        body.trim_end(),
        &doc[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_updating_section() {
        let doc = "# B\n\n## Publishing\n\nx\n\n<!-- end of publishing section -->\n\n## Updating (a vs b)\n\nold\n\n<!-- end of updating section -->\n\n## Log\n\ny\n";
        let new = replace_section(doc, "new body\n").unwrap();
        assert_eq!(
            new,
            "# B\n\n## Publishing\n\nx\n\n<!-- end of publishing section -->\n\n## Updating (a vs b)\n\nnew body\n<!-- end of updating section -->\n\n## Log\n\ny\n"
        );
        // Idempotent shape: a second rewrite keeps one heading and one marker.
        let again = replace_section(&new, "newer\n").unwrap();
        assert_eq!(again.matches(HEADING).count(), 1);
        assert_eq!(again.matches(END_MARKER).count(), 1);
        assert!(again.contains("newer") && !again.contains("new body"));
    }

    #[test]
    fn refuses_a_document_without_the_marker() {
        assert!(replace_section("## Updating\n\nno marker\n", "x").is_err());
        assert!(replace_section("nothing here\n", "x").is_err());
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
        assert!(median(&[]).is_nan());
    }
}
