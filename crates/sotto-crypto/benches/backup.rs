//! Key backup at the default parameters: unlocking (target 0.1 s to 1 s) and creating.

use criterion::{Criterion, criterion_group, criterion_main};
use sotto_crypto::{EncryptionPassword, IdentityKeys, KdfParams, KeyBackup, UserId, os_rng};
use std::hint::black_box;
use std::time::Duration;

fn backup(c: &mut Criterion) {
    let mut rng = os_rng();
    let keys = IdentityKeys::generate(&mut rng);
    let user = UserId::new("u.bench").expect("valid id");
    let bundle = keys.bundle(&user);
    let password = EncryptionPassword::generate(&mut rng);
    let backup = KeyBackup::create(&keys, &user, &password, KdfParams::DEFAULT, &mut rng)
        .expect("default params");
    let bytes = backup.encode();

    let mut group = c.benchmark_group("backup_default_params");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("open", |b| {
        b.iter(|| {
            let backup = KeyBackup::decode(black_box(&bytes)).expect("well formed");
            backup.open(&password, &user, &bundle).expect("opens")
        })
    });
    group.bench_function("create", |b| {
        b.iter(|| {
            KeyBackup::create(&keys, &user, &password, KdfParams::DEFAULT, &mut rng)
                .expect("default params")
        })
    });
    group.finish();
}

criterion_group!(benches, backup);
criterion_main!(benches);
