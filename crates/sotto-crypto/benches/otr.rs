//! OTR speed: one message each way with a DH ratchet step, and a full handshake.

use criterion::{Criterion, criterion_group, criterion_main};
use sotto_crypto::otr::Event;
use sotto_crypto::{IdentityKeys, OtrSession, RoomId, UserId, os_rng};
use std::hint::black_box;

fn established() -> (OtrSession, OtrSession) {
    let mut rng = os_rng();
    let (ka, kb) = (
        IdentityKeys::generate(&mut rng),
        IdentityKeys::generate(&mut rng),
    );
    let (ua, ub) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
    let room = RoomId::new("dm").unwrap();
    let (mut a, offer) = OtrSession::offer(&ka, &ua, &kb.bundle(&ub), &room, &mut rng).unwrap();
    let (mut b, accept) =
        OtrSession::accept(&offer, &kb, &ub, &ka.bundle(&ua), &room, &mut rng).unwrap();
    let Event::Established {
        reply: Some(confirm),
    } = a.handle(&accept, &mut rng).unwrap()
    else {
        panic!()
    };
    b.handle(&confirm, &mut rng).unwrap();
    (a, b)
}

fn ratchet(c: &mut Criterion) {
    let (mut a, mut b) = established();
    let mut rng = os_rng();
    // Each direction change makes the receiver take a DH ratchet step.
    c.bench_function("otr message each way (with DH ratchet steps)", |bench| {
        bench.iter(|| {
            let f = a.send_text("a short message").unwrap();
            black_box(b.handle(&f, &mut rng).unwrap());
            let f = b.send_text("and a short answer").unwrap();
            black_box(a.handle(&f, &mut rng).unwrap());
        })
    });
}

fn handshake(c: &mut Criterion) {
    let mut rng = os_rng();
    let (ka, kb) = (
        IdentityKeys::generate(&mut rng),
        IdentityKeys::generate(&mut rng),
    );
    let (ua, ub) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
    let (ba, bb) = (ka.bundle(&ua), kb.bundle(&ub));
    let room = RoomId::new("dm").unwrap();
    c.bench_function("otr full handshake", |bench| {
        bench.iter(|| {
            let (mut a, offer) = OtrSession::offer(&ka, &ua, &bb, &room, &mut rng).unwrap();
            let (mut b, accept) =
                OtrSession::accept(&offer, &kb, &ub, &ba, &room, &mut rng).unwrap();
            let Event::Established {
                reply: Some(confirm),
            } = a.handle(&accept, &mut rng).unwrap()
            else {
                panic!()
            };
            black_box(b.handle(&confirm, &mut rng).unwrap());
        })
    });
}

/// The unit everything above is made of, to read the other numbers against: a
/// message each way costs four of these and two public-key derivations.
fn x25519(c: &mut Criterion) {
    let mut rng = os_rng();
    let secret = x25519_dalek::StaticSecret::random_from_rng(&mut rng);
    let public =
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(&mut rng));
    c.bench_function("x25519 diffie-hellman (reference)", |bench| {
        bench.iter(|| black_box(secret.diffie_hellman(black_box(&public)).to_bytes()))
    });
    c.bench_function("x25519 public key (reference)", |bench| {
        bench.iter(|| black_box(x25519_dalek::PublicKey::from(black_box(&secret)).to_bytes()))
    });
}

criterion_group!(benches, ratchet, handshake, x25519);
criterion_main!(benches);
