//! The rules every [`Store`] backend must keep, as one suite of checks run
//! against each of them (as Anubis's `lib/store/storetest` does).
//!
//! A backend's tests call [`conformance_tests!`] with an async factory that
//! returns a fresh, empty store and a guard that cleans it up when dropped:
//!
//! ```ignore
//! async fn fresh_store() -> (tempfile::TempDir, Arc<dyn Store>) { … }
//! crate::store::conformance::conformance_tests!(fresh_store);
//! ```
//!
//! which makes one `#[tokio::test]` per check, on a multi-threaded runtime
//! so the concurrent checks really race.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{AddIp, RequestCount, RevokeScope, RevokedById, Store, TokenRecord};
use crate::token::{HashedToken, PlainToken};

/// One `#[tokio::test]` per check of this module, each on a store from
/// `$make` (an async fn returning `(guard, Arc<dyn Store>)`).
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::store::conformance::conformance_tests!(@each $make;
            a_challenge_is_spent_once,
            concurrent_spends_of_one_challenge_have_one_winner,
            spent_challenges_are_purged_only_after_their_expiry,
            an_issued_token_is_found_by_hash_and_by_id,
            a_refresh_extends_the_token_and_restarts_its_budget,
            a_revoked_or_unknown_token_cannot_be_refreshed,
            the_address_limit_is_exact,
            a_token_found_by_hash_lists_its_addresses_oldest_first,
            concurrent_new_addresses_never_exceed_the_limit,
            the_per_address_token_cap_expires_the_oldest,
            concurrent_issues_from_one_address_never_exceed_the_cap,
            a_refresh_counts_against_the_per_address_token_cap,
            a_token_is_revoked_by_its_id,
            tokens_are_revoked_by_network_or_all,
            expire_all_expires_only_active_tokens,
            tokens_are_purged_after_their_refresh_window,
            tokens_are_listed_newest_first_and_counted,
            request_counts_only_grow_and_only_under_their_refresh,
            a_secret_is_created_once,
            concurrent_first_secrets_agree,
            settings_round_trip,
        );
    };
    (@each $make:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let Some((_guard, store)) = $crate::store::conformance::Fresh::fresh($make().await)
                else {
                    return; // the backend is not here, and its factory said so loudly
                };
                $crate::store::conformance::$check(store).await;
            }
        )*
    };
}
pub(crate) use conformance_tests;

/// What a factory gives: a store and its guard, or, for a backend that
/// needs a server (PostgreSQL), `None` when none is running here; such a
/// factory reports the skip itself, and fails instead under CI.
pub(crate) trait Fresh {
    type Guard;
    fn fresh(self) -> Option<(Self::Guard, Arc<dyn Store>)>;
}

impl<G> Fresh for (G, Arc<dyn Store>) {
    type Guard = G;
    fn fresh(self) -> Option<(G, Arc<dyn Store>)> {
        Some(self)
    }
}

impl<G> Fresh for Option<(G, Arc<dyn Store>)> {
    type Guard = G;
    fn fresh(self) -> Self {
        self
    }
}

const NOW: i64 = 1_000_000;
const DAY: i64 = 86_400;

fn new_hash() -> HashedToken {
    PlainToken::generate().hashed()
}

/// Issues a token from `ip` valid for a day after `now`, with no
/// per-address cap, and returns it as stored.
async fn issue(store: &dyn Store, ip: &str, now: i64) -> TokenRecord {
    let hash = new_hash();
    store
        .issue_token(hash, now, now + DAY, ip.to_owned(), 1_000, 0)
        .await
        .unwrap();
    store.find_token(hash).await.unwrap().unwrap()
}

async fn find(store: &dyn Store, id: i64) -> TokenRecord {
    store.find_token_by_id(id).await.unwrap().unwrap()
}

pub(crate) async fn a_challenge_is_spent_once(store: Arc<dyn Store>) {
    let (a, b) = ([1; 16], [2; 16]);
    assert!(store.spend_challenge(a, NOW, NOW + 60).await.unwrap());
    assert!(!store.spend_challenge(a, NOW, NOW + 60).await.unwrap());
    assert!(
        !store.spend_challenge(a, NOW + 1, NOW + 120).await.unwrap(),
        "whatever the times"
    );
    assert!(store.spend_challenge(b, NOW, NOW + 60).await.unwrap());
}

pub(crate) async fn concurrent_spends_of_one_challenge_have_one_winner(store: Arc<dyn Store>) {
    let mut spends = JoinSet::new();
    for _ in 0..32 {
        let store = store.clone();
        spends.spawn(async move { store.spend_challenge([9; 16], NOW, NOW + 60).await });
    }
    let won = spends
        .join_all()
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
}

pub(crate) async fn spent_challenges_are_purged_only_after_their_expiry(store: Arc<dyn Store>) {
    assert!(store.spend_challenge([1; 16], NOW, NOW + 60).await.unwrap());
    assert!(
        store
            .spend_challenge([2; 16], NOW, NOW + 600)
            .await
            .unwrap()
    );
    assert_eq!(store.purge_spent_challenges(NOW + 60).await.unwrap(), 0);
    assert_eq!(store.purge_spent_challenges(NOW + 61).await.unwrap(), 1);
    assert!(
        !store
            .spend_challenge([2; 16], NOW, NOW + 600)
            .await
            .unwrap(),
        "an unexpired record stays"
    );
}

pub(crate) async fn an_issued_token_is_found_by_hash_and_by_id(store: Arc<dyn Store>) {
    let hash = new_hash();
    let issued = store
        .issue_token(hash, NOW, NOW + DAY, "192.0.2.1".into(), 1_000, 0)
        .await
        .unwrap();
    assert!(issued.evicted.is_empty());
    let rec = store.find_token(hash).await.unwrap().unwrap();
    assert_eq!(
        rec,
        TokenRecord {
            id: rec.id,
            hash,
            created_at: NOW,
            expires_at: NOW + DAY,
            revoked_at: None,
            refresh_count: 0,
            requests_used: 0,
            ips: vec!["192.0.2.1".into()],
        }
    );
    assert_eq!(find(&*store, rec.id).await, rec);
    assert_eq!(store.find_token(new_hash()).await.unwrap(), None);
    assert_eq!(store.find_token_by_id(rec.id + 1).await.unwrap(), None);
}

pub(crate) async fn a_refresh_extends_the_token_and_restarts_its_budget(store: Arc<dyn Store>) {
    let rec = issue(&*store, "192.0.2.1", NOW).await;
    let used = RequestCount {
        token_id: rec.id,
        refresh_count: 0,
        used: 40,
    };
    store.write_request_counts(vec![used]).await.unwrap();
    let later = NOW + DAY + 10;
    let refreshed = store
        .refresh_token(rec.id, "192.0.2.2".into(), later, later + DAY, 2, 0)
        .await
        .unwrap()
        .expect("an expired, unrevoked token refreshes");
    assert!(refreshed.evicted.is_empty());
    let expected = TokenRecord {
        expires_at: later + DAY,
        refresh_count: 1,
        requests_used: 0,
        ips: vec!["192.0.2.1".into(), "192.0.2.2".into()],
        ..rec.clone()
    };
    assert_eq!(refreshed.record, expected);
    assert_eq!(find(&*store, rec.id).await, expected);

    // No room for a third address: the refresh still happens.
    let again = store
        .refresh_token(rec.id, "192.0.2.3".into(), later, later + 2 * DAY, 2, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.record.refresh_count, 2);
    assert_eq!(again.record.ips, expected.ips);
}

pub(crate) async fn a_revoked_or_unknown_token_cannot_be_refreshed(store: Arc<dyn Store>) {
    let rec = issue(&*store, "192.0.2.1", NOW).await;
    store.revoke_by_id(rec.id, NOW + 1).await.unwrap();
    for id in [rec.id, rec.id + 1] {
        let refreshed = store
            .refresh_token(id, "192.0.2.1".into(), NOW + 2, NOW + DAY, 2, 0)
            .await
            .unwrap();
        assert!(refreshed.is_none(), "token {id}");
    }
    assert_eq!(find(&*store, rec.id).await.refresh_count, 0);
}

pub(crate) async fn the_address_limit_is_exact(store: Arc<dyn Store>) {
    let rec = issue(&*store, "192.0.2.1", NOW).await;
    let add = |ip: &'static str| store.add_token_address(rec.id, ip.into(), NOW, 2);
    assert_eq!(
        add("192.0.2.2").await.unwrap(),
        AddIp::Added(vec!["192.0.2.1".into(), "192.0.2.2".into()])
    );
    assert_eq!(
        add("192.0.2.1").await.unwrap(),
        AddIp::Known(vec!["192.0.2.1".into(), "192.0.2.2".into()])
    );
    assert_eq!(add("192.0.2.3").await.unwrap(), AddIp::LimitReached);
    assert_eq!(
        find(&*store, rec.id).await.ips,
        ["192.0.2.1", "192.0.2.2"],
        "oldest first, and nothing past the limit"
    );
}

/// The lookup `/verify-token` makes reads the addresses with the token
/// (one statement on SQLite): in first-seen order, ties by address, and
/// the same list as the lookup by id.
pub(crate) async fn a_token_found_by_hash_lists_its_addresses_oldest_first(store: Arc<dyn Store>) {
    let rec = issue(&*store, "192.0.2.9", NOW).await;
    for (ip, seen) in [
        ("192.0.2.7", NOW + 20),
        ("192.0.2.8", NOW + 10),
        ("192.0.2.5", NOW + 10),
    ] {
        store
            .add_token_address(rec.id, ip.into(), seen, 10)
            .await
            .unwrap();
    }
    let found = store.find_token(rec.hash).await.unwrap().unwrap();
    assert_eq!(
        found.ips,
        ["192.0.2.9", "192.0.2.5", "192.0.2.8", "192.0.2.7"]
    );
    assert_eq!(found, find(&*store, rec.id).await);
}

pub(crate) async fn concurrent_new_addresses_never_exceed_the_limit(store: Arc<dyn Store>) {
    let id = issue(&*store, "192.0.2.1", NOW).await.id;
    let mut adds = JoinSet::new();
    for i in 0..20 {
        let store = store.clone();
        adds.spawn(async move {
            store
                .add_token_address(id, format!("198.51.100.{i}"), NOW, 3)
                .await
        });
    }
    let added = adds
        .join_all()
        .await
        .into_iter()
        .filter(|r| matches!(r.as_ref().unwrap(), AddIp::Added(_)))
        .count();
    assert_eq!(added, 2, "the issuing address holds the first of 3 places");
    assert_eq!(find(&*store, id).await.ips.len(), 3);
}

/// Fifty tokens issued at once to one address with a cap of 3 leave
/// exactly 3 active: each issue counts the others under one lock (SQLite's
/// write lock; PostgreSQL's advisory lock on the address, since the rows
/// being counted may not be committed yet, and the pool's connections race
/// as separate instances would).
pub(crate) async fn concurrent_issues_from_one_address_never_exceed_the_cap(store: Arc<dyn Store>) {
    let mut issues = JoinSet::new();
    for _ in 0..50 {
        let store = store.clone();
        issues.spawn(async move {
            store
                .issue_token(new_hash(), NOW, NOW + DAY, "192.0.2.1".into(), 1_000, 3)
                .await
                .unwrap()
        });
    }
    while let Some(issued) = issues.join_next().await {
        issued.unwrap();
    }
    assert_eq!(store.count_active_tokens(NOW).await.unwrap(), 3);
}

pub(crate) async fn the_per_address_token_cap_expires_the_oldest(store: Arc<dyn Store>) {
    let ip = "192.0.2.1";
    let mut hashes = Vec::new();
    let mut evicted = Vec::new();
    for i in 0..3 {
        let hash = new_hash();
        let issued = store
            .issue_token(hash, NOW + i, NOW + i + DAY, ip.into(), 1_000, 2)
            .await
            .unwrap();
        hashes.push(hash);
        evicted.push(issued.evicted);
    }
    assert_eq!(evicted, [vec![], vec![], vec![hashes[0]]]);
    let first = store.find_token(hashes[0]).await.unwrap().unwrap();
    assert_eq!(first.expires_at, NOW + 2, "expired at the third issue");
    for h in &hashes[1..] {
        assert!(store.find_token(*h).await.unwrap().unwrap().expires_at > NOW + DAY);
    }
    // Another address has its own count, and 0 means no cap.
    let other = store
        .issue_token(
            new_hash(),
            NOW + 3,
            NOW + 3 + DAY,
            "192.0.2.9".into(),
            1_000,
            2,
        )
        .await
        .unwrap();
    assert!(other.evicted.is_empty());
    let uncapped = store
        .issue_token(new_hash(), NOW + 4, NOW + 4 + DAY, ip.into(), 1_000, 0)
        .await
        .unwrap();
    assert!(uncapped.evicted.is_empty());
}

pub(crate) async fn a_refresh_counts_against_the_per_address_token_cap(store: Arc<dyn Store>) {
    let ip = "192.0.2.1";
    let (old, newer) = (new_hash(), new_hash());
    store
        .issue_token(old, NOW, NOW + 10, ip.into(), 1_000, 1)
        .await
        .unwrap();
    let issued = store
        .issue_token(newer, NOW + 20, NOW + 20 + DAY, ip.into(), 1_000, 1)
        .await
        .unwrap();
    assert!(issued.evicted.is_empty(), "the old one has expired already");
    let old_id = store.find_token(old).await.unwrap().unwrap().id;
    let refreshed = store
        .refresh_token(old_id, ip.into(), NOW + 30, NOW + 30 + DAY, 2, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refreshed.evicted, [newer]);
    let newer = store.find_token(newer).await.unwrap().unwrap();
    assert_eq!(newer.expires_at, NOW + 30);
}

pub(crate) async fn a_token_is_revoked_by_its_id(store: Arc<dyn Store>) {
    let rec = issue(&*store, "192.0.2.1", NOW).await;
    let other = issue(&*store, "192.0.2.1", NOW).await;
    assert_eq!(
        store.revoke_by_id(rec.id, NOW + 5).await.unwrap(),
        RevokedById::Revoked(rec.hash)
    );
    assert_eq!(
        store.revoke_by_id(rec.id, NOW + 6).await.unwrap(),
        RevokedById::AlreadyRevoked
    );
    assert_eq!(
        store.revoke_by_id(other.id + 100, NOW).await.unwrap(),
        RevokedById::Unknown
    );
    assert_eq!(find(&*store, rec.id).await.revoked_at, Some(NOW + 5));
    assert_eq!(find(&*store, other.id).await.revoked_at, None);
}

pub(crate) async fn tokens_are_revoked_by_network_or_all(store: Arc<dyn Store>) {
    let v4 = issue(&*store, "203.0.113.7", NOW).await;
    let v6 = issue(&*store, "2001:db8:1:2::/64", NOW).await;
    let elsewhere = issue(&*store, "198.51.100.1", NOW).await;
    // A token used from the network after issue is taken too.
    store
        .add_token_address(elsewhere.id, "203.0.113.200".into(), NOW, 5)
        .await
        .unwrap();
    let untouched = issue(&*store, "192.0.2.1", NOW - 2 * DAY).await; // expired

    let net = |s: &str| RevokeScope::Network(s.parse().unwrap());
    let mut revoked = store.revoke(net("203.0.113.0/24"), NOW).await.unwrap();
    revoked.sort_unstable_by_key(|h| h.0);
    let mut expected = vec![v4.hash, elsewhere.hash];
    expected.sort_unstable_by_key(|h| h.0);
    assert_eq!(revoked, expected);
    assert_eq!(
        store.revoke(net("2001:db8:1:2::5/128"), NOW).await.unwrap(),
        [v6.hash],
        "a stored /64 is taken by a network inside it"
    );
    assert_eq!(
        store.revoke(RevokeScope::All, NOW + 1).await.unwrap(),
        [untouched.hash],
        "expired tokens too, and revoked ones are not taken again"
    );
    assert_eq!(find(&*store, v4.id).await.revoked_at, Some(NOW));
    assert_eq!(find(&*store, untouched.id).await.revoked_at, Some(NOW + 1));
}

pub(crate) async fn expire_all_expires_only_active_tokens(store: Arc<dyn Store>) {
    let a = issue(&*store, "192.0.2.1", NOW).await;
    let b = issue(&*store, "192.0.2.2", NOW).await;
    let revoked = issue(&*store, "192.0.2.3", NOW).await;
    store.revoke_by_id(revoked.id, NOW).await.unwrap();
    let expired = issue(&*store, "192.0.2.4", NOW - 2 * DAY).await;
    assert_eq!(store.count_active_tokens(NOW + 5).await.unwrap(), 2);

    assert_eq!(store.expire_all(NOW + 5).await.unwrap(), 2);
    assert_eq!(find(&*store, a.id).await.expires_at, NOW + 5);
    assert_eq!(find(&*store, b.id).await.expires_at, NOW + 5);
    assert_eq!(find(&*store, revoked.id).await.expires_at, NOW + DAY);
    assert_eq!(find(&*store, expired.id).await.expires_at, NOW - DAY);
    assert_eq!(store.count_active_tokens(NOW + 5).await.unwrap(), 0);
}

pub(crate) async fn tokens_are_purged_after_their_refresh_window(store: Arc<dyn Store>) {
    let old = issue(&*store, "192.0.2.1", NOW - DAY - 100).await; // expired at NOW - 100
    let recent = issue(&*store, "192.0.2.2", NOW - DAY + 100).await; // expires at NOW + 100
    let live = issue(&*store, "192.0.2.3", NOW).await;
    assert!(store.purge_tokens(NOW, 101).await.unwrap().is_empty());
    assert_eq!(store.purge_tokens(NOW, 100).await.unwrap(), [old.hash]);
    assert_eq!(store.find_token(old.hash).await.unwrap(), None);
    assert_eq!(store.find_token_by_id(old.id).await.unwrap(), None);
    assert!(store.find_token(recent.hash).await.unwrap().is_some());
    assert!(store.find_token(live.hash).await.unwrap().is_some());
    assert_eq!(
        store.revoke_by_id(old.id, NOW).await.unwrap(),
        RevokedById::Unknown
    );
}

pub(crate) async fn tokens_are_listed_newest_first_and_counted(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(issue(&*store, "192.0.2.1", NOW + i).await.id);
    }
    store.revoke_by_id(ids[4], NOW + 10).await.unwrap();
    let (page, total) = store.list_tokens(2, 1).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[3], ids[2]]
    );
    assert_eq!(page[0].ips, ["192.0.2.1"], "with their addresses");
    let (all, _) = store.list_tokens(10, 0).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].revoked_at, Some(NOW + 10));
    let (beyond, total) = store.list_tokens(10, 5).await.unwrap();
    assert_eq!((beyond.len(), total), (0, 5));
    // Revoked and (at NOW + 2 + DAY) the first three expired do not count.
    assert_eq!(store.count_active_tokens(NOW + 2 + DAY).await.unwrap(), 1);
}

pub(crate) async fn request_counts_only_grow_and_only_under_their_refresh(store: Arc<dyn Store>) {
    let rec = issue(&*store, "192.0.2.1", NOW).await;
    let count = |refresh_count, used| RequestCount {
        token_id: rec.id,
        refresh_count,
        used,
    };
    let used = || async { find(&*store, rec.id).await.requests_used };
    store.write_request_counts(vec![count(0, 5)]).await.unwrap();
    assert_eq!(used().await, 5);
    store.write_request_counts(vec![count(0, 5)]).await.unwrap();
    assert_eq!(used().await, 5, "the same count twice is counted once");
    store.write_request_counts(vec![count(0, 3)]).await.unwrap();
    assert_eq!(used().await, 5, "an older count does not go back");
    // A count for a token that is gone is no error.
    let gone = RequestCount {
        token_id: rec.id + 100,
        refresh_count: 0,
        used: 1,
    };
    store.write_request_counts(vec![gone]).await.unwrap();

    store
        .refresh_token(rec.id, "192.0.2.1".into(), NOW + 1, NOW + DAY, 2, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used().await, 0);
    store.write_request_counts(vec![count(0, 9)]).await.unwrap();
    assert_eq!(used().await, 0, "counted before the refresh: dropped");
    store.write_request_counts(vec![count(1, 7)]).await.unwrap();
    assert_eq!(used().await, 7);
}

pub(crate) async fn a_secret_is_created_once(store: Arc<dyn Store>) {
    assert_eq!(store.get_secret("k").await.unwrap(), None);
    let first = store
        .get_or_create_secret("k", vec![1, 2, 3], NOW)
        .await
        .unwrap();
    assert_eq!(first, [1, 2, 3]);
    let again = store
        .get_or_create_secret("k", vec![4, 5, 6], NOW)
        .await
        .unwrap();
    assert_eq!(again, [1, 2, 3], "the stored value wins");
    store.set_secret("k", vec![7], NOW + 1).await.unwrap();
    assert_eq!(store.get_secret("k").await.unwrap(), Some(vec![7]));
    store.set_secret("other", vec![8], NOW).await.unwrap();
    assert_eq!(store.get_secret("other").await.unwrap(), Some(vec![8]));
    assert_eq!(store.get_secret("k").await.unwrap(), Some(vec![7]));
}

/// Two instances starting at once on an empty store must agree on the
/// challenge key, or each would refuse the other's challenges.
pub(crate) async fn concurrent_first_secrets_agree(store: Arc<dyn Store>) {
    let mut creates = JoinSet::new();
    for i in 0..16u8 {
        let store = store.clone();
        creates.spawn(async move { store.get_or_create_secret("key", vec![i; 32], NOW).await });
    }
    let values: HashSet<Vec<u8>> = creates
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(values.len(), 1, "{values:?}");
}

pub(crate) async fn settings_round_trip(store: Arc<dyn Store>) {
    assert!(store.load_settings().await.unwrap().is_empty());
    store
        .store_settings(vec![("token_hours", 3), ("difficulty", 5_000)], NOW)
        .await
        .unwrap();
    store
        .store_settings(vec![("difficulty", 6_000)], NOW + 1)
        .await
        .unwrap();
    assert_eq!(
        store.load_settings().await.unwrap(),
        [
            ("difficulty".to_owned(), 6_000),
            ("token_hours".to_owned(), 3)
        ],
        "sorted by name, the last value kept"
    );
    store.clear_settings().await.unwrap();
    assert!(store.load_settings().await.unwrap().is_empty());
}
