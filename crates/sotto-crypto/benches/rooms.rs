//! Room keys for a large room: sealing one epoch key to 1,000 members (target: at most
//! 150 ms on one core) and opening one box.

use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sotto_crypto::chain::{Action, Create, RoomChain, RoomKind, Statement};
use sotto_crypto::roomkey::RoomKeyBox;
use sotto_crypto::{EpochKey, IdentityKeys, PublicBundle, RoomId, UserId};
use std::hint::black_box;

const MEMBERS: usize = 1000;

fn rooms(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let room = RoomId::new("r.big").expect("valid id");
    let users: Vec<UserId> = (0..MEMBERS)
        .map(|i| UserId::new(format!("u{i:04}")).expect("valid id"))
        .collect();
    let keys: Vec<IdentityKeys> = users
        .iter()
        .map(|_| IdentityKeys::generate(&mut rng))
        .collect();
    let bundles: Vec<PublicBundle> = users.iter().zip(&keys).map(|(u, k)| k.bundle(u)).collect();
    let epoch = EpochKey::generate(&mut rng);
    let create = Create {
        kind: RoomKind::PrivateChannel,
        members: users.iter().cloned().collect(),
        encrypted: true,
        history_shared: true,
    };
    let first = Statement::create(&room, create, &users[0], &keys[0]).expect("fits");
    let second = Statement::next(&first, Action::NewEpoch(epoch.epoch()), &users[0], &keys[0])
        .expect("fits");
    let resolve = |u: &UserId| {
        users
            .iter()
            .position(|x| x == u)
            .map(|i| keys[i].identity_public())
    };
    let chain = RoomChain::verify(&room, [first, second], resolve).expect("valid chain");
    let state = chain.state();

    let mut g = c.benchmark_group("rooms");
    g.sample_size(10);
    g.bench_function("seal 1000 room-key boxes", |b| {
        b.iter(|| {
            RoomKeyBox::seal_for_members(&epoch, state, &keys[0], &users[0], &bundles, &mut rng)
                .expect("seals")
        })
    });
    let one = RoomKeyBox::seal(&epoch, &room, &keys[0], &users[0], &bundles[1], &mut rng)
        .expect("seals")
        .encode();
    g.sample_size(50);
    g.bench_function("open one room-key box", |b| {
        b.iter(|| {
            let bx = RoomKeyBox::decode(black_box(&one)).expect("decodes");
            bx.open(&users[1], &keys[1], state, |_| {
                Some(keys[0].identity_public())
            })
            .expect("opens")
        })
    });
    g.finish();
}

criterion_group!(benches, rooms);
criterion_main!(benches);
