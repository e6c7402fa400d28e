//! Delegated targets and the delegation search, attack by attack (no network).
//!
//! Each test names the TUF client CVE class or the spec's attack it plays.

mod common;

use common::repo::*;
// ---- delegations ---------------------------------------------------------------------------

#[test]
fn cve_rollback_of_a_delegated_role() {
    let mut repo = Repo::new();
    repo.snapshot_hashes = false;
    repo.delegate("targets", "a", &["*"], false);
    repo.add_target("a", "file");
    let p1 = repo.publish();
    repo.bump();
    let p2 = repo.publish();
    // The mirror serves the new top-level metadata with the old a.json.
    let mut mixed = p2.clone();
    mixed.roles = p1.roles.clone();
    let mut t = refreshed(&mixed);
    let (res, _) = search(&mut t, &mixed, "file");
    assert!(matches!(
        res,
        Err(TrustError::VersionMismatch { role, expected: 2, found: 1, .. }) if role == "a"
    ));
    let mut t = refreshed(&p2);
    assert!(matches!(
        search(&mut t, &p2, "file").0,
        Ok(SearchStep::Found { .. })
    ));
}

#[test]
fn cve_terminating_delegation_stops_the_search() {
    let mut repo = Repo::new();
    repo.delegate("targets", "first", &["*"], true);
    repo.delegate("targets", "second", &["*"], false);
    repo.add_target("second", "evil");
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "evil");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert_eq!(fetched, pairs(&[("first", "targets")]));

    // A terminating delegation below also ends the search above it.
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["*"], false);
    repo.delegate("a", "a1", &["*"], true);
    repo.delegate("targets", "b", &["*"], false);
    repo.add_target("b", "evil");
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "evil");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert_eq!(fetched, pairs(&[("a", "targets"), ("a1", "a")]));

    // Control: not terminating, the search goes on to the second role.
    let mut repo = Repo::new();
    repo.delegate("targets", "first", &["*"], false);
    repo.delegate("targets", "second", &["*"], false);
    repo.add_target("second", "file");
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "file");
    assert!(matches!(res.unwrap(), SearchStep::Found { role, .. } if role == "second"));
    assert_eq!(
        fetched,
        pairs(&[("first", "targets"), ("second", "targets")])
    );
}

#[test]
fn search_is_preorder_depth_first_in_delegation_order_and_respects_paths() {
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["pkg/*"], false);
    repo.delegate("a", "a1", &["pkg/*"], false);
    repo.delegate("a", "a2", &["other/*"], false);
    repo.delegate("targets", "b", &["pkg/*"], false);
    repo.delegate("targets", "c", &["pkg/x"], false);
    repo.add_target("a1", "pkg/y");
    repo.add_target("c", "pkg/x");
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "pkg/x");
    assert!(matches!(res.unwrap(), SearchStep::Found { role, .. } if role == "c"));
    assert_eq!(
        fetched,
        pairs(&[
            ("a", "targets"),
            ("a1", "a"),
            ("b", "targets"),
            ("c", "targets")
        ])
    );
    // A role listing a target outside its paths is never asked for it.
    let (res, fetched) = search(&mut t, &p, "other/z");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert!(fetched.is_empty());
}

#[test]
fn cve_delegation_cycles_end() {
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["*"], false);
    repo.delegate("a", "b", &["*"], false);
    // b delegates back to a (with a's key) and to itself.
    let a_key = repo.roles["a"].signers[0].public_key().clone();
    let back = DelegatedRole::with_paths("a", vec![a_key.key_id()], 1, vec!["*".into()]);
    repo.delegate_role("b", back, a_key);
    let b_key = repo.roles["b"].signers[0].public_key().clone();
    let own = DelegatedRole::with_paths("b", vec![b_key.key_id()], 1, vec!["*".into()]);
    repo.delegate_role("b", own, b_key);
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "nothing");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert_eq!(
        fetched,
        pairs(&[("a", "targets"), ("b", "a"), ("a", "b"), ("b", "b")])
    );
}

#[test]
fn at_most_32_delegated_roles_are_visited() {
    let mut repo = Repo::new();
    let mut parent = "targets".to_string();
    for i in 0..40 {
        let name = format!("r{i}");
        repo.delegate(&parent, &name, &["*"], false);
        parent = name;
    }
    repo.add_target("r39", "deep");
    repo.add_target("r31", "reachable");
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "deep");
    assert_eq!(res.unwrap(), SearchStep::LimitReached);
    assert_eq!(fetched.len(), 32);
    let (res, _) = search(&mut t, &p, "reachable");
    assert!(matches!(res.unwrap(), SearchStep::Found { role, .. } if role == "r31"));
}

#[test]
fn cve_delegated_metadata_is_verified_against_its_delegator() {
    for case in [
        "the top-level targets key",
        "a sibling role's key",
        "an unknown key",
    ] {
        let mut repo = Repo::new();
        repo.delegate("targets", "a", &["*"], false);
        repo.delegate("targets", "b", &["*"], false);
        repo.add_target("a", "file");
        let wrong = match case {
            "the top-level targets key" => repo.targets_signers[0].clone(),
            "a sibling role's key" => repo.roles["b"].signers[0].clone(),
            _ => key(),
        };
        repo.roles.get_mut("a").unwrap().signers = vec![wrong];
        let p = repo.publish();
        let mut t = refreshed(&p);
        let (res, _) = search(&mut t, &p, "file");
        assert!(
            matches!(&res, Err(TrustError::Signatures { role, delegator, .. })
                if role == "a" && delegator == "targets"),
            "a.json signed by {case}: {:?}",
            res.map(|_| ())
        );
        assert!(t.delegated("a", "targets").is_none());
    }
}

#[test]
fn a_role_reached_through_two_parents_is_verified_for_each() {
    let mut repo = Repo::new();
    repo.snapshot_hashes = false;
    repo.delegate("targets", "p1", &["*"], false);
    repo.delegate("targets", "p2", &["*"], false);
    repo.delegate("p1", "c", &["*"], false);
    let k2 = key();
    let via_p2 = DelegatedRole::with_paths("c", vec![id(&k2)], 1, vec!["*".into()]);
    repo.delegate_role("p2", via_p2, k2.public_key().clone());
    // c is signed only with the key p1 gave it: trusted through p1, not through p2.
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "file");
    assert!(
        matches!(&res, Err(TrustError::Signatures { role, delegator, .. }) if role == "c" && delegator == "p2"),
        "{:?}",
        res.map(|_| ())
    );
    assert_eq!(
        fetched,
        pairs(&[
            ("p1", "targets"),
            ("c", "p1"),
            ("p2", "targets"),
            ("c", "p2")
        ])
    );
    assert!(t.delegated("c", "p1").is_some());
    assert!(t.delegated("c", "p2").is_none());

    // Signed with both keys, it is trusted through both, separately.
    repo.roles.get_mut("c").unwrap().signers.push(k2.clone());
    repo.bump();
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, "file");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert_eq!(fetched.len(), 4);
    assert!(t.delegated("c", "p2").is_some());

    // A different c of the same version, served for the second path, is refused.
    let mut t = refreshed(&p);
    t.update_delegated_targets(&p.roles["p1"], "p1", "targets")
        .unwrap();
    t.update_delegated_targets(&p.roles["p2"], "p2", "targets")
        .unwrap();
    t.update_delegated_targets(&p.roles["c"], "c", "p1")
        .unwrap();
    let mut other_c = Metadata::<Targets>::from_bytes(&p.roles["c"]).unwrap();
    other_c
        .signed
        .targets
        .insert("file".into(), TargetFile::from_bytes(b"other"));
    let c_signers: Vec<&PrivateKey> = repo.roles["c"].signers.iter().map(|k| &**k).collect();
    let other_bytes = signed(&mut other_c, &c_signers);
    assert!(matches!(
        t.update_delegated_targets(&other_bytes, "c", "p2"),
        Err(TrustError::ConflictingCopies { .. })
    ));
}

fn bin_repo(bits: u32) -> (Repo, SuccinctRoles) {
    let mut repo = Repo::new();
    let k = key();
    let bins = SuccinctRoles::new(vec![id(&k)], 1, bits, "bin");
    repo.targets.signed.delegations = Some(Delegations::with_succinct_roles(
        BTreeMap::from([(id(&k), k.public_key().clone())]),
        bins.clone(),
    ));
    for name in bins.bin_names() {
        repo.roles.insert(
            name,
            DelegatedDoc {
                md: Metadata::new(Targets::new(1, later())),
                signers: vec![k.clone()],
            },
        );
    }
    (repo, bins)
}

#[test]
fn succinct_hash_bins_fetch_only_the_bin_of_the_target() {
    let (mut repo, bins) = bin_repo(4);
    let path = "releases/app-1.0.tgz";
    let bin = bins.bin_for_target(path);
    repo.add_target(&bin, path);
    // Another bin also claims the path; it is not the path's bin, so it is never consulted.
    let other = bins.bin_names().find(|n| *n != bin).unwrap();
    repo.targets_of(&other)
        .signed
        .targets
        .insert(path.into(), TargetFile::from_bytes(b"evil"));
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, path);
    let SearchStep::Found { role, target } = res.unwrap() else {
        panic!()
    };
    assert_eq!(role, bin);
    assert!(target.verify_bytes(path.as_bytes()).is_ok());
    assert_eq!(fetched, vec![(bin, "targets".to_string())]);
    // A missing path costs one bin and ends there (bins are terminating).
    let (res, fetched) = search(&mut t, &p, "missing");
    assert_eq!(res.unwrap(), SearchStep::NotFound);
    assert_eq!(fetched.len(), 1);
    // A name that is not one of the bins is not delegated.
    assert!(matches!(
        t.update_delegated_targets(&p.roles[&other], "bin-zz", "targets"),
        Err(TrustError::NotDelegated { .. })
    ));
    // The wrong bin's bytes under the right bin's name fail the snapshot's hashes.
    let mut t = refreshed(&p);
    let right = bins.bin_for_target(path);
    assert!(matches!(
        t.update_delegated_targets(&p.roles[&other], &right, "targets"),
        Err(TrustError::Content { .. })
    ));
}

#[test]
fn path_hash_prefix_delegations_route_by_hash() {
    let mut repo = Repo::new();
    let lo: Vec<String> = "01234567".chars().map(String::from).collect();
    let hi: Vec<String> = "89abcdef".chars().map(String::from).collect();
    for (name, prefixes) in [("lo", lo), ("hi", hi)] {
        let k = key();
        let role = DelegatedRole::with_hash_prefixes(name, vec![id(&k)], 1, prefixes);
        repo.delegate_role("targets", role, k.public_key().clone());
        repo.roles.insert(
            name.into(),
            DelegatedDoc {
                md: Metadata::new(Targets::new(1, later())),
                signers: vec![k],
            },
        );
    }
    let path = "x/y.bin";
    let owner = if airlock_core::tuf::path_hash(path).as_str() < "8" {
        "lo"
    } else {
        "hi"
    };
    let not_owner = if owner == "lo" { "hi" } else { "lo" };
    repo.add_target(owner, path);
    repo.targets_of(not_owner)
        .signed
        .targets
        .insert(path.into(), TargetFile::from_bytes(b"evil"));
    let p = repo.publish();
    let mut t = refreshed(&p);
    let (res, fetched) = search(&mut t, &p, path);
    assert!(matches!(res.unwrap(), SearchStep::Found { role, .. } if role == owner));
    assert_eq!(fetched, pairs(&[(owner, "targets")]));
}

#[test]
fn calls_out_of_order_and_unknown_roles_are_refused() {
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["*"], false);
    let p = repo.publish();
    let mut t = TrustedSet::new(&p.root, now()).unwrap();
    assert!(matches!(
        t.update_snapshot(&p.snapshot),
        Err(TrustError::OutOfOrder { .. })
    ));
    assert!(matches!(
        t.update_targets(&p.targets),
        Err(TrustError::OutOfOrder { .. })
    ));
    // A timestamp where a root belongs names the mix-up.
    assert!(matches!(
        t.update_root(&p.timestamp),
        Err(TrustError::Metadata(
            airlock_core::tuf::MetadataError::WrongType {
                expected: "root",
                ..
            }
        ))
    ));
    t.update_timestamp(&p.timestamp).unwrap();
    assert!(matches!(
        t.update_root(&p.root),
        Err(TrustError::OutOfOrder { .. })
    ));
    assert!(matches!(
        t.update_targets(&p.targets),
        Err(TrustError::OutOfOrder { .. })
    ));
    t.update_snapshot(&p.snapshot).unwrap();
    assert!(matches!(
        t.update_timestamp(&p.timestamp),
        Err(TrustError::OutOfOrder { .. })
    ));
    assert!(matches!(
        t.update_delegated_targets(&p.roles["a"], "a", "targets"),
        Err(TrustError::DelegatorNotLoaded { .. })
    ));
    t.update_targets(&p.targets).unwrap();
    assert!(matches!(
        t.update_snapshot(&p.snapshot),
        Err(TrustError::OutOfOrder { .. })
    ));
    assert!(matches!(
        t.update_delegated_targets(&p.roles["a"], "nobody", "targets"),
        Err(TrustError::NotDelegated { .. })
    ));
    assert!(matches!(
        t.update_delegated_targets(&p.roles["a"], "a", "root"),
        Err(TrustError::NotDelegated { .. })
    ));
    assert!(matches!(
        t.update_delegated_targets(&p.roles["a"], "b", "a"),
        Err(TrustError::DelegatorNotLoaded { .. })
    ));
    // The search refuses to go on if its caller skipped the role it asked for.
    let mut s = TargetSearch::new("file");
    assert_eq!(
        s.step(&t).unwrap(),
        SearchStep::NeedRole {
            role: "a".into(),
            parent: "targets".into()
        }
    );
    assert_eq!(
        s.step(&t),
        Err(SearchError::RoleNotLoaded {
            role: "a".into(),
            parent: "targets".into()
        })
    );
}

#[test]
fn a_role_missing_from_snapshot_is_refused() {
    let mut repo = Repo::new();
    repo.delegate("targets", "a", &["*"], false);
    let mut p = repo.publish();
    let mut snap = Metadata::<Snapshot>::from_bytes(&p.snapshot).unwrap();
    snap.signed.meta.remove("a.json");
    p.snapshot = signed(&mut snap, &[&repo.snapshot_signers[0]]);
    let mut ts = Metadata::<Timestamp>::from_bytes(&p.timestamp).unwrap();
    ts.signed
        .meta
        .insert("snapshot.json".into(), MetaFile::with_bytes(1, &p.snapshot));
    p.timestamp = signed(&mut ts, &[&repo.timestamp_signers[0]]);
    let mut t = refreshed(&p);
    let (res, _) = search(&mut t, &p, "x");
    assert!(matches!(res, Err(TrustError::NotInSnapshot { role }) if role == "a"));
}
