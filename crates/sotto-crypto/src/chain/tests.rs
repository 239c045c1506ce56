use super::*;
use crate::identity::IdentityKeys;
use crate::ids::EpochId;
use crate::test_rng;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// Users with keys, and the pinned-key resolver clients pass to the chain.
pub(crate) struct People {
    keys: BTreeMap<UserId, IdentityKeys>,
}

impl People {
    pub(crate) fn new(names: &[&str]) -> Self {
        let keys = names
            .iter()
            .zip(1u64..)
            .map(|(n, seed)| (user(n), IdentityKeys::generate(&mut test_rng(seed))))
            .collect();
        Self { keys }
    }

    pub(crate) fn keys(&self, name: &str) -> &IdentityKeys {
        &self.keys[&user(name)]
    }

    pub(crate) fn resolver(&self) -> impl Fn(&UserId) -> Option<IdentityPublicKey> + '_ {
        |u| self.keys.get(u).map(IdentityKeys::identity_public)
    }
}

pub(crate) fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub(crate) fn room() -> RoomId {
    RoomId::new("room-1").unwrap()
}

fn set(names: &[&str]) -> BTreeSet<UserId> {
    names.iter().map(|n| user(n)).collect()
}

fn create(
    p: &People,
    kind: RoomKind,
    creator: &str,
    members: &[&str],
    encrypted: bool,
) -> Statement {
    let c = Create {
        kind,
        members: set(members),
        encrypted,
        history_shared: true,
    };
    Statement::create(&room(), c, &user(creator), p.keys(creator)).unwrap()
}

/// A chain under construction: signs each step as the named actor.
pub(crate) struct Builder<'a> {
    pub(crate) p: &'a People,
    pub(crate) chain: RoomChain,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(
        p: &'a People,
        kind: RoomKind,
        creator: &str,
        members: &[&str],
        encrypted: bool,
    ) -> Self {
        let first = create(p, kind, creator, members, encrypted);
        let chain = RoomChain::verify(&room(), [first], p.resolver()).unwrap();
        Self { p, chain }
    }

    pub(crate) fn next(&self, actor: &str, action: Action) -> Statement {
        Statement::next(self.chain.head(), action, &user(actor), self.p.keys(actor)).unwrap()
    }

    pub(crate) fn try_step(&mut self, actor: &str, action: Action) -> Result<(), ChainError> {
        let stmt = self.next(actor, action);
        self.chain.append(stmt, self.p.resolver())
    }

    pub(crate) fn step(&mut self, actor: &str, action: Action) -> &mut Self {
        self.try_step(actor, action).unwrap();
        self
    }

    pub(crate) fn state(&self) -> &RoomState {
        self.chain.state()
    }
}

fn epoch(n: u8) -> EpochId {
    EpochId([n; 16])
}

const ALL: &[&str] = &["alice", "bob", "carol", "dave", "mallory"];

#[test]
fn direct_message_keeps_its_two_people() {
    let p = People::new(ALL);
    let mut b = Builder::new(
        &p,
        RoomKind::DirectMessage,
        "alice",
        &["alice", "bob"],
        true,
    );
    assert!(b.state().rotation_due());
    b.step("bob", Action::NewEpoch(epoch(1)));
    assert!(!b.state().rotation_due());
    // Either person toggles encryption.
    b.step("bob", Action::SetEncryption(false))
        .step("alice", Action::SetEncryption(true));
    for action in [
        Action::Invite(user("carol")),
        Action::Remove(user("bob")),
        Action::Leave,
        Action::AddOwner(user("bob")),
        Action::RemoveOwner(user("alice")),
    ] {
        assert_eq!(
            b.try_step("alice", action),
            Err(ChainError::NotAllowedInDirectMessage)
        );
    }
    assert_eq!(b.state().members(), &set(&["alice", "bob"]));
    assert_eq!(b.chain.len(), 4);

    for members in [&["alice"][..], &["alice", "bob", "carol"][..]] {
        let first = create(&p, RoomKind::DirectMessage, "alice", members, true);
        assert_eq!(
            RoomChain::verify(&room(), [first], p.resolver()).unwrap_err(),
            ChainError::DirectMessageNeedsTwo
        );
    }
}

#[test]
fn group_direct_message_members_invite_and_toggle_owners_remove() {
    let p = People::new(ALL);
    let mut b = Builder::new(
        &p,
        RoomKind::GroupDirectMessage,
        "alice",
        &["alice", "bob", "carol"],
        false,
    );
    assert!(!b.state().rotation_due(), "unencrypted rooms need no epoch");
    b.step("bob", Action::Invite(user("dave")));
    b.step("carol", Action::SetEncryption(true));
    assert!(b.state().rotation_due());
    b.step("dave", Action::NewEpoch(epoch(1)));
    assert_eq!(
        b.try_step("bob", Action::Remove(user("carol"))),
        Err(ChainError::NotAnOwner)
    );
    assert_eq!(
        b.try_step("bob", Action::AddOwner(user("carol"))),
        Err(ChainError::NotAnOwner)
    );
    b.step("alice", Action::Remove(user("carol")));
    b.step("dave", Action::Leave);
    assert!(b.state().rotation_due());
    b.step("bob", Action::NewEpoch(epoch(2)));
    assert_eq!(b.state().members(), &set(&["alice", "bob"]));
    assert_eq!(
        b.state().members_at_epoch(&epoch(1)).unwrap(),
        &set(&["alice", "bob", "carol", "dave"])
    );
    assert_eq!(
        b.state().members_at_epoch(&epoch(2)).unwrap(),
        &set(&["alice", "bob"])
    );
}

#[test]
fn channels_teams_and_discussions_are_run_by_owners() {
    let p = People::new(ALL);
    for kind in [
        RoomKind::PrivateChannel,
        RoomKind::PrivateTeam,
        RoomKind::Discussion,
    ] {
        let mut b = Builder::new(&p, kind, "alice", &["alice", "bob"], true);
        assert_eq!(
            b.state().owners(),
            &set(&["alice"]),
            "the creator is the first owner"
        );
        b.step("alice", Action::NewEpoch(epoch(1)));
        for action in [
            Action::Invite(user("carol")),
            Action::Remove(user("alice")),
            Action::AddOwner(user("bob")),
            Action::RemoveOwner(user("alice")),
            Action::SetEncryption(false),
        ] {
            assert_eq!(
                b.try_step("bob", action),
                Err(ChainError::NotAnOwner),
                "{kind:?}"
            );
        }
        b.step("alice", Action::Invite(user("carol")));
        b.step("alice", Action::AddOwner(user("bob")));
        b.step("bob", Action::Remove(user("carol")));
        b.step("bob", Action::RemoveOwner(user("alice")));
        assert_eq!(
            b.try_step("alice", Action::Invite(user("dave"))),
            Err(ChainError::NotAnOwner)
        );
        // Any member may leave and start a new epoch.
        b.step("alice", Action::NewEpoch(epoch(2)));
        b.step("alice", Action::Leave);
        b.step("bob", Action::SetEncryption(false));
        let s = b.state();
        assert_eq!(s.members(), &set(&["bob"]));
        assert_eq!(s.owners(), &set(&["bob"]));
        assert!(!s.encrypted());
        assert!(!s.rotation_due());
        assert_eq!(s.current_epoch(), Some(epoch(2)));
        assert_eq!(s.epochs(), &[epoch(1), epoch(2)]);
        assert_eq!(s.kind(), kind);
    }
}

#[test]
fn every_rule_violation_has_its_own_error() {
    let p = People::new(ALL);
    let mut b = Builder::new(
        &p,
        RoomKind::PrivateChannel,
        "alice",
        &["alice", "bob"],
        false,
    );
    let cases = [
        (
            "mallory",
            Action::Invite(user("mallory")),
            ChainError::NotAMember,
        ),
        (
            "alice",
            Action::Invite(user("bob")),
            ChainError::AlreadyMember,
        ),
        (
            "alice",
            Action::Remove(user("carol")),
            ChainError::SubjectNotAMember,
        ),
        (
            "alice",
            Action::Remove(user("alice")),
            ChainError::RemoveSelf,
        ),
        (
            "alice",
            Action::AddOwner(user("carol")),
            ChainError::SubjectNotAMember,
        ),
        (
            "alice",
            Action::AddOwner(user("alice")),
            ChainError::AlreadyOwner,
        ),
        (
            "alice",
            Action::RemoveOwner(user("bob")),
            ChainError::SubjectNotAnOwner,
        ),
        (
            "alice",
            Action::RemoveOwner(user("alice")),
            ChainError::LastOwner,
        ),
        ("alice", Action::Leave, ChainError::LastOwner),
        ("alice", Action::SetEncryption(false), ChainError::Unchanged),
        (
            "alice",
            Action::NewEpoch(epoch(1)),
            ChainError::EncryptionOff,
        ),
    ];
    for (actor, action, err) in cases {
        assert_eq!(
            b.try_step(actor, action.clone()),
            Err(err),
            "{actor} {action:?}"
        );
    }
    let create_again = Action::Create(Create {
        kind: RoomKind::PrivateChannel,
        members: set(&["alice"]),
        encrypted: true,
        history_shared: true,
    });
    assert_eq!(
        b.try_step("alice", create_again),
        Err(ChainError::CreateNotFirst)
    );
    b.step("alice", Action::SetEncryption(true))
        .step("bob", Action::NewEpoch(epoch(1)));
    assert_eq!(
        b.try_step("alice", Action::NewEpoch(epoch(1))),
        Err(ChainError::DuplicateEpoch)
    );
    // The last member may leave, even as the last owner.
    b.step("bob", Action::Leave).step("alice", Action::Leave);
    assert!(b.state().members().is_empty());
    assert_eq!(
        b.try_step("alice", Action::NewEpoch(epoch(2))),
        Err(ChainError::NotAMember)
    );

    let first = create(&p, RoomKind::PrivateTeam, "alice", &["bob"], true);
    assert_eq!(
        RoomChain::verify(&room(), [first], p.resolver()).unwrap_err(),
        ChainError::CreatorNotAMember
    );
    assert_eq!(
        RoomChain::verify(&room(), [], p.resolver()).unwrap_err(),
        ChainError::EmptyChain
    );
    let first = create(&p, RoomKind::PrivateTeam, "alice", &["alice"], true);
    let not_create = Statement::sign(
        &room(),
        0,
        GENESIS_PREV,
        Action::Leave,
        &user("alice"),
        p.keys("alice"),
    )
    .unwrap();
    assert_eq!(
        RoomChain::verify(&room(), [not_create], p.resolver()).unwrap_err(),
        ChainError::MissingCreate
    );
    let other = RoomId::new("room-2").unwrap();
    assert_eq!(
        RoomChain::verify(&other, [first], p.resolver()).unwrap_err(),
        ChainError::WrongRoom
    );
}

#[test]
fn links_must_follow_the_head() {
    let p = People::new(ALL);
    let mut b = Builder::new(
        &p,
        RoomKind::PrivateChannel,
        "alice",
        &["alice", "bob"],
        true,
    );
    b.step("alice", Action::NewEpoch(epoch(1)));
    let head = b.chain.head().clone();
    let k = p.keys("alice");
    let a = user("alice");
    let skip = Statement::sign(&room(), head.seq() + 2, head.hash(), Action::Leave, &a, k).unwrap();
    assert_eq!(
        b.chain.append(skip, p.resolver()),
        Err(ChainError::BadSequence {
            expected: 2,
            found: 3
        })
    );
    let fork =
        Statement::sign(&room(), head.seq() + 1, *head.prev(), Action::Leave, &a, k).unwrap();
    assert_eq!(
        b.chain.append(fork, p.resolver()),
        Err(ChainError::BadPrevHash)
    );
    let elsewhere = RoomId::new("room-2").unwrap();
    let moved = Statement::sign(
        &elsewhere,
        head.seq() + 1,
        head.hash(),
        Action::Leave,
        &a,
        k,
    )
    .unwrap();
    assert_eq!(
        b.chain.append(moved, p.resolver()),
        Err(ChainError::WrongRoom)
    );
    assert_eq!(
        b.chain.head(),
        &head,
        "a refused statement leaves the chain unchanged"
    );
}

#[test]
fn forged_and_unknown_signers_are_refused() {
    let p = People::new(ALL);
    let mut b = Builder::new(
        &p,
        RoomKind::PrivateChannel,
        "alice",
        &["alice", "bob"],
        true,
    );
    // Mallory signs in Alice's name with her own key.
    let forged = Statement::next(
        b.chain.head(),
        Action::Invite(user("mallory")),
        &user("alice"),
        p.keys("mallory"),
    )
    .unwrap();
    assert_eq!(
        b.chain.append(forged, p.resolver()),
        Err(ChainError::BadSignature)
    );
    // A non-member's genuine statement is refused by the rules.
    let by_mallory = b.next("mallory", Action::Invite(user("mallory")));
    assert_eq!(
        b.chain.append(by_mallory, p.resolver()),
        Err(ChainError::NotAMember)
    );
    // Nobody's key pinned for the actor.
    let by_stranger =
        Statement::next(b.chain.head(), Action::Leave, &user("zed"), p.keys("bob")).unwrap();
    assert_eq!(
        b.chain.append(by_stranger, p.resolver()),
        Err(ChainError::UnknownSigner)
    );
}

#[test]
fn the_server_checks_compare_and_set_without_private_keys() {
    let p = People::new(ALL);
    let r = room();
    let first = create(
        &p,
        RoomKind::PrivateChannel,
        "alice",
        &["alice", "bob"],
        true,
    );
    let keys = p.resolver();
    assert_eq!(
        check_extends(&r, None, &first.encode(), &keys).unwrap(),
        first
    );
    let mut stored = RoomChain::from_stored(&r, [first.clone()]).unwrap();
    let second = Statement::next(
        &first,
        Action::NewEpoch(epoch(1)),
        &user("bob"),
        p.keys("bob"),
    )
    .unwrap();
    assert_eq!(
        check_extends(&r, Some(&stored), &second.encode(), &keys).unwrap(),
        second
    );
    let before_second = stored.clone();
    stored.append(second.clone(), &keys).unwrap();
    // Stale head: the same statement again after it was stored.
    assert_eq!(
        check_extends(&r, Some(&stored), &second.encode(), &keys),
        Err(ChainError::BadSequence {
            expected: 2,
            found: 1
        })
    );
    // A competing statement for the slot just taken, built on the old head.
    let rival = Statement::next(
        &first,
        Action::NewEpoch(epoch(9)),
        &user("alice"),
        p.keys("alice"),
    )
    .unwrap();
    assert!(check_extends(&r, Some(&before_second), &rival.encode(), &keys).is_ok());
    assert_eq!(
        check_extends(&r, Some(&stored), &rival.encode(), &keys),
        Err(ChainError::BadSequence {
            expected: 2,
            found: 1
        })
    );
    assert_eq!(
        check_extends(&r, None, &second.encode(), &keys),
        Err(ChainError::BadSequence {
            expected: 0,
            found: 1
        })
    );
    assert_eq!(
        check_extends(&RoomId::new("x").unwrap(), None, &first.encode(), &keys),
        Err(ChainError::WrongRoom)
    );
    assert_eq!(
        check_extends(
            &RoomId::new("x").unwrap(),
            Some(&stored),
            &rival.encode(),
            &keys
        ),
        Err(ChainError::WrongRoom)
    );
    let mut bad = Statement::next(&second, Action::Leave, &user("bob"), p.keys("bob"))
        .unwrap()
        .encode();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        check_extends(&r, Some(&stored), &bad, &keys),
        Err(ChainError::BadSignature)
    );
    assert_eq!(
        check_extends(&r, None, &[1, 2, 3], &keys),
        Err(ChainError::Decode(DecodeError::Truncated))
    );
    assert_eq!(
        check_extends(&r, None, &first.encode(), |_| None),
        Err(ChainError::UnknownSigner)
    );
}

#[test]
fn the_server_refuses_a_rule_breaking_statement_so_no_one_can_wedge_a_room() {
    let p = People::new(ALL);
    let r = room();
    let first = create(
        &p,
        RoomKind::PrivateChannel,
        "alice",
        &["alice", "bob"],
        true,
    );
    let stored = RoomChain::from_stored(&r, [first.clone()]).unwrap();
    // An outsider with a published key, correctly linked and signed.
    let by_outsider = Statement::next(
        &first,
        Action::NewEpoch(epoch(1)),
        &user("carol"),
        p.keys("carol"),
    )
    .unwrap();
    assert_eq!(
        check_extends(&r, Some(&stored), &by_outsider.encode(), p.resolver()),
        Err(ChainError::NotAMember)
    );
    // A member who is not an owner cannot remove the owner.
    let by_member = Statement::next(
        &first,
        Action::Remove(user("alice")),
        &user("bob"),
        p.keys("bob"),
    )
    .unwrap();
    assert_eq!(
        check_extends(&r, Some(&stored), &by_member.encode(), p.resolver()),
        Err(ChainError::NotAnOwner)
    );
}

#[test]
fn the_server_rebuilds_its_chain_without_keys_and_still_applies_the_rules() {
    let p = People::new(ALL);
    let chain = sample_chain(&p);
    let verified = RoomChain::verify(&room(), chain.clone(), p.resolver()).unwrap();
    let rebuilt = RoomChain::from_stored(&room(), chain.clone()).unwrap();
    assert_eq!(rebuilt.state(), verified.state());
    // Links and rules are still checked: dropping a statement breaks the link.
    let mut gap = chain.clone();
    gap.remove(1);
    assert!(matches!(
        RoomChain::from_stored(&room(), gap),
        Err(ChainError::BadSequence { .. })
    ));
}

#[test]
fn a_member_the_server_adds_is_not_verified_by_the_room() {
    let p = People::new(ALL);
    let b = Builder::new(
        &p,
        RoomKind::PrivateTeam,
        "alice",
        &["alice", "bob", "carol"],
        true,
    );
    let server = [user("alice"), user("bob"), user("mallory")];
    let cmp = b.state().compare_members(&server);
    assert_eq!(cmp.verified, set(&["alice", "bob"]));
    assert_eq!(cmp.not_verified_by_room, set(&["mallory"]));
    assert_eq!(cmp.not_listed_by_server, set(&["carol"]));
    assert!(!b.state().is_member(&user("mallory")));
}

#[test]
fn rotation_is_due_after_leave_or_remove_until_a_new_epoch() {
    let p = People::new(ALL);
    let mut b = Builder::new(
        &p,
        RoomKind::PrivateChannel,
        "alice",
        &["alice", "bob", "carol"],
        true,
    );
    b.step("alice", Action::NewEpoch(epoch(1)));
    b.step("alice", Action::Invite(user("dave")));
    assert!(
        !b.state().rotation_due(),
        "an invite does not need a new epoch"
    );
    assert!(
        b.state()
            .members_at_epoch(&epoch(1))
            .unwrap()
            .contains(&user("dave"))
    );
    b.step("carol", Action::Leave);
    assert!(b.state().rotation_due());
    b.step("bob", Action::NewEpoch(epoch(2)));
    assert!(!b.state().rotation_due());
    b.step("alice", Action::Remove(user("bob")));
    assert!(b.state().rotation_due());
    assert!(
        b.state().may_hold_epoch(&epoch(2), &user("bob")),
        "bob held epoch 2"
    );
    b.step("dave", Action::NewEpoch(epoch(3)));
    let s = b.state();
    assert!(!s.rotation_due());
    assert!(!s.may_hold_epoch(&epoch(3), &user("bob")));
    assert!(!s.may_hold_epoch(&epoch(3), &user("carol")));
    assert!(s.may_hold_epoch(&epoch(1), &user("carol")));
    assert!(!s.may_hold_epoch(&epoch(7), &user("alice")));
    assert_eq!(
        s.members_at_epoch(&epoch(3)).unwrap(),
        &set(&["alice", "dave"])
    );

    // The state at any earlier point is derivable.
    let at2 = b.chain.state_at(2).unwrap();
    assert_eq!(at2.members(), &set(&["alice", "bob", "carol", "dave"]));
    assert_eq!(at2.current_epoch(), Some(epoch(1)));
    assert_eq!(at2.seq(), 2);
    assert_eq!(b.chain.state_at(b.state().seq()).as_ref(), Some(b.state()));
    assert_eq!(b.chain.state_at(99), None);
}

#[test]
fn history_sharing_decides_whether_newcomers_may_hold_old_epochs() {
    let p = People::new(ALL);
    for shared in [true, false] {
        let c = Create {
            kind: RoomKind::PrivateChannel,
            members: set(&["alice"]),
            encrypted: true,
            history_shared: shared,
        };
        let first = Statement::create(&room(), c, &user("alice"), p.keys("alice")).unwrap();
        let chain = RoomChain::verify(&room(), [first], p.resolver()).unwrap();
        let mut b = Builder { p: &p, chain };
        b.step("alice", Action::NewEpoch(epoch(1)))
            .step("alice", Action::NewEpoch(epoch(2)));
        b.step("alice", Action::Invite(user("bob")));
        assert_eq!(b.state().may_hold_epoch(&epoch(1), &user("bob")), shared);
        // Without shared history the newcomer does not get the current epoch either:
        // a new one is due, and the newcomer holds that.
        assert_eq!(b.state().may_hold_epoch(&epoch(2), &user("bob")), shared);
        assert_eq!(b.state().rotation_due(), !shared);
        b.step("bob", Action::NewEpoch(epoch(3)));
        assert!(b.state().may_hold_epoch(&epoch(3), &user("bob")));
        assert!(!b.state().rotation_due());
        assert_eq!(b.state().history_shared(), shared);
    }
}

fn sample_chain(p: &People) -> Vec<Statement> {
    let mut b = Builder::new(
        p,
        RoomKind::PrivateChannel,
        "alice",
        &["alice", "bob"],
        true,
    );
    b.step("bob", Action::NewEpoch(epoch(1)))
        .step("alice", Action::Invite(user("carol")));
    b.chain.statements().cloned().collect()
}

#[test]
fn every_flipped_byte_of_every_statement_is_refused() {
    let p = People::new(ALL);
    let chain = sample_chain(&p);
    let encoded: Vec<Vec<u8>> = chain.iter().map(Statement::encode).collect();
    assert!(RoomChain::decode_and_verify(&room(), &encoded, p.resolver()).is_ok());
    for (i, good) in encoded.iter().enumerate() {
        for j in 0..good.len() {
            let mut all = encoded.clone();
            all[i][j] ^= 0x01;
            assert!(
                RoomChain::decode_and_verify(&room(), &all, p.resolver()).is_err(),
                "statement {i} byte {j} accepted"
            );
        }
    }
}

#[test]
fn each_region_of_a_statement_fails_with_its_own_error() {
    let p = People::new(ALL);
    let chain = sample_chain(&p);
    let last = chain[2].encode();
    let check = |bytes: &[u8]| {
        let stmt = Statement::decode(bytes)?;
        let stored = RoomChain::from_stored(&room(), chain[..2].to_vec()).unwrap();
        check_extends(&room(), Some(&stored), &stmt.encode(), p.resolver())
    };
    // version ‖ bytes8(room "room-1") ‖ u64 seq ‖ prev ‖ action ‖ actor ‖ sig
    let flip = |at: usize, mask: u8| {
        let mut b = last.clone();
        b[at] ^= mask;
        check(&b)
    };
    assert_eq!(
        flip(0, 0x03),
        Err(ChainError::Decode(DecodeError::UnsupportedVersion(2)))
    );
    assert_eq!(
        flip(1, 0x40),
        Err(ChainError::Decode(DecodeError::InvalidField("room id")))
    );
    assert_eq!(flip(2, 0x20), Err(ChainError::WrongRoom));
    assert_eq!(
        flip(8 + 7, 0x04),
        Err(ChainError::BadSequence {
            expected: 2,
            found: 6
        })
    );
    assert_eq!(flip(16, 0x01), Err(ChainError::BadPrevHash));
    assert_eq!(
        flip(16 + 32, 0x40),
        Err(ChainError::Decode(DecodeError::InvalidField("action")))
    );
    // Invite("carol") → Invite("Carol"): a valid id, so only the signature catches it.
    assert_eq!(flip(16 + 32 + 2, 0x20), Err(ChainError::BadSignature));
    let actor_at = last.len() - 64 - 5;
    assert_eq!(flip(actor_at, 0x20), Err(ChainError::UnknownSigner));
    assert_eq!(flip(last.len() - 1, 0x01), Err(ChainError::BadSignature));
    let mut longer = last.clone();
    longer.push(0);
    assert_eq!(
        check(&longer),
        Err(ChainError::Decode(DecodeError::TrailingBytes))
    );
}

#[test]
fn creation_members_must_be_strictly_ascending() {
    let p = People::new(ALL);
    // Swap two member ids of equal length so only their order changes.
    let first2 = create(
        &p,
        RoomKind::PrivateChannel,
        "carol",
        &["carol", "dave0"],
        true,
    );
    let mut e2 = first2.encode();
    let pos = e2.windows(5).position(|w| w == b"carol").unwrap();
    let pos2 = e2.windows(5).position(|w| w == b"dave0").unwrap();
    e2[pos..pos + 5].copy_from_slice(b"dave0");
    e2[pos2..pos2 + 5].copy_from_slice(b"carol");
    assert!(Statement::decode(&first2.encode()).is_ok());
    assert_eq!(
        Statement::decode(&e2),
        Err(DecodeError::InvalidField("member order"))
    );
}

fn arb_user() -> impl Strategy<Value = UserId> {
    "[a-zA-Z0-9._:-]{1,64}".prop_map(|s| UserId::new(s).unwrap())
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (
            0u8..5,
            proptest::collection::btree_set(arb_user(), 0..8),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(k, members, encrypted, history_shared)| {
                let kind = [
                    RoomKind::DirectMessage,
                    RoomKind::GroupDirectMessage,
                    RoomKind::PrivateChannel,
                    RoomKind::PrivateTeam,
                    RoomKind::Discussion,
                ][usize::from(k)];
                Action::Create(Create {
                    kind,
                    members,
                    encrypted,
                    history_shared,
                })
            }),
        arb_user().prop_map(Action::Invite),
        arb_user().prop_map(Action::Remove),
        Just(Action::Leave),
        arb_user().prop_map(Action::AddOwner),
        arb_user().prop_map(Action::RemoveOwner),
        any::<bool>().prop_map(Action::SetEncryption),
        any::<[u8; 16]>().prop_map(|e| Action::NewEpoch(EpochId(e))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn statements_round_trip(action in arb_action(), actor in arb_user(), seq: u64, prev: [u8; 32]) {
        let keys = IdentityKeys::generate(&mut test_rng(9));
        let stmt = Statement::sign(&room(), seq, prev, action, &actor, &keys).unwrap();
        let back = Statement::decode(&stmt.encode()).unwrap();
        prop_assert_eq!(&back, &stmt);
        prop_assert_eq!(back.hash(), stmt.hash());
        prop_assert!(back.verify_signature(&keys.identity_public()).is_ok());
    }

    #[test]
    fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Statement::decode(&bytes);
    }
}

#[test]
fn a_creation_with_too_many_members_is_not_signed() {
    let p = People::new(ALL);
    let members: BTreeSet<UserId> = (0..=MAX_CREATE_MEMBERS)
        .map(|i| UserId::new(format!("u{i}")).unwrap())
        .collect();
    let c = Create {
        kind: RoomKind::PrivateTeam,
        members,
        encrypted: true,
        history_shared: true,
    };
    let a = user("alice");
    assert_eq!(
        Statement::create(&room(), c.clone(), &a, p.keys("alice")),
        Err(TooManyMembers)
    );
    let first = create(&p, RoomKind::PrivateTeam, "alice", &["alice"], true);
    assert_eq!(
        Statement::next(&first, Action::Create(c), &a, p.keys("alice")),
        Err(TooManyMembers)
    );
}

mod key_change {
    use super::*;

    /// alice and bob's room: bob declares epoch 1 under his first key, then his key is
    /// reset and his `KeyChange` (under the new key) declares the first.
    fn reset_room(p: &People, bob_new: &IdentityKeys) -> (Vec<Statement>, EpochId) {
        let e1 = EpochId([1; 16]);
        let first = create(
            p,
            RoomKind::PrivateChannel,
            "alice",
            &["alice", "bob"],
            true,
        );
        let s1 =
            Statement::next(&first, Action::NewEpoch(e1), &user("bob"), p.keys("bob")).unwrap();
        let bob_old = p.keys("bob").identity_public();
        let s2 = Statement::next(&s1, Action::KeyChange(bob_old), &user("bob"), bob_new).unwrap();
        (vec![first, s1, s2], e1)
    }

    fn pinned<'a>(
        p: &'a People,
        bob_new: &'a IdentityKeys,
    ) -> impl Fn(&UserId) -> Option<IdentityPublicKey> + 'a {
        move |u| {
            if *u == user("bob") {
                Some(bob_new.identity_public())
            } else {
                p.resolver()(u)
            }
        }
    }

    #[test]
    fn a_verifier_that_pinned_only_the_new_key_checks_older_statements_under_the_declared_one() {
        let p = People::new(&["alice", "bob"]);
        let bob_new = IdentityKeys::generate(&mut test_rng(99));
        let (stmts, e1) = reset_room(&p, &bob_new);
        // Without the key change, bob's older statement is refused.
        let err = RoomChain::verify(&room(), stmts[..2].to_vec(), pinned(&p, &bob_new));
        assert_eq!(err.unwrap_err(), ChainError::BadSignature);
        let chain = RoomChain::verify(&room(), stmts.clone(), pinned(&p, &bob_new)).unwrap();
        let old = p.keys("bob").identity_public();
        assert_eq!(
            chain.state().former_keys_since_epoch(&user("bob"), &e1),
            vec![old]
        );
        assert!(
            chain
                .state()
                .former_keys_since_epoch(&user("alice"), &e1)
                .is_empty()
        );
        // The old key no longer signs: a statement after the change under it is refused.
        let late =
            Statement::next(chain.head(), Action::Leave, &user("bob"), p.keys("bob")).unwrap();
        assert_eq!(
            chain
                .clone()
                .append(late, pinned(&p, &bob_new))
                .unwrap_err(),
            ChainError::BadSignature
        );
        // Verified in two parts, the key change in the second decides the first's keys.
        let mut part =
            RoomChain::verify(&room(), stmts[..1].to_vec(), pinned(&p, &bob_new)).unwrap();
        part.extend(stmts[1..].to_vec(), pinned(&p, &bob_new), |_| {
            KeyHistory::default()
        })
        .unwrap();
        assert_eq!(part.state(), chain.state());
    }

    #[test]
    fn a_former_key_is_declared_once() {
        let p = People::new(&["alice", "bob"]);
        let bob_new = IdentityKeys::generate(&mut test_rng(99));
        let (stmts, _) = reset_room(&p, &bob_new);
        let chain = RoomChain::verify(&room(), stmts.clone(), pinned(&p, &bob_new)).unwrap();
        let again = Statement::next(
            chain.head(),
            Action::KeyChange(p.keys("bob").identity_public()),
            &user("bob"),
            &bob_new,
        )
        .unwrap();
        let err = chain
            .clone()
            .append(again, pinned(&p, &bob_new))
            .unwrap_err();
        assert_eq!(err, ChainError::DuplicateKeyChange);
    }

    #[test]
    fn a_key_change_may_not_declare_its_own_key() {
        let p = People::new(&["alice", "bob"]);
        let first = create(
            &p,
            RoomKind::PrivateChannel,
            "alice",
            &["alice", "bob"],
            true,
        );
        let own = p.keys("bob").identity_public();
        let s =
            Statement::next(&first, Action::KeyChange(own), &user("bob"), p.keys("bob")).unwrap();
        let err = RoomChain::verify(&room(), [first, s], p.resolver()).unwrap_err();
        assert_eq!(err, ChainError::KeyUnchanged);
    }

    #[test]
    fn a_declared_key_other_than_the_kept_former_one_is_a_mismatch() {
        let p = People::new(&["alice", "bob", "mallory"]);
        let bob_new = IdentityKeys::generate(&mut test_rng(99));
        let (mut stmts, _) = reset_room(&p, &bob_new);
        let wrong = p.keys("mallory").identity_public();
        stmts[2] =
            Statement::next(&stmts[1], Action::KeyChange(wrong), &user("bob"), &bob_new).unwrap();
        let kept = |u: &UserId| {
            if *u == user("bob") {
                vec![p.keys("bob").identity_public()]
            } else {
                Vec::new()
            }
        };
        let err =
            RoomChain::verify_with_history(&room(), stmts, pinned(&p, &bob_new), |u| KeyHistory {
                former: kept(u),
                pending: None,
            });
        assert_eq!(err.unwrap_err(), ChainError::FormerKeyMismatch);
    }

    #[test]
    fn two_resets_each_declare_the_key_before() {
        let p = People::new(&["alice", "bob"]);
        let bob_1 = IdentityKeys::generate(&mut test_rng(98));
        let bob_2 = IdentityKeys::generate(&mut test_rng(99));
        let (mut stmts, e1) = reset_room(&p, &bob_1);
        let e2 = EpochId([2; 16]);
        let s3 = Statement::next(&stmts[2], Action::NewEpoch(e2), &user("bob"), &bob_1).unwrap();
        let s4 = Statement::next(
            &s3,
            Action::KeyChange(bob_1.identity_public()),
            &user("bob"),
            &bob_2,
        )
        .unwrap();
        stmts.extend([s3, s4]);
        // This verifier went from bob's first key straight to the third: its kept key is
        // one the chain declares, so no mismatch.
        let kept = |u: &UserId| {
            if *u == user("bob") {
                vec![p.keys("bob").identity_public()]
            } else {
                Vec::new()
            }
        };
        let chain =
            RoomChain::verify_with_history(&room(), stmts, pinned(&p, &bob_2), |u| KeyHistory {
                former: kept(u),
                pending: None,
            })
            .unwrap();
        let s = chain.state();
        assert_eq!(
            s.former_keys_since_epoch(&user("bob"), &e1),
            vec![p.keys("bob").identity_public(), bob_1.identity_public()]
        );
        assert_eq!(
            s.former_keys_since_epoch(&user("bob"), &e2),
            vec![bob_1.identity_public()]
        );
    }

    #[test]
    fn without_a_key_change_a_kept_former_key_still_verifies_until_the_new_key_signs() {
        let p = People::new(&["alice", "bob"]);
        let bob_new = IdentityKeys::generate(&mut test_rng(99));
        let (stmts, _) = reset_room(&p, &bob_new);
        let kept = |u: &UserId| {
            if *u == user("bob") {
                vec![p.keys("bob").identity_public()]
            } else {
                Vec::new()
            }
        };
        // The first two statements, before bob declared his change.
        let chain = RoomChain::verify_with_history(
            &room(),
            stmts[..2].to_vec(),
            pinned(&p, &bob_new),
            |u| KeyHistory {
                former: kept(u),
                pending: None,
            },
        )
        .unwrap();
        assert_eq!(chain.len(), 2);
    }

    #[test]
    fn an_invalid_former_key_does_not_decode() {
        let p = People::new(&["alice", "bob"]);
        let first = create(
            &p,
            RoomKind::PrivateChannel,
            "alice",
            &["alice", "bob"],
            true,
        );
        let s = Statement::next(
            &first,
            Action::KeyChange(p.keys("alice").identity_public()),
            &user("bob"),
            p.keys("bob"),
        )
        .unwrap();
        let mut bytes = s.encode();
        // The former key sits after the version, room id, seq, prev and the tag.
        let at = 1 + 1 + room().as_str().len() + 8 + 32 + 1;
        bytes[at..at + 32].copy_from_slice(&[0u8; 32]);
        assert!(matches!(
            Statement::decode(&bytes),
            Err(DecodeError::InvalidField("former identity key"))
        ));
    }
}

mod key_change_pending {
    use super::*;

    #[test]
    fn a_key_change_under_the_pending_key_that_declares_the_pinned_one_is_accepted_alone() {
        let p = People::new(&["alice", "bob"]);
        let bob_new = IdentityKeys::generate(&mut test_rng(99));
        let first = create(
            &p,
            RoomKind::PrivateChannel,
            "alice",
            &["alice", "bob"],
            true,
        );
        let old = p.keys("bob").identity_public();
        let kc = Statement::next(&first, Action::KeyChange(old), &user("bob"), &bob_new).unwrap();
        let later = Statement::next(
            &kc,
            Action::NewEpoch(EpochId([3; 16])),
            &user("bob"),
            &bob_new,
        )
        .unwrap();
        // alice still pins bob's old key; the new one is pending.
        let history = |u: &UserId| KeyHistory {
            former: Vec::new(),
            pending: (*u == user("bob")).then(|| bob_new.identity_public()),
        };
        let chain = RoomChain::verify_with_history(
            &room(),
            [first.clone(), kc.clone()],
            p.resolver(),
            history,
        )
        .unwrap();
        assert_eq!(chain.len(), 2);
        let err = RoomChain::verify_with_history(
            &room(),
            [first.clone(), kc.clone(), later],
            p.resolver(),
            history,
        );
        assert_eq!(err.unwrap_err(), ChainError::BadSignature);
        // Without the pending key, the change is refused.
        let err = RoomChain::verify(&room(), [first, kc], p.resolver());
        assert_eq!(err.unwrap_err(), ChainError::BadSignature);
    }
}
