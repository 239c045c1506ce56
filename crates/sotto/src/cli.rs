//! The command line, declared with clap. Every flag of `serve` also reads a `SOTTO_*`
//! environment variable. Client commands take `--profile` (or `SOTTO_PROFILE`); read
//! commands take `--json`. No flag ever carries a secret: passwords come from standard
//! input (`--password-stdin`) or a prompt on the terminal.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Sotto: self-hosted team chat whose server cannot read encrypted rooms.
#[derive(Parser)]
#[command(name = "sotto", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Administer the workspace: `create-user` works on the server's machine (also while
    /// the server runs); the others go through the API as a logged-in admin.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Log in to a server and keep the session in the profile.
    Login(LoginArgs),
    /// End the session and forget it (and the unlocked keys) here.
    Logout(ProfileArgs),
    /// Show who is logged in on this profile.
    Whoami(ReadArgs),
    /// End-to-end encryption keys: set up, unlock, change the password, reset.
    #[command(subcommand)]
    E2e(E2eCommand),
    /// Show the safety number with a user, mark their key verified or accept its change.
    Verify(VerifyArgs),
    /// Search the plaintext messages of your rooms (encrypted rooms are not searchable
    /// on the server).
    Search(SearchArgs),
    /// Rooms: create, list, members, invite, remove, leave, encryption, key rotation.
    #[command(subcommand)]
    Room(RoomCommand),
    /// Open (or create) the direct message with one or more users.
    Dm(DmArgs),
    /// Send a message (TEXT, or standard input when absent) or a file to a room.
    Send(SendArgs),
    /// Show a room's recent messages, decrypted and verified here.
    Read(ReadRoomArgs),
    /// Save a file attached to a message.
    Download(DownloadArgs),
    /// Export a room's messages, decrypted here, as JSON or PDF.
    Export(ExportArgs),
    /// Chat in a room: an interactive terminal interface, or with --plain a line protocol
    /// for scripts (each input line a message or a slash command, each output line an
    /// event). Slash commands: /otr start|accept|decline|refresh|end, /quit.
    Chat(ChatArgs),
}

/// Which profile directory holds the session, keys and pinned keys.
#[derive(Args, Clone)]
pub(crate) struct ProfileArgs {
    /// Profile directory (default: $XDG_CONFIG_HOME/sotto/default, or
    /// ~/.config/sotto/default).
    #[arg(long, env = "SOTTO_PROFILE", value_name = "DIR")]
    pub(crate) profile: Option<PathBuf>,
}

/// A read command: a profile and `--json`.
#[derive(Args)]
pub(crate) struct ReadArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// Machine-readable output: one JSON value on standard output.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Where secrets come from.
#[derive(Args, Clone, Copy)]
pub(crate) struct SecretArgs {
    /// Read passwords from standard input, one per line, instead of prompting.
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Args)]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// The server's base URL, such as https://chat.example.org.
    #[arg(long, value_name = "URL")]
    pub(crate) server: String,
    /// Login name.
    #[arg(long)]
    pub(crate) username: String,
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
}

#[derive(Subcommand)]
pub(crate) enum E2eCommand {
    /// Whether keys are set up on the server and unlocked here.
    Status(ReadArgs),
    /// Make new keys and an encryption password (printed once: write it down).
    Setup(ProfileArgs),
    /// Unlock the keys on this profile with the encryption password.
    Unlock(SecretCommand),
    /// Change the encryption password (the current one, then the new one).
    ChangePassword(SecretCommand),
    /// Reset the keys, for a lost encryption password (asks for the login password);
    /// contacts are told your key changed.
    Reset(SecretCommand),
}

/// A command that reads passwords.
#[derive(Args)]
pub(crate) struct SecretCommand {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) read: ReadArgs,
    /// The other user's login name.
    pub(crate) user: String,
    /// Mark the key verified: only after comparing the safety number with them in person
    /// or over a channel you trust.
    #[arg(long, conflicts_with = "accept_change")]
    pub(crate) confirm: bool,
    /// Accept the user's changed key (pinned, unverified until you confirm it again).
    #[arg(long)]
    pub(crate) accept_change: bool,
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    #[command(flatten)]
    pub(crate) read: ReadArgs,
    /// Words to find (every word must occur).
    pub(crate) text: String,
    /// Only this room: a name, an id or @user for the direct message with them.
    #[arg(long)]
    pub(crate) room: Option<String>,
    /// How many results, 1–100.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) limit: u32,
}

#[derive(Subcommand)]
pub(crate) enum RoomCommand {
    /// Create a channel (or a team with --team).
    Create(RoomCreateArgs),
    /// Start a discussion in a channel or team.
    Discussion(DiscussionArgs),
    /// The rooms you are in.
    List(ReadArgs),
    /// A room's members, and whether the room's signed state vouches for each.
    Members(RoomReadArgs),
    /// Add someone to a room.
    Invite(RoomUserArgs),
    /// Remove someone from a room (owners).
    Remove(RoomUserArgs),
    /// Leave a room.
    Leave(RoomArgs),
    /// Turn end-to-end encryption on or off (private rooms and direct messages).
    Encryption(EncryptionArgs),
    /// Start a new room key now; members who left never get it.
    RotateKey(RoomArgs),
}

/// A room: a name, an id, or @user for the direct message with them.
#[derive(Args)]
pub(crate) struct RoomArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// A room name, a room id, or @user for the direct message with them.
    pub(crate) room: String,
}

#[derive(Args)]
pub(crate) struct RoomReadArgs {
    #[command(flatten)]
    pub(crate) read: ReadArgs,
    /// A room name, a room id, or @user for the direct message with them.
    pub(crate) room: String,
}

#[derive(Args)]
pub(crate) struct RoomUserArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// A room name, a room id, or @user for the direct message with them.
    pub(crate) room: String,
    /// The user's login name.
    pub(crate) user: String,
}

#[derive(Args)]
pub(crate) struct RoomCreateArgs {
    #[command(flatten)]
    pub(crate) read: ReadArgs,
    /// The room's name.
    pub(crate) name: String,
    /// Members only (encrypted rooms always are).
    #[arg(long)]
    pub(crate) private: bool,
    /// A team instead of a channel.
    #[arg(long)]
    pub(crate) team: bool,
    /// End-to-end encrypted (needs your keys unlocked; makes the room private).
    #[arg(long)]
    pub(crate) encrypted: bool,
    /// First members besides you, by login name: a,b,c.
    #[arg(long, value_delimiter = ',', value_name = "USERS")]
    pub(crate) members: Vec<String>,
}

#[derive(Args)]
pub(crate) struct DiscussionArgs {
    #[command(flatten)]
    pub(crate) read: ReadArgs,
    /// The channel or team it belongs to.
    pub(crate) parent: String,
    /// The discussion's name.
    pub(crate) name: String,
    /// End-to-end encrypted (members only).
    #[arg(long)]
    pub(crate) encrypted: bool,
}

#[derive(Args)]
pub(crate) struct DmArgs {
    #[command(flatten)]
    pub(crate) read: ReadArgs,
    /// The other person's login name, or several (a,b,c) for a group message.
    #[arg(value_delimiter = ',', required = true, value_name = "USER")]
    pub(crate) users: Vec<String>,
    /// End-to-end encrypted when it is created (an existing one is returned as it is).
    #[arg(long)]
    pub(crate) encrypted: bool,
}

/// `on` or `off`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

#[derive(Args)]
pub(crate) struct EncryptionArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// A room name, a room id, or @user for the direct message with them.
    pub(crate) room: String,
    /// `on` or `off`.
    pub(crate) state: OnOff,
}

#[derive(Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(crate) read: ReadArgs,
    /// A room name, a room id, or @user for the direct message with them.
    pub(crate) room: String,
    /// The text (standard input when absent).
    #[arg(conflicts_with = "file")]
    pub(crate) text: Option<String>,
    /// Send this file instead (encrypted first in an encrypted room).
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ReadRoomArgs {
    #[command(flatten)]
    pub(crate) read: ReadArgs,
    /// A room name, a room id, or @user for the direct message with them.
    pub(crate) room: String,
    /// How many of the newest messages, 1–200.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub(crate) limit: u32,
}

#[derive(Args)]
pub(crate) struct DownloadArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// A room name, a room id, or @user for the direct message with them.
    pub(crate) room: String,
    /// The message that carries the file.
    pub(crate) message_id: String,
    /// Where to save it (default: the file's name in the current directory).
    #[arg(long, short, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
}

/// Export formats.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    Json,
    Pdf,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// A room name, a room id, or @user for the direct message with them.
    pub(crate) room: String,
    /// JSON or a readable PDF transcript.
    #[arg(long)]
    pub(crate) format: ExportFormat,
    /// The file to write.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// Only these messages (ids, comma-separated); default: the whole history.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub(crate) messages: Vec<String>,
}

#[derive(Args)]
pub(crate) struct ChatArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// The room: a name, an id or @user for the direct message with them.
    pub(crate) room: String,
    /// Line protocol on standard input and output instead of the terminal interface
    /// (end of input quits). SOTTO_OTR_OFFER_TIMEOUT_MS sets how long an off-the-record
    /// offer waits for an answer (default 30000).
    #[arg(long)]
    pub(crate) plain: bool,
    /// With --plain: one JSON object per output line.
    #[arg(long, requires = "plain")]
    pub(crate) json: bool,
}

/// Where the data lives.
#[derive(Args)]
pub(crate) struct StorageArgs {
    /// Directory for the embedded SQLite database (created if missing).
    #[arg(long, env = "SOTTO_DATA_DIR", default_value = "./sotto-data")]
    pub(crate) data_dir: PathBuf,
    /// Use PostgreSQL instead, e.g. postgres://user@host/sotto.
    #[arg(long, env = "SOTTO_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "SOTTO_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// Public base URL for links the server prints (default: http://<listen>).
    #[arg(long, env = "SOTTO_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Create a user; with --admin, an admin (this also closes the first-admin setup link).
    /// Works directly on the data directory.
    CreateUser(CreateUserArgs),
    /// Workspace settings (through the API).
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// List every user (through the API).
    Users(ReadArgs),
    /// Reset a user's encryption keys, for one who lost their encryption password
    /// (through the API).
    ResetE2e(AdminUserArgs),
    /// Change any room's members without the room's say (through the API).
    #[command(subcommand)]
    Room(AdminRoomCommand),
}

#[derive(Subcommand)]
pub(crate) enum AdminRoomCommand {
    /// Add a user to a room. In an encrypted room the signed state is left as it is:
    /// members see them as added by an administrator and their clients give them no key.
    AddMember(AdminRoomMemberArgs),
    /// Remove a member from a room. In an encrypted room they stay in its signed state
    /// until an owner removes them there too; members are told.
    RemoveMember(AdminRoomMemberArgs),
}

#[derive(Args)]
pub(crate) struct AdminRoomMemberArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// The room: its id, or its name if exactly one room has it (any room, as listed
    /// for admins).
    pub(crate) room: String,
    /// The user's login name.
    pub(crate) user: String,
}

#[derive(Subcommand)]
pub(crate) enum SettingsCommand {
    /// Show every setting, or one.
    Get(SettingsGetArgs),
    /// Change one setting; VALUE is read as JSON when it is a boolean or number, else as
    /// a string.
    Set(SettingsSetArgs),
}

#[derive(Args)]
pub(crate) struct SettingsGetArgs {
    #[command(flatten)]
    pub(crate) read: ReadArgs,
    /// A setting such as e2e.enabled.
    pub(crate) key: Option<String>,
}

#[derive(Args)]
pub(crate) struct SettingsSetArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// A setting such as e2e.enabled.
    pub(crate) key: String,
    /// The new value.
    pub(crate) value: String,
}

#[derive(Args)]
pub(crate) struct AdminUserArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// The user's login name.
    pub(crate) user: String,
}

#[derive(Args)]
pub(crate) struct CreateUserArgs {
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// Login name.
    #[arg(long)]
    pub(crate) username: String,
    /// Read the password from the first line of standard input (required: passwords
    /// never go on the command line, where other users could see them).
    #[arg(long, required = true)]
    pub(crate) password_stdin: bool,
    /// Name shown to others (default: the username).
    #[arg(long)]
    pub(crate) display_name: Option<String>,
    /// Make the user an admin.
    #[arg(long)]
    pub(crate) admin: bool,
}

impl CreateUserArgs {
    pub(crate) fn to_request(&self, password: String) -> sotto_api::CreateUserRequest {
        sotto_api::CreateUserRequest {
            username: self.username.clone(),
            password,
            display_name: self.display_name.clone(),
            admin: self.admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
