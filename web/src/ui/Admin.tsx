// Administration (C2, E1, O1): workspace settings, user management and room membership, for
// admins.

import { useEffect, useId, useRef, useState } from "preact/hooks";
import type { Settings, User } from "../api/types";
import type { Workspace } from "../state/workspace";
import { useAction, useEmitter } from "./hooks";
import { Dialog, ErrorText, Field, Icon, Menu, TextInput, Toggle, DialogActions } from "./kit";
import { RoomsSection } from "./AdminRooms";
import "./pages.css";

const MIB = 1024 * 1024;
/** The server's ceiling for `files.max_size_bytes`: 10 GiB. */
const MAX_FILE_MIB = 10 * 1024;

export function AdminPage(props: { ws: Workspace }) {
  const { ws } = props;
  useEmitter(ws);
  const titleId = useId();
  if (!ws.me.admin) {
    return (
      <main class="page" aria-labelledby={titleId}>
        <h1 id={titleId}>Administration</h1>
        <p class="page-lead">Only workspace administrators can open this page.</p>
      </main>
    );
  }
  return (
    <main class="page" aria-labelledby={titleId}>
      <header class="page-head">
        <h1 id={titleId}>Administration</h1>
        <p class="page-lead">Workspace settings, the people who use this workspace, and its rooms' members.</p>
      </header>
      <SettingsSection ws={ws} />
      <UsersSection ws={ws} />
      <RoomsSection ws={ws} />
    </main>
  );
}

// --- settings ---

interface Draft {
  e2e: boolean;
  defaultDirect: boolean;
  defaultPrivate: boolean;
  encryptFiles: boolean;
  otr: boolean;
  maxFileMib: string;
  maxGroupDm: string;
}

function draftOf(s: Settings): Draft {
  return {
    e2e: s["e2e.enabled"],
    defaultDirect: s["e2e.default_direct"],
    defaultPrivate: s["e2e.default_private"],
    encryptFiles: s["e2e.encrypt_files"],
    otr: s["otr.enabled"],
    maxFileMib: formatMib(s["files.max_size_bytes"]),
    maxGroupDm: String(s["rooms.max_group_dm_members"]),
  };
}

function formatMib(bytes: number): string {
  const mib = bytes / MIB;
  return Number.isInteger(mib) ? String(mib) : String(Math.round(mib * 1000) / 1000);
}

/** The settings the draft changes, or a message saying which field is wrong. */
function patchOf(d: Draft, s: Settings): { patch: Partial<Settings> } | { error: string } {
  const mib = Number(d.maxFileMib.trim());
  if (d.maxFileMib.trim() === "" || !Number.isFinite(mib) || mib <= 0 || mib > MAX_FILE_MIB) {
    return { error: `Max file size: enter a number of MiB greater than 0 and at most ${MAX_FILE_MIB} (10 GiB).` };
  }
  const members = Number(d.maxGroupDm.trim());
  if (d.maxGroupDm.trim() === "" || !Number.isInteger(members) || members < 3 || members > 100) {
    return { error: "Max group DM members: enter a whole number from 3 to 100." };
  }
  const next: Settings = {
    "e2e.enabled": d.e2e,
    "e2e.default_direct": d.defaultDirect,
    "e2e.default_private": d.defaultPrivate,
    "e2e.encrypt_files": d.encryptFiles,
    "otr.enabled": d.otr,
    // An unchanged field keeps the exact stored byte count (MiB may be rounded for display).
    "files.max_size_bytes": d.maxFileMib.trim() === formatMib(s["files.max_size_bytes"]) ? s["files.max_size_bytes"] : Math.max(1, Math.round(mib * MIB)),
    "rooms.max_group_dm_members": members,
  };
  const patch: Partial<Settings> = {};
  for (const key of Object.keys(next) as (keyof Settings)[]) {
    if (next[key] !== s[key]) Object.assign(patch, { [key]: next[key] });
  }
  return { patch };
}

function SettingsSection(props: { ws: Workspace }) {
  const { ws } = props;
  const headId = useId();
  const [draft, setDraft] = useState<Draft | null>(ws.settings ? draftOf(ws.settings) : null);
  const [status, setStatus] = useState<string | null>(null);
  // Set once the admin changes a field: the fresh copy loaded on opening then no longer
  // replaces the draft (a toggle clicked before it arrived would silently flip back).
  const edited = useRef(false);
  const load = useAction(async () => {
    const s = await ws.reloadSettings();
    if (!edited.current) setDraft(draftOf(s));
  });
  const save = useAction(async (d: Draft) => {
    const current = ws.settings ?? (await ws.reloadSettings());
    const p = patchOf(d, current);
    if ("error" in p) throw new Error(p.error);
    if (Object.keys(p.patch).length === 0) {
      setStatus("Nothing to save: the settings are unchanged.");
      return;
    }
    const s = await ws.updateSettings(p.patch);
    setDraft(draftOf(s));
    setStatus("Settings saved.");
  });
  useEffect(() => {
    void load.run();
  }, []);

  const set = (change: Partial<Draft>) => {
    if (!draft) return;
    edited.current = true;
    setDraft({ ...draft, ...change });
    setStatus(null);
  };

  return (
    <section class="page-section" aria-labelledby={headId}>
      <div class="section-head">
        <h2 id={headId}>Settings</h2>
      </div>
      {!draft ? (
        <>
          <ErrorText error={load.error} />
          {load.busy && <p class="muted-text">Loading settings…</p>}
        </>
      ) : (
        <form
          class="settings-form"
          onSubmit={(e) => {
            e.preventDefault();
            setStatus(null);
            void save.run(draft);
          }}
        >
          <fieldset class="settings-group">
            <legend>End-to-end encryption</legend>
            <Toggle label="Enable E2E encryption" hint="People can then set up keys and create encrypted direct messages, private channels, private teams and discussions." checked={draft.e2e} onChange={(v) => set({ e2e: v })} />
            {draft.e2e && (
              <p class="callout">
                <Icon name="warning" />
                <span>Encrypted messages do not appear in search results and cannot be audited, and bots can read them only if they hold encryption keys.</span>
              </p>
            )}
            <Toggle label="Encrypt new direct messages by default" hint="Presets the Encrypted option when someone starts a direct message." checked={draft.defaultDirect} onChange={(v) => set({ defaultDirect: v })} />
            <Toggle label="Encrypt new private rooms by default" hint="Presets the Encrypted option when someone creates a private channel or team." checked={draft.defaultPrivate} onChange={(v) => set({ defaultPrivate: v })} />
            <Toggle label="Encrypt files in encrypted rooms" hint="Files posted in encrypted rooms are encrypted before they are uploaded, name and type included." checked={draft.encryptFiles} onChange={(v) => set({ encryptFiles: v })} />
          </fieldset>
          <fieldset class="settings-group">
            <legend>Off-the-record</legend>
            <Toggle label="Enable Off-the-record (OTR)" hint="Offers OTR in two-person direct messages: messages travel only between the two browsers and are never stored. When off, OTR appears nowhere." checked={draft.otr} onChange={(v) => set({ otr: v })} />
          </fieldset>
          <fieldset class="settings-group">
            <legend>Limits</legend>
            <div class="settings-numbers">
              <NumberField label="Max file size (MiB)" hint={`Largest file people can upload, up to ${MAX_FILE_MIB} MiB (10 GiB).`} value={draft.maxFileMib} min={0} max={MAX_FILE_MIB} step="any" onInput={(v) => set({ maxFileMib: v })} />
              <NumberField label="Max group DM members" hint="Most people in a group direct message, its creator included: 3 to 100." value={draft.maxGroupDm} min={3} max={100} step="1" onInput={(v) => set({ maxGroupDm: v })} />
            </div>
          </fieldset>
          <ErrorText error={save.error} />
          <div class="form-actions">
            <button type="submit" class="button primary" disabled={save.busy}>
              {save.busy ? "Saving…" : "Save changes"}
            </button>
            <p class="status-text" role="status">
              {status}
            </p>
          </div>
        </form>
      )}
    </section>
  );
}

function NumberField(props: { label: string; hint: string; value: string; min: number; max: number; step: string; onInput: (v: string) => void }) {
  return (
    <Field label={props.label} hint={props.hint}>
      {(id, describedBy) => <input id={id} type="number" inputMode="decimal" min={props.min} max={props.max} step={props.step} value={props.value} aria-describedby={describedBy} onInput={(e) => props.onInput(e.currentTarget.value)} />}
    </Field>
  );
}

// --- users ---

type UserDialog = { kind: "create" } | { kind: "password"; user: User } | { kind: "keys"; user: User } | { kind: "deactivate"; user: User };

function UsersSection(props: { ws: Workspace }) {
  const { ws } = props;
  const headId = useId();
  const [users, setUsers] = useState<User[] | null>(null);
  const [dialog, setDialog] = useState<UserDialog | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const load = useAction(async () => setUsers(await ws.adminUsers()));
  const reactivate = useAction(async (u: User) => {
    const updated = await ws.adminSetDeactivated(u.id, false);
    replace(updated);
    setStatus(`${updated.username} was reactivated.`);
  });
  useEffect(() => {
    void load.run();
  }, []);

  const replace = (u: User) => setUsers((list) => (list ?? []).map((x) => (x.id === u.id ? u : x)));
  const done = (message: string) => {
    setDialog(null);
    setStatus(message);
  };

  const actions = (u: User) => {
    const items: { label: string; onSelect: () => void; danger?: boolean }[] = [];
    if (u.deactivated) {
      items.push({
        label: "Reactivate",
        onSelect: () => {
          setStatus(null);
          void reactivate.run(u);
        },
      });
    } else if (u.id !== ws.me.id) {
      items.push({ label: "Deactivate", onSelect: () => (setStatus(null), setDialog({ kind: "deactivate", user: u })), danger: true });
    }
    items.push({ label: "Reset password", onSelect: () => (setStatus(null), setDialog({ kind: "password", user: u })) });
    items.push({ label: "Reset E2E key", onSelect: () => (setStatus(null), setDialog({ kind: "keys", user: u })), danger: true });
    return items;
  };

  return (
    <section class="page-section" aria-labelledby={headId}>
      <div class="section-head">
        <h2 id={headId}>Users</h2>
        <button type="button" class="button primary" onClick={() => (setStatus(null), setDialog({ kind: "create" }))}>
          <Icon name="plus" /> Create user
        </button>
      </div>
      <ErrorText error={load.error ?? reactivate.error} />
      <p class="status-text" role="status">
        {status}
      </p>
      {users === null ? (
        load.busy && <p class="muted-text">Loading users…</p>
      ) : users.length === 0 ? (
        <p class="empty-state">No users yet.</p>
      ) : (
        <table class="data-table users-table">
          <caption class="visually-hidden">Users of this workspace</caption>
          <thead>
            <tr>
              <th scope="col">Username</th>
              <th scope="col">Display name</th>
              <th scope="col">Admin</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.id} class={u.deactivated ? "is-inactive" : undefined}>
                <td data-label="Username" class="cell-primary">
                  {u.username}
                  {u.id === ws.me.id && <span class="pill">You</span>}
                </td>
                <td data-label="Display name">{u.display_name}</td>
                <td data-label="Admin">{u.admin ? <span class="pill accent">Admin</span> : <span class="muted-text">No</span>}</td>
                <td data-label="Status">{u.deactivated ? <span class="pill danger">Deactivated</span> : <span class="pill ok">Active</span>}</td>
                <td class="cell-actions">
                  <Menu label={`Actions for ${u.username}`} icon="kebab" items={actions(u)} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {dialog?.kind === "create" && (
        <CreateUserDialog
          ws={ws}
          onClose={() => setDialog(null)}
          onCreated={(u) => {
            setUsers((list) => [...(list ?? []), u]);
            done(`${u.username} was created.`);
          }}
        />
      )}
      {dialog?.kind === "deactivate" && (
        <DeactivateDialog
          ws={ws}
          user={dialog.user}
          onClose={() => setDialog(null)}
          onDone={(u) => {
            replace(u);
            done(`${u.username} was deactivated.`);
          }}
        />
      )}
      {dialog?.kind === "password" && <ResetPasswordDialog ws={ws} user={dialog.user} onClose={() => setDialog(null)} onDone={() => done(`The password of ${dialog.user.username} was reset.`)} />}
      {dialog?.kind === "keys" && <ResetKeysDialog ws={ws} user={dialog.user} onClose={() => setDialog(null)} onDone={() => done(`The E2E key of ${dialog.user.username} was reset.`)} />}
    </section>
  );
}

function CreateUserDialog(props: { ws: Workspace; onClose: () => void; onCreated: (u: User) => void }) {
  const formId = useId();
  const [username, setUsername] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [password, setPassword] = useState("");
  const [admin, setAdmin] = useState(false);
  const create = useAction(async () => {
    if (!username.trim()) throw new Error("Enter a username.");
    if (password.length < 8) throw new Error("The password needs at least 8 characters.");
    const u = await props.ws.adminCreateUser({ username: username.trim(), password, display_name: displayName.trim() || null, admin });
    props.onCreated(u);
  });
  return (
    <Dialog
      title="Create user"
      onClose={props.onClose}
      footer={
        <DialogActions onCancel={props.onClose} label="Create user" busyLabel="Creating…" busy={create.busy} form={formId} />
      }
    >
      <form
        id={formId}
        class="dialog-form"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <TextInput label="Username" value={username} onInput={setUsername} autoFocus autoComplete="off" required hint="3–32 letters, digits, dots, dashes or underscores; used to log in." />
        <TextInput label="Display name" value={displayName} onInput={setDisplayName} autoComplete="off" hint="The name others see. Leave empty to use the username." />
        <TextInput label="Password" type="password" value={password} onInput={setPassword} autoComplete="new-password" required hint="At least 8 characters. Give it to the person, who logs in with it." />
        <Toggle label="Administrator" hint="Administrators change workspace settings and manage users." checked={admin} onChange={setAdmin} />
        <ErrorText error={create.error} />
      </form>
    </Dialog>
  );
}

function DeactivateDialog(props: { ws: Workspace; user: User; onClose: () => void; onDone: (u: User) => void }) {
  const run = useAction(async () => props.onDone(await props.ws.adminSetDeactivated(props.user.id, true)));
  return (
    <Dialog
      title={`Deactivate ${props.user.username}?`}
      onClose={props.onClose}
      footer={
        <DialogActions onCancel={props.onClose} label="Deactivate" busyLabel="Deactivating…" busy={run.busy} danger onAct={() => void run.run()} />
      }
    >
      <p>
        {props.user.display_name} ({props.user.username}) will no longer be able to log in. Their sessions and personal access tokens stop working at once. Their messages stay, and you can reactivate the account later.
      </p>
      <ErrorText error={run.error} />
    </Dialog>
  );
}

function ResetPasswordDialog(props: { ws: Workspace; user: User; onClose: () => void; onDone: () => void }) {
  const formId = useId();
  const [password, setPassword] = useState("");
  const run = useAction(async () => {
    if (password.length < 8) throw new Error("The password needs at least 8 characters.");
    await props.ws.adminResetPassword(props.user.id, password);
    props.onDone();
  });
  return (
    <Dialog
      title={`Reset password for ${props.user.username}`}
      onClose={props.onClose}
      footer={
        <DialogActions onCancel={props.onClose} label="Reset password" busyLabel="Resetting…" busy={run.busy} form={formId} />
      }
    >
      <form
        id={formId}
        class="dialog-form"
        onSubmit={(e) => {
          e.preventDefault();
          void run.run();
        }}
      >
        <p>Their password logins end; they log in again with the new password. Personal access tokens keep working. Their encryption password does not change.</p>
        <TextInput label="New password" type="password" value={password} onInput={setPassword} autoFocus autoComplete="new-password" required hint="At least 8 characters." />
        <ErrorText error={run.error} />
      </form>
    </Dialog>
  );
}

function ResetKeysDialog(props: { ws: Workspace; user: User; onClose: () => void; onDone: () => void }) {
  const run = useAction(async () => {
    await props.ws.adminResetKeys(props.user.id);
    props.onDone();
  });
  const name = props.user.username;
  return (
    <Dialog
      title={`Reset E2E key for ${name}?`}
      onClose={props.onClose}
      footer={
        <DialogActions onCancel={props.onClose} label="Reset E2E key" busyLabel="Resetting…" busy={run.busy} danger onAct={() => void run.run()} />
      }
    >
      <p>Do this when {name} has lost their encryption password. Their current keys are deleted, which cannot be undone:</p>
      <ul class="consequences">
        <li>{name} must set up new keys, with a new encryption password, the next time they log in.</li>
        <li>All their login sessions end: they have to log in again. Personal access tokens keep working.</li>
        <li>Members of their encrypted rooms must re-share the room keys with them. Their apps do it automatically while online; until then those rooms stay locked for {name}.</li>
        <li>People who talk to {name} see a warning that their key changed.</li>
      </ul>
      <ErrorText error={run.error} />
    </Dialog>
  );
}
