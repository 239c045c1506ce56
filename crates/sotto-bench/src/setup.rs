//! Users and rooms for a scenario, made through the admin and rooms API.

use crate::client::Http;
use crate::target::Target;
use anyhow::Context;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A user with a bearer token.
#[derive(Clone)]
pub(crate) struct BenchUser {
    pub(crate) id: String,
    pub(crate) token: String,
}

/// Logins allowed per client address before the server's limiter slows them down
/// (docs/api.md, Limits), with a margin.
const LOGINS_PER_ADDRESS: usize = 25;

/// The loopback address user `i` logs in from, so no address exceeds its login burst.
pub(crate) fn login_address(i: usize) -> IpAddr {
    // 127.2.0.1 onwards: 65,535 addresses, 1.6 million users.
    let k = u32::try_from(i / LOGINS_PER_ADDRESS).expect("fewer than 65,535 addresses");
    IpAddr::V4(Ipv4Addr::from(0x7f02_0001 + k))
}

/// Creates `n` users through `POST /api/v1/admin/users` and logs each in once. Both hash
/// a password on the server (Argon2, tens of milliseconds of CPU), so this is the slow
/// part of setting up.
pub(crate) async fn create_users(target: &Target, n: usize) -> anyhow::Result<Vec<BenchUser>> {
    let http = Arc::new(Http::new(target.http.addr()));
    let gate = Arc::new(Semaphore::new(4));
    let password = format!("bench-{}-pw", target.tag);
    let started = std::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (http, gate, password) = (http.clone(), gate.clone(), password.clone());
        let admin = target.admin_token.clone();
        let username = format!("u{}-{i}", target.tag);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let body = serde_json::to_vec(&json!({"username": username, "password": password}))?;
            let user: sotto_api::User = http
                .call("POST", "/api/v1/admin/users", Some(&admin), Some(body))
                .await?
                .json()
                .with_context(|| format!("creating {username}"))?;
            let body = serde_json::to_vec(&json!({"username": username, "password": password}))?;
            let login: sotto_api::LoginResponse = http
                .call_from(login_address(i), "POST", "/api/v1/login", body)
                .await?
                .json()
                .with_context(|| format!("logging in {username}"))?;
            anyhow::Ok(BenchUser {
                id: user.id,
                token: login.token,
            })
        }));
    }
    let mut users = Vec::with_capacity(n);
    for (i, t) in tasks.into_iter().enumerate() {
        users.push(t.await??);
        if (i + 1) % 500 == 0 {
            eprintln!("  {} users ready", i + 1);
        }
    }
    eprintln!(
        "created and logged in {n} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(users)
}

/// Turns a workspace setting on (`PATCH /api/v1/settings` as the admin).
pub(crate) async fn turn_on(target: &Target, setting: &str) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&serde_json::json!({ setting: true }))?;
    let answer = target
        .http
        .call(
            "PATCH",
            "/api/v1/settings",
            Some(&target.admin_token),
            Some(body),
        )
        .await?;
    if answer.status != 200 {
        anyhow::bail!(
            "turning {setting} on: HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
        );
    }
    Ok(())
}

/// A public channel created by `owner` with `members` added; returns its id.
pub(crate) async fn create_room(
    http: &Http,
    owner: &BenchUser,
    members: &[BenchUser],
    name: &str,
) -> anyhow::Result<String> {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let body = serde_json::to_vec(&json!({"kind": "channel", "name": name, "members": ids}))?;
    let room: sotto_api::Room = http
        .call("POST", "/api/v1/rooms", Some(&owner.token), Some(body))
        .await?
        .json()
        .with_context(|| format!("creating room {name}"))?;
    Ok(room.id)
}

/// Room sizes between `min` and `max` (inclusive) that add up to `users`, from a fixed
/// seed so runs are comparable. The last room takes the remainder, and may be smaller
/// than `min` when fewer users are left.
pub(crate) fn room_sizes(users: usize, min: usize, max: usize, seed: u64) -> Vec<usize> {
    assert!(1 <= min && min <= max);
    let mut state = seed | 1;
    let mut sizes = Vec::new();
    let mut left = users;
    while left > 0 {
        // xorshift64: enough spread for picking sizes.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = min + (state % (max - min + 1) as u64) as usize;
        let size = size.min(left);
        sizes.push(size);
        left -= size;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_sizes_cover_every_user_within_bounds() {
        for users in [1, 4, 10, 97, 2000] {
            let sizes = room_sizes(users, 4, 10, 7);
            assert_eq!(sizes.iter().sum::<usize>(), users);
            let (last, rest) = sizes.split_last().unwrap();
            assert!(rest.iter().all(|s| (4..=10).contains(s)), "{sizes:?}");
            assert!((1..=10).contains(last));
        }
        assert_eq!(room_sizes(2000, 4, 10, 7), room_sizes(2000, 4, 10, 7));
        let sizes = room_sizes(2000, 4, 10, 7);
        assert!(
            sizes.contains(&4) && sizes.contains(&10),
            "both ends are used"
        );
    }

    #[test]
    fn no_login_address_takes_more_than_its_burst() {
        use std::collections::HashMap;
        let mut per: HashMap<IpAddr, usize> = HashMap::new();
        for i in 0..20_000 {
            // 20,000 users: more than one octet's worth of addresses.
            let a = login_address(i);
            assert!(a.is_loopback());
            *per.entry(a).or_default() += 1;
        }
        assert!(per.values().all(|&n| n <= LOGINS_PER_ADDRESS));
        assert_eq!(per.len(), 20_000 / LOGINS_PER_ADDRESS);
    }
}
