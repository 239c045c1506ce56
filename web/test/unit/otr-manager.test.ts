// Two browser tabs' OTR managers talking through an in-memory relay that behaves like
// the server's (docs/api.md, Off the record): frames go to the other person's live
// connection, an offline peer is refused with `peer_offline`. The key directory is an
// in-memory stand-in for the server's /api/v1/me/keys and /api/v1/keys endpoints; the
// Workspaces, their E2e state and the OtrManagers are the real ones. Web Storage is
// provided in memory, as Node has none.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Http } from "../../src/api/http";
import type { Member, Room, ServerFrame, Settings, User } from "../../src/api/types";
import { FILE_REFUSAL, OtrManager, type OtrPhase, isOtrMessageId, refuseOtrMessageId } from "../../src/state/otr";
import { Workspace } from "../../src/state/workspace";

// --- the browser pieces Node lacks ---

class MemoryStorage {
  private items = new Map<string, string>();
  get length(): number {
    return this.items.size;
  }
  key(i: number): string | null {
    return [...this.items.keys()][i] ?? null;
  }
  getItem(k: string): string | null {
    return this.items.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.items.set(k, String(v));
  }
  removeItem(k: string): void {
    this.items.delete(k);
  }
  clear(): void {
    this.items.clear();
  }
  values(): string[] {
    return [...this.items.values()];
  }
}

const local = new MemoryStorage();
const session = new MemoryStorage();
Object.assign(globalThis, { localStorage: local, sessionStorage: session });

// --- the server's key directory, in memory ---

const tokens = new Map<string, string>();
const bundles = new Map<string, string>();
const backups = new Map<string, string>();

function json(status: number, body: unknown): Response {
  return new Response(body === null ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

globalThis.fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const url = new URL(String(input), "http://sotto.test");
  const auth = new Headers(init?.headers).get("Authorization") ?? "";
  const me = tokens.get(auth.replace(/^Bearer /, ""));
  if (!me) return json(401, { error: { code: "unauthorized", message: "no" } });
  const method = init?.method ?? "GET";
  if (method === "POST" && url.pathname === "/api/v1/me/keys") {
    const body = JSON.parse(String(init?.body)) as { bundle: string; backup: string };
    bundles.set(me, body.bundle);
    backups.set(me, body.backup);
    return new Response(null, { status: 204 });
  }
  if (method === "GET" && url.pathname === "/api/v1/me/keys") return json(200, { published: bundles.has(me), bundle: bundles.get(me) ?? null });
  if (method === "GET" && url.pathname === "/api/v1/me/keys/backup") return json(200, { backup: backups.get(me) });
  if (method === "GET" && url.pathname === "/api/v1/keys") {
    const ids = (url.searchParams.get("user_ids") ?? "").split(",");
    return json(200, { bundles: ids.filter((u) => bundles.has(u)).map((u) => ({ user_id: u, bundle: bundles.get(u) })) });
  }
  return json(404, { error: { code: "not_found", message: `${method} ${url.pathname}` } });
};

// --- the relay ---

interface Tab {
  user: User;
  ws: Workspace;
  otr: OtrManager;
}

const settings: Settings = {
  "e2e.enabled": true,
  "e2e.default_direct": false,
  "e2e.default_private": false,
  "e2e.encrypt_files": true,
  "otr.enabled": true,
  "files.max_size_bytes": 1 << 20,
  "rooms.max_group_dm_members": 8,
};

class Relay {
  readonly tabs = new Map<string, Tab>();
  readonly offline = new Set<string>();
  frames: { from: string; kind: number }[] = [];

  connect(tab: Tab): void {
    this.tabs.set(tab.user.id, tab);
    tab.ws.sendFrame = (f: object) => {
      const frame = f as { type: string; id: string; room_id: string; frame: string };
      assert.equal(frame.type, "otr");
      assert.match(frame.id, /^[A-Za-z0-9._:-]{1,64}$/);
      const members = tab.ws.members.get(frame.room_id) ?? [];
      const peer = members.find((m) => m.user_id !== tab.user.id)?.user_id;
      const to = peer ? this.tabs.get(peer) : undefined;
      this.frames.push({ from: tab.user.id, kind: Buffer.from(frame.frame, "base64")[1]! });
      setImmediate(() => {
        if (!to || this.offline.has(to.user.id)) {
          tab.otr.onNotice({ type: "otr_error", id: frame.id, code: "peer_offline", message: "the other person is not online" });
          return;
        }
        to.otr.onNotice({ type: "otr", room_id: frame.room_id, sender_id: tab.user.id, frame: frame.frame } satisfies ServerFrame);
      });
      return true;
    };
  }
}

let nextId = 0;

function newWorkspace(user: User, token: string): Workspace {
  tokens.set(token, user.id);
  const ws = new Workspace(new Http(token), user);
  ws.settings = { ...settings };
  ws.socket = "open";
  return ws;
}

async function newTab(relay: Relay, name: string, opts: { keys?: boolean; timeoutMs?: number } = {}): Promise<Tab & { password: string | null; token: string }> {
  const user: User = { id: `u-${name}-${++nextId}`, username: name, display_name: name[0]!.toUpperCase() + name.slice(1), admin: false, deactivated: false, created_at: 0 };
  const token = `t-${user.id}`;
  const ws = newWorkspace(user, token);
  const password = opts.keys === false ? null : await ws.e2e.setup();
  if (password) ws.e2e.confirmSaved();
  const tab = { user, ws, otr: new OtrManager(ws, { timeoutMs: opts.timeoutMs }), password, token };
  relay.connect(tab);
  return tab;
}

function direct(tabs: Tab[]): string {
  const id = `dm-${++nextId}`;
  const room: Room = { id, kind: "direct", private: true, name: null, topic: "", parent_id: null, encrypted: false, created_by: tabs[0]!.user.id, created_at: 0, seq: 3, member: true };
  const members: Member[] = tabs.map((t) => ({ user_id: t.user.id, username: t.user.username, owner: false, joined_at: 0 }));
  for (const t of tabs) {
    t.ws.rooms.set(id, { ...room });
    t.ws.members.set(id, members);
    for (const o of tabs) {
      t.ws.users.set(o.user.id, { id: o.user.id, username: o.user.username, display_name: o.user.display_name });
      if (o !== t) t.ws.online.add(o.user.id);
    }
  }
  return id;
}

async function until(what: string, pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const phase = (t: Tab, room: string): OtrPhase => t.otr.state(room).phase;

async function established(a: Tab, b: Tab, room: string): Promise<void> {
  await until("both established", () => phase(a, room) === "established" && phase(b, room) === "established");
}

async function connect(a: Tab, b: Tab, room: string): Promise<void> {
  await until("peer keys checked", () => a.otr.unavailable(room) === null && b.otr.unavailable(room) === null);
  await a.otr.start(room);
  assert.equal(phase(a, room), "offering");
  await until("the invitation", () => phase(b, room) === "offered");
  assert.equal(b.otr.state(room).byPeer, true);
  await b.otr.accept(room);
  await established(a, b, room);
}

const texts = (t: Tab, room: string): string[] => t.otr.messages(room).map((m) => m.text ?? "");

// Keys are made once (Argon2id takes a moment); each test uses its own room.
const relay = new Relay();
const ready = (async () => {
  const alice = await newTab(relay, "alice");
  const bob = await newTab(relay, "bob");
  return { alice, bob };
})();

test("unavailable: each precondition in order, in the user's words", async () => {
  const { alice, bob } = await ready;
  const carol = await newTab(relay, "carol", { keys: false });
  const room = direct([alice, carol]);

  alice.ws.settings = { ...settings, "otr.enabled": false };
  assert.match(alice.otr.unavailable(room) ?? "", /turned off by your workspace administrator/);
  alice.ws.settings = { ...settings };

  const group = direct([alice, bob, carol]);
  assert.match(alice.otr.unavailable(group) ?? "", /exactly one other person/);

  assert.match(carol.otr.unavailable(room) ?? "", /encryption keys/);

  // The other person's keys are checked in the background; the answer is then cached.
  alice.otr.unavailable(room);
  await until("the key check", () => alice.otr.unavailable(room) !== null);
  assert.match(alice.otr.unavailable(room) ?? "", /Carol has not set up encryption/);

  const dm = direct([alice, bob]);
  await until("bob's keys", () => alice.otr.unavailable(dm) === null);
  alice.ws.online.delete(bob.user.id);
  assert.equal(alice.otr.unavailable(dm), "Bob is offline.");
  alice.ws.online.add(bob.user.id);
  await assert.rejects(alice.otr.start(group), /exactly one other person/);
  carol.otr.dispose();
});

test("start, accept, messages both ways, kept only in sessionStorage, end wipes both sides", async () => {
  const { alice, bob } = await ready;
  const room = direct([alice, bob]);
  assert.equal(phase(alice, room), "off");
  assert.equal(alice.otr.fileRefusal(room), null);
  await connect(alice, bob, room);
  assert.equal(alice.otr.fileRefusal(room), FILE_REFUSAL);
  assert.equal(bob.otr.fileRefusal(room), FILE_REFUSAL);

  await alice.otr.send(room, "hello off the record");
  await until("bob reads it", () => texts(bob, room).length === 1);
  await bob.otr.send(room, "hi alice");
  await until("alice reads it", () => texts(alice, room).length === 2);
  assert.deepEqual(texts(alice, room), ["hello off the record", "hi alice"]);
  assert.deepEqual(texts(bob, room), ["hello off the record", "hi alice"]);

  const views = alice.otr.messages(room);
  for (const v of views) {
    assert.equal(v.otr, true);
    assert.equal(v.encrypted, true);
    assert.ok(isOtrMessageId(v.id), v.id);
    assert.throws(() => refuseOtrMessageId(v.id), /never be edited/);
  }
  assert.deepEqual(
    views.map((v) => v.senderId),
    [alice.user.id, bob.user.id],
  );
  assert.ok(views[0]!.seq > 3 && views[0]!.seq < 4, "placed after the room's latest message");

  // Text only in sessionStorage, never in localStorage.
  assert.ok(session.values().some((v) => v.includes("hello off the record")));
  assert.ok(!local.values().some((v) => v.includes("hello off the record")));

  await bob.otr.end(room);
  assert.equal(phase(bob, room), "ended");
  assert.equal(bob.otr.state(room).byPeer, false);
  await until("alice sees the end", () => phase(alice, room) === "ended");
  assert.equal(alice.otr.state(room).byPeer, true);
  assert.match(alice.otr.state(room).reason ?? "", /Bob ended/);
  assert.deepEqual(texts(alice, room), []);
  assert.deepEqual(texts(bob, room), []);
  assert.ok(!session.values().some((v) => v.includes("hello off the record")), "wiped from sessionStorage");
  assert.equal(alice.otr.fileRefusal(room), null);
  await assert.rejects(alice.otr.send(room, "after the end"), /nothing was sent/);
});

test("refresh keys re-runs the handshake and messages flow again", async () => {
  const { alice, bob } = await ready;
  const room = direct([alice, bob]);
  await connect(alice, bob, room);
  await bob.otr.refresh(room);
  assert.equal(phase(bob, room), "refreshing");
  await until("alice answers the refresh", () => phase(alice, room) !== "established" || alice.otr.state(room).byPeer === true);
  await established(alice, bob, room);
  await bob.otr.send(room, "after refresh");
  await until("alice reads it", () => texts(alice, room).includes("after refresh"));
  await alice.otr.end(room);
  await until("bob sees the end", () => phase(bob, room) === "ended");
});

test("decline and withdrawn or unanswered invitations", async () => {
  const { alice, bob } = await ready;
  const room = direct([alice, bob]);
  await until("keys", () => alice.otr.unavailable(room) === null && bob.otr.unavailable(room) === null);
  await alice.otr.start(room);
  await until("the invitation", () => phase(bob, room) === "offered");
  await bob.otr.decline(room);
  assert.equal(phase(bob, room), "declined");
  await until("alice sees the decline", () => phase(alice, room) === "declined");
  assert.equal(alice.otr.state(room).byPeer, true);
  assert.equal(alice.otr.fileRefusal(room), null);
  await assert.rejects(bob.otr.accept(room), /No off-the-record invitation/);
});

test("an offer nobody answers times out, and the invitation is withdrawn", async () => {
  const r = new Relay();
  const a = await newTab(r, "dora", { timeoutMs: 150 });
  const b = await newTab(r, "emil", { timeoutMs: 10_000 });
  const room = direct([a, b]);
  await until("keys", () => a.otr.unavailable(room) === null);
  await a.otr.start(room);
  await until("the invitation", () => phase(b, room) === "offered");
  await until("the timeout", () => phase(a, room) === "timeout", 3000);
  assert.match(a.otr.state(room).reason ?? "", /Emil did not answer within/);
  await until("the invitation withdrawn", () => phase(b, room) === "ended");
  assert.match(b.otr.state(room).reason ?? "", /withdrew the invitation/);
  a.otr.dispose();
  b.otr.dispose();
});

test("the server's refusal is a clear reason", async () => {
  const { alice, bob } = await ready;
  const room = direct([alice, bob]);
  await until("keys", () => alice.otr.unavailable(room) === null);
  relay.offline.add(bob.user.id);
  try {
    await alice.otr.start(room);
    await until("the refusal", () => phase(alice, room) === "off" && alice.otr.state(room).reason !== undefined);
    assert.match(alice.otr.state(room).reason ?? "", /Bob is offline/);
    assert.equal(phase(bob, room), "off");
  } finally {
    relay.offline.delete(bob.user.id);
  }
});

test("a reload loses the keys visibly; Refresh keys re-establishes the session", async () => {
  const { alice, bob } = await ready;
  const room = direct([alice, bob]);
  await connect(alice, bob, room);
  await alice.otr.send(room, "before the reload");
  await until("bob reads it", () => texts(bob, room).length === 1);

  // Bob's tab reloads: same sessionStorage, new Workspace, keys unlocked again.
  bob.otr.dispose();
  const ws = newWorkspace(bob.user, bob.token);
  await ws.e2e.init();
  await ws.e2e.unlock(bob.password!);
  const bob2: Tab = { user: bob.user, ws, otr: new OtrManager(ws) };
  relay.connect(bob2);
  direct([alice, bob2]); // users and presence for the new tab
  ws.rooms.set(room, { ...alice.ws.rooms.get(room)! });
  ws.members.set(room, alice.ws.members.get(room)!);

  assert.equal(phase(bob2, room), "broken");
  assert.match(bob2.otr.state(room).reason ?? "", /Refresh keys/);
  assert.deepEqual(texts(bob2, room), ["before the reload"], "messages survive a reload in sessionStorage");
  assert.equal(bob2.otr.fileRefusal(room), FILE_REFUSAL);
  await assert.rejects(bob2.otr.send(room, "lost"), /Refresh keys/);

  // Alice does not know yet; her message reaches a tab without the session.
  await alice.otr.send(room, "into the void");
  await until("bob2 still broken after the stray frame", () => relay.frames.at(-1)?.kind === 5);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(phase(bob2, room), "broken");

  await until("bob2 keys checked", () => bob2.otr.unavailable(room) === null);
  await bob2.otr.refresh(room);
  await established(alice, bob2, room);
  await bob2.otr.send(room, "back again");
  await until("alice reads it", () => texts(alice, room).includes("back again"));
  await alice.otr.send(room, "welcome back");
  await until("bob2 reads it", () => texts(bob2, room).includes("welcome back"));

  await alice.otr.end(room);
  await until("bob2 sees the end", () => phase(bob2, room) === "ended");
  assert.deepEqual(texts(bob2, room), []);
  alice.otr.dispose();
  bob2.otr.dispose();
});

test("both press Start OTR at once: one offer goes ahead", async () => {
  const r = new Relay();
  const a = await newTab(r, "fay");
  const b = await newTab(r, "gus");
  const room = direct([a, b]);
  await until("keys", () => a.otr.unavailable(room) === null && b.otr.unavailable(room) === null);
  await Promise.all([a.otr.start(room), b.otr.start(room)]);
  await established(a, b, room);
  await a.otr.send(room, "one session");
  await until("gus reads it", () => texts(b, room).includes("one session"));

  // The other person going offline breaks the session visibly.
  a.ws.online.delete(b.user.id);
  a.ws.changed();
  await until("broken", () => phase(a, room) === "broken");
  assert.match(a.otr.state(room).reason ?? "", /Gus went offline: the other side may have lost its session/);
  a.ws.online.add(b.user.id);
  await a.otr.refresh(room);
  await established(a, b, room);
  await b.otr.end(room);
  await until("fay sees the end", () => phase(a, room) === "ended");
  a.otr.dispose();
  b.otr.dispose();
});
