//! Speed of message envelopes and file streams.
//!
//! Targets: seal and sign a 1 KiB message ≤ 40 µs; verify and open ≤ 70 µs; file
//! encryption and decryption ≥ 500 MB/s over 16 MiB.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_core::SeedableRng;
use sotto_crypto::envelope::{self, EnvelopeHeader};
use sotto_crypto::file::DEFAULT_CHUNK_SIZE;
use sotto_crypto::{
    DecryptWriter, EncryptWriter, EpochKey, FileKey, IdentityKeys, MessageBody, RoomId, UserId,
};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::io::Write;

fn rng() -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(1)
}

fn envelopes(c: &mut Criterion) {
    let mut rng = rng();
    let keys = IdentityKeys::generate(&mut rng);
    let epoch_key = EpochKey::generate(&mut rng);
    let room = RoomId::new("room").unwrap();
    let alice = UserId::new("alice").unwrap();
    let members: BTreeSet<UserId> = [alice.clone()].into_iter().collect();
    let header = EnvelopeHeader::new(room.clone(), epoch_key.epoch(), alice.clone(), &mut rng);
    // 1 KiB of text; with the other fields it pads to the 2 KiB bucket.
    let body = MessageBody::text(room.clone(), alice, "m".repeat(1024));
    let identity = keys.identity_public();

    let mut g = c.benchmark_group("envelope_1KiB");
    g.bench_function("seal_and_sign", |b| {
        b.iter(|| envelope::seal(black_box(&body), &header, &epoch_key, &keys, &mut rng).unwrap())
    });
    let sealed = envelope::seal(&body, &header, &epoch_key, &keys, &mut rng).unwrap();
    g.bench_function("verify_and_open", |b| {
        b.iter(|| {
            envelope::open(black_box(&sealed), &room, &epoch_key, &identity, &members).unwrap()
        })
    });
    g.finish();
}

fn files(c: &mut Criterion) {
    const SIZE: usize = 16 * 1024 * 1024;
    let mut rng = rng();
    let key = FileKey::generate(&mut rng);
    let data = vec![0x42u8; SIZE];
    let encrypt = |rng: &mut rand_chacha::ChaCha20Rng| {
        let out = Vec::with_capacity(SIZE + SIZE / 1024 + 64);
        let mut w = EncryptWriter::new(out, &key, DEFAULT_CHUNK_SIZE, rng).unwrap();
        w.write_all(&data).unwrap();
        w.finish().unwrap().0
    };
    let blob = encrypt(&mut rng);

    let mut g = c.benchmark_group("file_16MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    g.bench_function("encrypt", |b| b.iter(|| encrypt(&mut rng)));
    g.bench_function("decrypt", |b| {
        b.iter(|| {
            let mut w = DecryptWriter::new(Vec::with_capacity(SIZE), &key);
            w.write_all(black_box(&blob)).unwrap();
            w.finish().unwrap().0
        })
    });
    g.finish();
}

criterion_group!(benches, envelopes, files);
criterion_main!(benches);
