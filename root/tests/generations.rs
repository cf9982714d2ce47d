//! Generation lifecycle: ingest, materialize, activate, roll back, retain, recover.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ouk_delta::DeltaError;
use ouk_root::{ActivateOutcome, FileSource, Labels, LockWait, Root};
use ouk_store::StoreOptions;

fn open(root: &Path) -> Root {
    Root::open(root, LockWait::Fail, StoreOptions::default()).unwrap()
}

fn write_tree(dir: &Path, files: &[(&str, &[u8])]) {
    for (p, data) in files {
        let path = dir.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }
}

fn ingest_and_activate(root: &Root, tree: &Path) -> (ouk_delta::GenerationId, ActivateOutcome) {
    let (m, _) = root.ingest_tree(tree, &mut |_| {}).unwrap();
    let id = root.record_generation(&m, Labels::new()).unwrap();
    let out = root.activate(&id, "ingest", false, Labels::new()).unwrap();
    (id, out)
}

#[test]
fn activate_materializes_links_unchanged_files_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let root = open(&tmp.path().join("root"));
    let day0 = tmp.path().join("day0");
    let big = vec![7u8; 300_000];
    write_tree(
        &day0,
        &[
            ("feeds/a.json", b"{\"a\":1}\n"),
            ("images/layer", &big),
            ("x", b""),
        ],
    );
    let (g0, out) = ingest_and_activate(&root, &day0);
    assert_eq!(out, ActivateOutcome::Activated { previous: None });
    assert_eq!(
        fs::read(tmp.path().join("root/current/images/layer")).unwrap(),
        big
    );
    assert_eq!(fs::read(tmp.path().join("root/current/x")).unwrap(), b"");
    // Same tree again: same id, nothing changes.
    let (again, out) = ingest_and_activate(&root, &day0);
    assert_eq!(again, g0);
    assert_eq!(out, ActivateOutcome::AlreadyCurrent);

    let day1 = tmp.path().join("day1");
    write_tree(
        &day1,
        &[
            ("feeds/a.json", b"{\"a\":2}\n"),
            ("images/layer", &big),
            ("x", b""),
        ],
    );
    let (g1, out) = ingest_and_activate(&root, &day1);
    assert_ne!(g1, g0);
    assert_eq!(out, ActivateOutcome::Activated { previous: Some(g0) });
    let ino = |g: &ouk_delta::GenerationId, p: &str| {
        fs::metadata(root.generation_dir(g).join(p)).unwrap().ino()
    };
    assert_eq!(
        ino(&g0, "images/layer"),
        ino(&g1, "images/layer"),
        "unchanged file is a hard link"
    );
    assert_ne!(ino(&g0, "feeds/a.json"), ino(&g1, "feeds/a.json"));
    assert_eq!(
        fs::read(tmp.path().join("root/current/feeds/a.json")).unwrap(),
        b"{\"a\":2}\n"
    );
    // Published trees are read-only.
    let mode = fs::metadata(root.generation_dir(&g1).join("feeds/a.json"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o222, 0);
}

#[test]
fn rollback_flips_back_and_gc_keeps_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = open(&tmp.path().join("root"));
    let mut ids = Vec::new();
    for day in 0..4u8 {
        let tree = tmp.path().join(format!("day{day}"));
        let unique: Vec<u8> = (0..200_000u32)
            .map(|i| (i as u8) ^ day.wrapping_mul(31))
            .collect();
        write_tree(&tree, &[("feed", &[day; 10]), ("blob", &unique)]);
        ids.push(ingest_and_activate(&root, &tree).0);
    }
    let (back, _) = root.rollback(None).unwrap();
    assert_eq!(back, ids[2]);
    assert_eq!(root.current().unwrap(), Some(ids[2]));
    assert_eq!(
        fs::read(tmp.path().join("root/current/feed")).unwrap(),
        vec![2u8; 10]
    );
    let (fwd, _) = root.rollback(Some(&ids[3].to_hex()[..10])).unwrap();
    assert_eq!(fwd, ids[3]);
    let before = root.store().stats().unwrap();
    let gc = root.gc_generations(2).unwrap();
    assert_eq!(gc.removed.len(), 2);
    assert!(gc.kept.contains(&ids[3]));
    assert_eq!(root.generations().unwrap().len(), 2);
    assert!(!root.generation_dir(&gc.removed[0]).exists());
    let after = root.store().stats().unwrap();
    assert!(after.files < before.files);
    assert!(root.store().fsck(&|_| {}).unwrap().is_clean());
    assert!(matches!(
        root.resolve("zzzz"),
        Err(DeltaError::UnknownGeneration(_))
    ));
}

#[test]
fn a_second_opener_is_refused_and_partial_work_is_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("root");
    {
        let root = open(&dir);
        assert!(matches!(
            Root::open(&dir, LockWait::Fail, StoreOptions::default()),
            Err(DeltaError::Locked { .. })
        ));
        // Leftovers of a crash mid-materialize and mid-flip.
        fs::create_dir_all(root.generations_dir().join(".tmp-abc-1/sub")).unwrap();
        std::os::unix::fs::symlink("generations/x", dir.join("current.tmp-1")).unwrap();
        fs::write(root.staging_dir().join("part"), b"x").unwrap();
    }
    let root = open(&dir);
    assert_eq!(root.recovery().removed_partial.len(), 2);
    assert_eq!(root.recovery().staging_cleaned, 1);
    assert_eq!(fs::read_dir(root.generations_dir()).unwrap().count(), 0);
}

#[test]
fn materialize_from_staging_moves_verified_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = open(&tmp.path().join("root"));
    let tree = tmp.path().join("t");
    write_tree(&tree, &[("a/b", b"hello"), ("c", b"world")]);
    let (m, _) = root.ingest_tree(&tree, &mut |_| {}).unwrap();
    let id = root.record_generation(&m, Labels::new()).unwrap();
    let out = root.materialize(&id, FileSource::Staged(&tree)).unwrap();
    assert_eq!(out.moved, 2);
    assert!(!tree.join("c").exists());
    assert_eq!(
        fs::read(root.generation_dir(&id).join("a/b")).unwrap(),
        b"hello"
    );
    assert!(
        root.materialize(&id, FileSource::Store)
            .unwrap()
            .already_present
    );
}

#[test]
fn symlinks_in_an_ingested_tree_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = open(&tmp.path().join("root"));
    let tree = tmp.path().join("t");
    write_tree(&tree, &[("a", b"x")]);
    std::os::unix::fs::symlink("/etc/passwd", tree.join("link")).unwrap();
    assert!(matches!(
        root.ingest_tree(&tree, &mut |_| {}),
        Err(DeltaError::Unsupported { .. })
    ));
}

/// The published state (issue 21): a `RootView` opened while the root is locked lists
/// what the index lists, in the same order, and sees each activation once it committed;
/// republishing what did not change writes nothing; gc republishes; a missing root is
/// `NoRoot` (and is not created); a root whose store predates `state.json` is
/// `Unpublished` until a writer opens it.
#[test]
fn a_root_view_reads_the_published_state_without_the_lock() {
    use ouk_root::RootView;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("root");
    let root = open(&dir);
    let view_ids = |root: &Root| {
        let view = RootView::open(&dir).unwrap();
        let listed: Vec<_> = view
            .generations()
            .unwrap()
            .iter()
            .map(|g| (g.id, g.current, g.last_activated))
            .collect();
        let indexed: Vec<_> = root
            .generations()
            .unwrap()
            .iter()
            .map(|g| (g.id, g.current, g.last_activated))
            .collect();
        assert_eq!(listed, indexed, "the view lists what the index lists");
        (view.current().unwrap(), listed)
    };
    assert_eq!(view_ids(&root), (None, vec![]));
    let (day0, day1) = (tmp.path().join("day0"), tmp.path().join("day1"));
    write_tree(&day0, &[("a", b"zero")]);
    write_tree(&day1, &[("a", b"one")]);
    let (g0, _) = ingest_and_activate(&root, &day0);
    let (g1, _) = ingest_and_activate(&root, &day1);
    let (cur, listed) = view_ids(&root);
    assert_eq!(cur, Some(g1));
    assert_eq!(listed.iter().map(|l| l.0).collect::<Vec<_>>(), vec![g1, g0]);
    root.rollback(None).unwrap();
    let (cur, listed) = view_ids(&root);
    assert_eq!(cur, Some(g0));
    assert_eq!(listed[0].0, g0, "most recently activated first");

    // Republishing an unchanged state writes nothing.
    let state = dir.join(ouk_root::STATE_FILE);
    let before = fs::metadata(&state).unwrap();
    root.publish_state().unwrap();
    drop(root);
    let root = open(&dir);
    let after = fs::metadata(&state).unwrap();
    assert_eq!(
        (before.ino(), before.mtime(), before.mtime_nsec()),
        (after.ino(), after.mtime(), after.mtime_nsec())
    );
    // gc drops a record: the view follows.
    root.gc_generations(1).unwrap();
    let (_, listed) = view_ids(&root);
    assert_eq!(listed.iter().map(|l| l.0).collect::<Vec<_>>(), vec![g0]);
    drop(root);

    // A missing root is NoRoot and stays missing.
    let missing = tmp.path().join("missing");
    assert!(matches!(
        RootView::open(&missing),
        Err(DeltaError::NoRoot { .. })
    ));
    assert!(!missing.exists());
    // A store without a published state (an older ouk's root): Unpublished until a
    // writer opens it.
    fs::remove_file(&state).unwrap();
    assert!(matches!(
        RootView::open(&dir),
        Err(DeltaError::Unpublished { .. })
    ));
    drop(open(&dir));
    assert_eq!(
        RootView::open(&dir).unwrap().generations().unwrap().len(),
        1
    );
}
