//! `sotto admin settings|users|reset-e2e`: workspace administration through the API, as
//! a logged-in admin (the server refuses others with `forbidden`).

use super::output::{json_line, sanitize};
use super::users::resolve_user;
use crate::cli::{AdminUserArgs, ReadArgs, SettingsGetArgs, SettingsSetArgs};
use reqwest::Method;
use serde_json::{Map, Value};
use sotto_client::Client;
use sotto_client::api::seg;
use sotto_client::sotto_api::UserList;

const SETTINGS: &str = "/api/v1/settings";

/// Every setting, or one.
pub(crate) async fn settings_get(client: Client, args: &SettingsGetArgs) -> anyhow::Result<()> {
    let all: Map<String, Value> = client.api().get(SETTINGS).await?;
    let shown = match &args.key {
        None => all,
        Some(key) => {
            let value = all
                .get(key)
                .ok_or_else(|| anyhow::anyhow!("no setting {}", sanitize(key)))?;
            Map::from_iter([(key.clone(), value.clone())])
        }
    };
    if args.read.json {
        return json_line(&shown);
    }
    for (key, value) in &shown {
        println!("{} = {}", sanitize(key), sanitize(&value.to_string()));
    }
    Ok(())
}

/// Changes one setting.
pub(crate) async fn settings_set(client: Client, args: &SettingsSetArgs) -> anyhow::Result<()> {
    let value = parse_value(&args.value);
    let patch = Map::from_iter([(args.key.clone(), value.clone())]);
    let _: Value = client
        .api()
        .send(Method::PATCH, SETTINGS, &Value::Object(patch))
        .await?;
    println!("{} = {}", sanitize(&args.key), sanitize(&value.to_string()));
    Ok(())
}

/// A value from the command line: a JSON boolean or number as such, anything else as a
/// string (so `sotto admin settings set x hello` needs no quotes).
fn parse_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::Bool(_) | Value::Number(_))) => v,
        _ => Value::String(text.to_owned()),
    }
}

/// Every user.
pub(crate) async fn users(client: Client, args: &ReadArgs) -> anyhow::Result<()> {
    let list: UserList = client.api().get("/api/v1/admin/users").await?;
    for u in &list.users {
        if args.json {
            json_line(u)?;
            continue;
        }
        let mut flags = Vec::new();
        if u.admin {
            flags.push("admin");
        }
        if u.deactivated {
            flags.push("deactivated");
        }
        println!(
            "{}\t{}\t{}\t{}",
            sanitize(&u.username),
            sanitize(&u.display_name),
            sanitize(&u.id),
            flags.join(",")
        );
    }
    Ok(())
}

/// Resets a user's encryption keys.
pub(crate) async fn reset_e2e(client: Client, args: &AdminUserArgs) -> anyhow::Result<()> {
    let user = resolve_user(&client, &args.user).await?;
    let path = format!("/api/v1/admin/users/{}/keys/reset", seg(user.id.as_str()));
    client
        .api()
        .send_empty::<()>(Method::POST, &path, None)
        .await?;
    println!(
        "reset the encryption keys of {}; their password logins ended: they log in again and \
         run `sotto e2e setup`",
        sanitize(&user.username)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_value;
    use serde_json::json;

    #[test]
    fn values_are_json_scalars_or_strings() {
        assert_eq!(parse_value("true"), json!(true));
        assert_eq!(parse_value("1048576"), json!(1_048_576));
        assert_eq!(parse_value("hello"), json!("hello"));
        assert_eq!(parse_value("\"quoted\""), json!("\"quoted\""));
        assert_eq!(parse_value("[1]"), json!("[1]"));
    }
}
