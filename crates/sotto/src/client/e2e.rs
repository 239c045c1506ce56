//! `sotto e2e …` (the user's own keys) and `sotto verify USER` (a contact's key).

use super::output::{json_line, sanitize};
use super::prompt::Secrets;
use super::users::resolve_user;
use crate::cli::{ReadArgs, SecretArgs, VerifyArgs};
use sotto_client::sotto_crypto::SafetyNumber;
use sotto_client::{Client, Verification};

/// Whether keys are published and unlocked here.
pub(crate) async fn status(client: Client, args: &ReadArgs) -> anyhow::Result<()> {
    let s = client.e2e_status().await?;
    if args.json {
        return json_line(&serde_json::json!({
            "published": s.published,
            "unlocked": s.unlocked,
            "stale": s.stale,
            "fingerprint": s.fingerprint,
        }));
    }
    let advice = match (s.published, s.unlocked, s.stale) {
        (_, _, true) => {
            "the keys here are no longer the published ones (reset elsewhere): run `sotto e2e unlock`, or `sotto e2e setup` if there are none"
        }
        (false, _, _) => "no keys yet: run `sotto e2e setup`",
        (true, false, _) => "keys exist but are locked on this device: run `sotto e2e unlock`",
        (true, true, _) => "keys set up and unlocked on this device",
    };
    println!("{advice}");
    if let Some(f) = &s.fingerprint {
        println!("your key fingerprint: {}", sanitize(f));
    }
    Ok(())
}

/// Makes keys and prints the encryption password, once.
pub(crate) async fn setup(client: Client) -> anyhow::Result<()> {
    let password = client.e2e_setup().await?;
    // The password alone on standard output (so it can be captured), the advice on
    // standard error; it is printed nowhere else and stored nowhere.
    eprintln!(
        "Encryption keys created. Your encryption password is below. It is shown ONLY NOW:\n\
         write it down and keep it somewhere safe. You need it to unlock your keys on another\n\
         device (`sotto e2e unlock`); nobody, not even an admin, can recover it."
    );
    println!("{}", password.as_str());
    Ok(())
}

/// Unlocks the keys with the encryption password.
pub(crate) async fn unlock(client: Client, secret: SecretArgs) -> anyhow::Result<()> {
    let password = Secrets::new(secret.password_stdin).read("Encryption password: ")?;
    client.e2e_unlock(&password).await?;
    println!("encryption keys unlocked on this device");
    Ok(())
}

/// Changes the encryption password: the current one, then the new one.
pub(crate) async fn change_password(client: Client, secret: SecretArgs) -> anyhow::Result<()> {
    let mut secrets = Secrets::new(secret.password_stdin);
    let old = secrets.read("Current encryption password: ")?;
    let new = secrets.read_new("New encryption password: ")?;
    client.e2e_change_password(&old, &new).await?;
    println!("encryption password changed; other devices stay unlocked");
    Ok(())
}

/// Resets the keys with the login password.
pub(crate) async fn reset(client: Client, secret: SecretArgs) -> anyhow::Result<()> {
    let password = Secrets::new(secret.password_stdin).read("Login password: ")?;
    client.e2e_reset(&password).await?;
    println!(
        "encryption keys reset: your contacts will be warned that your key changed; \
         run `sotto e2e setup` for new keys"
    );
    Ok(())
}

/// Shows the safety number with a user; marks it verified or accepts a changed key.
pub(crate) async fn verify(client: Client, args: &VerifyArgs) -> anyhow::Result<()> {
    let user = resolve_user(&client, &args.user).await?;
    let mut v = client.verification(&user.id).await?;
    if args.accept_change {
        client.accept_key_change(&user.id)?;
        v = client.verification(&user.id).await?;
    }
    if args.confirm {
        client.confirm_verified(&user.id).await?;
        v = client.verification(&user.id).await?;
    }
    let name = sanitize(&user.username);
    if args.read.json {
        return json_line(&serde_json::json!({
            "user_id": user.id.as_str(),
            "username": user.username,
            "safety_number": v.safety_number.to_string(),
            "verified": v.verified,
            "pending_change": v.pending_change.as_ref().map(ToString::to_string),
        }));
    }
    show(&name, &v, args);
    Ok(())
}

fn show(name: &str, v: &Verification, args: &VerifyArgs) {
    if args.accept_change {
        println!("accepted the new key of {name} (not verified)");
    }
    if args.confirm {
        println!("marked the key of {name} verified");
    }
    let state = if v.verified {
        "verified"
    } else {
        "NOT verified"
    };
    println!("Safety number with {name} ({state}):");
    print_number(&v.safety_number);
    if let Some(new) = &v.pending_change {
        println!("The key of {name} CHANGED. The safety number with the new key would be:");
        print_number(new);
        println!("Compare it with {name}, then run `sotto verify {name} --accept-change`.");
    } else if !v.verified {
        println!(
            "Compare it with {name} in person or over a channel you trust; if it matches, \
             run `sotto verify {name} --confirm`."
        );
    }
}

/// 12 groups of 5 digits, four per line.
fn print_number(n: &SafetyNumber) {
    for row in n.groups().chunks(4) {
        println!("    {}", row.join(" "));
    }
}
