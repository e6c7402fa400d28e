//! TUF metadata from a mirror into the client's trusted set, one harness per role.
//!
//! Each harness feeds the bytes as received (parsing, key lookup, signature decoding and
//! threshold counting), then the same document re-signed with the fixture key of its role, so
//! that the checks after the signatures run on fuzzed values too.

use airlock_core::tuf::{Metadata, Role, SearchStep, TargetSearch, TrustedSet};

use crate::fixture::{Fixture, ROLE_A, ROLE_C, resign};

/// Parse `data` as `T`; when it parses, it must survive the trip a publisher gives it (compact
/// JSON, as `airlock repo publish` writes) with the same signed bytes: what a client stores
/// and reads back must mean what it verified. (Not via canonical JSON: that writes control
/// characters raw, as in PEM keys, and is only the signed message, never a file.)
fn parse_round_trip<T: Role>(data: &[u8]) -> Option<Metadata<T>> {
    let parsed = Metadata::<T>::parse(data).ok()?;
    let again = serde_json::to_vec(&parsed.metadata)
        .unwrap_or_else(|e| panic!("parsed {} does not serialize: {e}", T::TYPE));
    let reparsed = Metadata::<T>::parse(&again)
        .unwrap_or_else(|e| panic!("re-encoded {} does not parse: {e}", T::TYPE));
    assert_eq!(
        parsed.signed_bytes,
        reparsed.signed_bytes,
        "{} changes meaning when re-encoded",
        T::TYPE
    );
    Some(parsed.metadata)
}

/// `root.json`: as the initial trusted root, and as the next root after the fixture's.
pub fn tuf_root(data: &[u8]) {
    let f = Fixture::get();
    let _ = TrustedSet::new(data, crate::fixture::reference_time());
    if let Some(mut t) = f.at_root() {
        let _ = t.update_root(data);
    }
    let Some(mut md) = parse_round_trip::<airlock_core::tuf::Root>(data) else {
        return;
    };
    let Some(resigned) = resign(&mut md, &f.root_key) else {
        return;
    };
    // As the initial root, then a timestamp checked against its (fuzzed) keys and threshold.
    if let Ok(mut t) = TrustedSet::new(&resigned, crate::fixture::reference_time()) {
        let _ = t.update_timestamp(&f.timestamp);
    }
    // As a rotation: version, both thresholds, key-change detection.
    if let Some(mut t) = f.at_root()
        && t.update_root(&resigned).is_ok()
    {
        let _ = t.cached_timestamp_and_snapshot_invalid();
        let _ = t.load_cached_timestamp(&f.timestamp);
        let _ = t.update_timestamp(&f.timestamp);
    }
}

/// `timestamp.json`: fresh, after a cached timestamp (rollback rules), as the cached one, and
/// then the fixture snapshot checked against the length and hashes it lists.
pub fn tuf_timestamp(data: &[u8]) {
    let f = Fixture::get();
    if let Some(mut t) = f.at_root() {
        let _ = t.update_timestamp(data);
    }
    let Some(mut md) = parse_round_trip::<airlock_core::tuf::Timestamp>(data) else {
        return;
    };
    let Some(resigned) = resign(&mut md, &f.timestamp_key) else {
        return;
    };
    if let Some(mut t) = f.at_root()
        && t.update_timestamp(&resigned).is_ok()
    {
        let _ = t.update_snapshot(&f.snapshot);
    }
    if let Some(mut t) = f.at_root()
        && t.load_cached_timestamp(&f.timestamp).is_ok()
        && t.update_timestamp(&resigned).is_ok()
    {
        let _ = t.update_snapshot(&f.snapshot);
    }
    if let Some(mut t) = f.at_root()
        && t.load_cached_timestamp(&resigned).is_ok()
    {
        let _ = t.update_timestamp(&f.timestamp);
    }
}

/// `snapshot.json`: fresh, after a cached snapshot (rollback rules), as the cached one, and
/// then the fixture targets checked against what it lists.
pub fn tuf_snapshot(data: &[u8]) {
    let f = Fixture::get();
    if let Some(mut t) = f.at_timestamp() {
        let _ = t.update_snapshot(data);
    }
    let Some(mut md) = parse_round_trip::<airlock_core::tuf::Snapshot>(data) else {
        return;
    };
    let Some(resigned) = resign(&mut md, &f.snapshot_key) else {
        return;
    };
    if let Some(mut t) = f.at_timestamp()
        && t.update_snapshot(&resigned).is_ok()
        && t.update_targets(&f.targets).is_ok()
    {
        let _ = t.update_delegated_targets(&f.role_a, ROLE_A, "targets");
    }
    if let Some(mut t) = f.at_timestamp()
        && t.load_cached_snapshot(&f.snapshot).is_ok()
        && t.update_snapshot(&resigned).is_ok()
    {
        let _ = t.update_targets(&f.targets);
    }
    if let Some(mut t) = f.at_timestamp()
        && t.load_cached_snapshot(&resigned).is_ok()
    {
        let _ = t.update_snapshot(&f.snapshot);
    }
}

/// Target paths searched after a fuzzed targets role is trusted: top level, in role-a's and
/// role-c's delegated paths, and elsewhere (hash-bin and prefix delegations see them all).
const SEARCH_PATHS: &[&str] = &["file.txt", "a/file.txt", "a/c/file.txt", "b/other"];

/// Walk the delegation graph for each of [`SEARCH_PATHS`]; `serve` answers each role asked for.
fn search_all(t: &mut TrustedSet, serve: &dyn Fn(&str) -> Vec<u8>) {
    for path in SEARCH_PATHS {
        let mut search = TargetSearch::new(path);
        // The search bounds itself (MAX_DELEGATIONS); this only guards the harness.
        for _ in 0..64 {
            match search.step(t) {
                Ok(SearchStep::NeedRole { role, parent }) => {
                    if t.update_delegated_targets(&serve(&role), &role, &parent)
                        .is_err()
                    {
                        break;
                    }
                }
                _ => break,
            }
        }
    }
}

/// `targets.json` and delegated targets: as top-level targets (then a delegation search that
/// fetches the fixture roles), and as role-a delegated by the fixture targets (then a search
/// where every role it delegates to is served the same document).
pub fn tuf_targets(data: &[u8]) {
    let f = Fixture::get();
    if let Some(mut t) = f.at_snapshot() {
        let _ = t.update_targets(data);
    }
    if let Some(mut t) = f.at_targets() {
        let _ = t.update_delegated_targets(data, ROLE_A, "targets");
    }
    let Some(md) = parse_round_trip::<airlock_core::tuf::Targets>(data) else {
        return;
    };
    let fixture_role = |role: &str| match role {
        ROLE_A => f.role_a.clone(),
        ROLE_C => f.role_c.clone(),
        _ => Vec::new(),
    };
    if let Some(top) = resign(&mut md.clone(), &f.targets_key)
        && let Some(mut t) = f.at_snapshot()
        && t.update_targets(&top).is_ok()
    {
        search_all(&mut t, &fixture_role);
    }
    if let Some(delegated) = resign(&mut md.clone(), &f.delegated_key)
        && let Some(mut t) = f.at_targets()
        && t.update_delegated_targets(&delegated, ROLE_A, "targets")
            .is_ok()
    {
        search_all(&mut t, &|_| delegated.clone());
    }
}
