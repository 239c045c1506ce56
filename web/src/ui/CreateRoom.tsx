// Creating rooms (C3, E4, E5): channels and teams (Encrypted under Advanced settings),
// discussions (their own Encrypted toggle) and direct messages.

import { useId, useState } from "preact/hooks";
import { ApiError } from "../api/http";
import type { Room } from "../api/types";
import type { Workspace } from "../state/workspace";
import { useAction, useEmitter } from "./hooks";
import { Dialog, ErrorText, Field, Icon, TextInput, Toggle, DialogActions } from "./kit";
import "./pages.css";

/** The usernames in a comma (or space) separated list, without `@`, duplicates or oneself. */
export function parseUsernames(text: string, me: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const raw of text.split(/[,;\s]+/)) {
    const name = raw.trim().replace(/^@/, "");
    const key = name.toLowerCase();
    if (!name || key === me.toLowerCase() || seen.has(key)) continue;
    seen.add(key);
    out.push(name);
  }
  return out;
}

/** Resolves usernames to user ids; every unknown name is reported, by name, at once. */
export async function resolveUsernames(ws: Workspace, names: string[]): Promise<string[]> {
  const found = await Promise.allSettled(names.map((n) => ws.lookupUser(n)));
  const unknown: string[] = [];
  const ids: string[] = [];
  found.forEach((r, i) => {
    if (r.status === "fulfilled") ids.push(r.value.id);
    else if (r.reason instanceof ApiError && r.reason.code === "not_found") unknown.push(names[i] ?? "");
    else throw r.reason;
  });
  if (unknown.length === 1) throw new Error(`There is no user called “${unknown[0]}”.`);
  if (unknown.length > 1) throw new Error(`There are no users called ${unknown.map((n) => `“${n}”`).join(", ")}.`);
  return ids;
}

function e2eEnabled(ws: Workspace): boolean {
  return !!ws.settings?.["e2e.enabled"] && ws.e2e.unlocked;
}

/** Why the Encrypted toggle is off-limits: encryption off, or this session's keys not unlocked. */
function e2eOffHint(ws: Workspace): string {
  if (!ws.settings?.["e2e.enabled"]) return E2E_OFF_HINT;
  return ws.e2e.status === "setup_needed" ? "Save your encryption password first (the banner at the top)." : "Enter your E2EE password first (the banner at the top).";
}

const E2E_OFF_HINT = "End-to-end encryption is turned off in this workspace. An administrator can turn it on in Administration.";

function checkName(name: string): string {
  const n = name.trim();
  if (!n) throw new Error("Enter a name.");
  if ([...n].length > 64) throw new Error("The name can have at most 64 characters.");
  return n;
}

function MembersField(props: { value: string; onInput: (v: string) => void; hint?: string }) {
  return <TextInput label="Members" value={props.value} onInput={props.onInput} autoComplete="off" placeholder="alice, bob" hint={props.hint ?? "Usernames, separated by commas. You can invite more people later."} />;
}

// --- channels and teams ---

export function CreateRoomDialog(props: { ws: Workspace; kind: "channel" | "team"; onClose: () => void; onCreated: (room: Room) => void }) {
  const { ws } = props;
  useEmitter(ws);
  const formId = useId();
  const noun = props.kind === "channel" ? "channel" : "team";
  const [name, setName] = useState("");
  const [topic, setTopic] = useState("");
  const [members, setMembers] = useState("");
  const [priv, setPriv] = useState(true);
  const [encryptedChoice, setEncrypted] = useState(ws.settings?.["e2e.default_private"] === true);
  const canEncrypt = priv && e2eEnabled(ws);
  const encrypted = canEncrypt && encryptedChoice;
  const create = useAction(async () => {
    const n = checkName(name);
    if ([...topic.trim()].length > 250) throw new Error("The topic can have at most 250 characters.");
    const ids = await resolveUsernames(ws, parseUsernames(members, ws.me.username));
    const room = await ws.createRoom({
      kind: props.kind,
      name: n,
      ...(topic.trim() ? { topic: topic.trim() } : {}),
      private: priv,
      members: ids,
      ...(encrypted ? { encrypted: true } : {}),
    });
    props.onCreated(room);
  });
  const encryptHint = !e2eEnabled(ws) ? e2eOffHint(ws) : !priv ? `Only private ${noun}s can be encrypted: turn on Private first.` : "Messages and files are encrypted on members' devices; the server cannot read them, and they don't appear in search.";

  return (
    <Dialog title={props.kind === "channel" ? "Create Channel" : "Create Team"} onClose={props.onClose} footer={<DialogActions onCancel={props.onClose} label="Create" busyLabel="Creating…" busy={create.busy} form={formId} />}>
      <form
        id={formId}
        class="dialog-form"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <TextInput label="Name" value={name} onInput={setName} autoFocus required autoComplete="off" placeholder={props.kind === "channel" ? "e.g. design-reviews" : "e.g. Platform team"} />
        <TextInput label="Topic" value={topic} onInput={setTopic} autoComplete="off" hint="Optional: what this room is about." />
        <MembersField value={members} onInput={setMembers} />
        <Toggle label="Private" hint={priv ? "Only invited people can join." : `Anyone in the workspace can find and join this ${noun}.`} checked={priv} onChange={setPriv} />
        <details class="advanced">
          <summary>Advanced settings</summary>
          <div class="advanced-body">
            <Toggle label="Encrypted" hint={encryptHint} checked={encrypted} disabled={!canEncrypt} onChange={setEncrypted} />
          </div>
        </details>
        {encrypted && (
          <p class="callout">
            <Icon name="key" />
            <span>This {noun} will be end-to-end encrypted.</span>
          </p>
        )}
        <ErrorText error={create.error} />
      </form>
    </Dialog>
  );
}

// --- discussions ---

export function CreateDiscussionDialog(props: { ws: Workspace; parentId?: string; onClose: () => void; onCreated: (room: Room) => void }) {
  const { ws } = props;
  useEmitter(ws);
  const formId = useId();
  const parents = [...ws.rooms.values()].filter((r) => r.kind === "channel" || r.kind === "team").sort((a, b) => ws.roomTitle(a).localeCompare(ws.roomTitle(b)));
  const initial = parents.find((r) => r.id === props.parentId) ?? parents[0];
  const [parentId, setParentId] = useState<string>(initial?.id ?? "");
  const [name, setName] = useState("");
  const [members, setMembers] = useState("");
  const preset = (r: Room | undefined) => e2eEnabled(ws) && r !== undefined && (r.encrypted || (r.private && ws.settings?.["e2e.default_private"] === true));
  const [encryptedChoice, setEncrypted] = useState(preset(initial));
  const [touched, setTouched] = useState(false);
  const parent = ws.rooms.get(parentId);
  const canEncrypt = e2eEnabled(ws);
  const encrypted = canEncrypt && encryptedChoice;
  const create = useAction(async () => {
    if (!parent) throw new Error("Choose the channel or team the discussion belongs to.");
    const n = checkName(name);
    const ids = await resolveUsernames(ws, parseUsernames(members, ws.me.username));
    const room = await ws.createRoom({ kind: "discussion", parent_id: parent.id, name: n, members: ids, ...(encrypted ? { encrypted: true } : {}) });
    props.onCreated(room);
  });
  const encryptHint = !canEncrypt ? e2eOffHint(ws) : "An encrypted discussion is private: only its members can see it, even in a public channel.";

  return (
    <Dialog title="Create Discussion" onClose={props.onClose} footer={<DialogActions onCancel={props.onClose} label="Create" busyLabel="Creating…" busy={create.busy} form={formId} disabled={parents.length === 0} />}>
      <form
        id={formId}
        class="dialog-form"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <p class="section-lead">A discussion is a side conversation on one subject, inside a channel or team.</p>
        {parents.length === 0 ? (
          <p class="empty-state">Join or create a channel or team first: a discussion belongs to one.</p>
        ) : (
          <Field label="Parent channel or team">
            {(id) => (
              <select
                id={id}
                value={parentId}
                onChange={(e) => {
                  const next = e.currentTarget.value;
                  setParentId(next);
                  if (!touched) setEncrypted(preset(ws.rooms.get(next)));
                }}
              >
                {parents.map((r) => (
                  <option key={r.id} value={r.id}>
                    {ws.roomTitle(r)}
                    {r.kind === "team" ? " (team)" : ""}
                    {r.private ? " · private" : ""}
                  </option>
                ))}
              </select>
            )}
          </Field>
        )}
        <TextInput label="Name" value={name} onInput={setName} autoFocus required autoComplete="off" placeholder="e.g. Release 2.4 planning" />
        <MembersField value={members} onInput={setMembers} />
        <Toggle
          label="Encrypted"
          hint={encryptHint}
          checked={encrypted}
          disabled={!canEncrypt}
          onChange={(v) => {
            setTouched(true);
            setEncrypted(v);
          }}
        />
        <ErrorText error={create.error} />
      </form>
    </Dialog>
  );
}

// --- direct messages ---

export function DirectMessageDialog(props: { ws: Workspace; onClose: () => void; onCreated: (room: Room) => void }) {
  const { ws } = props;
  useEmitter(ws);
  const formId = useId();
  const [people, setPeople] = useState("");
  const [encryptedChoice, setEncrypted] = useState(ws.settings?.["e2e.default_direct"] === true);
  const canEncrypt = e2eEnabled(ws);
  const encrypted = canEncrypt && encryptedChoice;
  const max = ws.settings?.["rooms.max_group_dm_members"] ?? 30;
  const create = useAction(async () => {
    const names = parseUsernames(people, ws.me.username);
    if (names.length === 0) throw new Error("Enter the username of the person to write to (not your own).");
    if (names.length + 1 > max) throw new Error(`A group direct message can have at most ${max} people, you included.`);
    // Report every unknown name at once, before the conversation is opened.
    await resolveUsernames(ws, names);
    const room = await ws.openDirect(names, encrypted);
    props.onCreated(room);
  });

  return (
    <Dialog title="Direct message" onClose={props.onClose} footer={<DialogActions onCancel={props.onClose} label="Create" busyLabel="Creating…" busy={create.busy} form={formId} />}>
      <form
        id={formId}
        class="dialog-form"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <TextInput label="Usernames" value={people} onInput={setPeople} autoFocus required autoComplete="off" placeholder="alice, bob" hint={`One username, or several separated by commas for a group message (up to ${max} people, you included).`} />
        <Toggle label="Encrypted" hint={canEncrypt ? "Only the people in the conversation can read its messages; the server cannot." : e2eOffHint(ws)} checked={encrypted} disabled={!canEncrypt} onChange={setEncrypted} />
        <ErrorText error={create.error} />
      </form>
    </Dialog>
  );
}
