// What one signed-in browser tab knows: the user, the settings, their rooms with
// unread counts, each open room's timeline, members and presence, kept live by the
// realtime socket. The UI reads it and calls its methods; it never calls the API
// itself. Encryption is delegated to `E2e` (state/e2e.ts).

import { ApiError, Http, seg } from "../api/http";
import { Realtime, type SocketState } from "../api/realtime";
import type { AdminRoom, CreateRoomRequest, FileInfo, Member, Message, MessagePage, Room, RoomEvent, SearchPage, Session, ServerFrame, Settings, User, UserSummary } from "../api/types";
import type { SignatureVerifier } from "../crypto/envelope";
import { E2e } from "./e2e";
import { Emitter } from "./emitter";
import { OtrManager } from "./otr";
import { fileText, newMessageId, parseFileText } from "./format";

/** A message as the UI shows it. */
export interface MessageView {
  id: string;
  seq: number;
  senderId: string;
  time: number;
  edited: boolean;
  deleted: boolean;
  /** The text to show; null when it cannot be shown (see `problem`). */
  text: string | null;
  encrypted: boolean;
  /** The sender's identity key is one the reader verified. */
  verified: boolean;
  /** Why an encrypted message cannot be shown, in the user's words. */
  problem: string | null;
  otr: boolean;
  file: FileRef | null;
  mentionsMe: boolean;
}

export interface FileRef {
  fileId: string;
  name: string;
  size: number | null;
  type: string | null;
  /** For encrypted files: what decrypts them (kept in memory only). */
  secret?: unknown;
}

export interface Timeline {
  messages: Message[];
  views: Map<string, MessageView>;
  hasMoreBefore: boolean;
  loading: boolean;
  loaded: boolean;
}

const SESSION_KEY = "sotto.session";

export function savedToken(): string | null {
  return sessionStorage.getItem(SESSION_KEY);
}

export class Workspace extends Emitter {
  readonly http: Http;
  me: User;
  settings: Settings | null = null;
  rooms = new Map<string, Room>();
  members = new Map<string, Member[]>();
  users = new Map<string, UserSummary>();
  timelines = new Map<string, Timeline>();
  online = new Set<string>();
  socket: SocketState = "connecting";
  /** The room the user is looking at: its new messages are read as they come. */
  activeRoom: string | null = null;
  /** End-to-end encryption: keys, pins, chains, room keys. */
  readonly e2e: E2e;
  /** Off-the-record sessions of this tab (never stored by the server). */
  readonly otr: OtrManager;
  private realtime: Realtime | null = null;

  constructor(http: Http, me: User) {
    super();
    this.http = http;
    this.me = me;
    this.users.set(me.id, me);
    this.e2e = new E2e(this);
    this.otr = new OtrManager(this);
  }

  /** Signs in with a password; the token is kept for this browser session only. */
  static async login(username: string, password: string): Promise<Workspace> {
    const http = new Http();
    const res = await http.json<{ token: string; user: User }>("POST", "/api/v1/login", { username, password, session_name: sessionName() });
    return Workspace.begin(http, res.token, res.user);
  }

  static async setup(setupToken: string, username: string, password: string, displayName: string): Promise<Workspace> {
    const http = new Http();
    const res = await http.json<{ token: string; user: User }>("POST", "/api/v1/setup", {
      setup_token: setupToken,
      username,
      password,
      display_name: displayName || null,
    });
    return Workspace.begin(http, res.token, res.user);
  }

  /** Resumes the session this tab already had, if its token still works. */
  static async resume(): Promise<Workspace | null> {
    const token = savedToken();
    if (!token) return null;
    const http = new Http(token);
    try {
      const me = await http.json<User>("GET", "/api/v1/me");
      return new Workspace(http, me);
    } catch (e) {
      // The session ended elsewhere (signed out, revoked, deactivated): sign in again.
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        sessionStorage.removeItem(SESSION_KEY);
        return null;
      }
      throw e;
    }
  }

  private static begin(http: Http, token: string, me: User): Workspace {
    http.setToken(token);
    sessionStorage.setItem(SESSION_KEY, token);
    return new Workspace(http, me);
  }

  /** Loads settings and rooms and opens the realtime socket. */
  async start(): Promise<void> {
    const [settings, list] = await Promise.all([
      this.http.json<Settings>("GET", "/api/v1/settings"),
      this.http.json<{ rooms: Room[] }>("GET", "/api/v1/rooms"),
    ]);
    this.settings = settings;
    for (const r of list.rooms) this.rooms.set(r.id, r);
    await this.e2e.init();
    await Promise.all([...this.rooms.values()].filter((r) => r.kind === "direct").map((r) => this.loadMembers(r.id)));
    const token = this.http.socketToken();
    if (token) {
      this.realtime = new Realtime(token, {
        frame: (f) => this.onFrame(f),
        state: (s) => {
          this.socket = s;
          // Presence frames go to the others, never to oneself: online while the socket is.
          if (s === "open") this.online.add(this.me.id);
          else this.online.delete(this.me.id);
          this.changed();
        },
        resumeFrom: () => Object.fromEntries([...this.rooms.values()].map((r) => [r.id, r.seq])),
      });
      this.realtime.start();
    }
    this.changed();
  }

  async logout(): Promise<void> {
    this.realtime?.stop();
    try {
      await this.http.json("POST", "/api/v1/logout");
    } finally {
      sessionStorage.clear();
    }
  }

  /** Closes the socket without ending the server session (the tab is going away). */
  stop(): void {
    this.otr.dispose();
    this.realtime?.stop();
  }

  sendFrame(frame: object): boolean {
    return this.realtime?.send(frame) ?? false;
  }

  // --- rooms ---

  /** How a room is called in lists and headers: its name, or a DM's other people. */
  roomTitle(room: Room): string {
    if (room.kind !== "direct") return room.name ?? "(unnamed)";
    const others = (this.members.get(room.id) ?? []).filter((m) => m.user_id !== this.me.id);
    return others.length ? others.map((m) => this.displayName(m.user_id)).join(", ") : "Direct message";
  }

  displayName(userId: string): string {
    const u = this.users.get(userId);
    return u ? u.display_name || u.username : userId;
  }

  username(userId: string): string {
    return this.users.get(userId)?.username ?? userId;
  }

  async createRoom(req: CreateRoomRequest): Promise<Room> {
    const room = await this.http.json<Room>("POST", "/api/v1/rooms", req);
    this.rooms.set(room.id, { ...room, unread: 0 });
    await this.loadMembers(room.id);
    if (room.encrypted) await this.e2e.startChain(room);
    this.changed();
    return room;
  }

  /** Opens (or finds) the direct message with these usernames. */
  async openDirect(usernames: string[], encrypted: boolean): Promise<Room> {
    const ids = await Promise.all(usernames.map((u) => this.lookupUser(u).then((s) => s.id)));
    return this.createRoom({ kind: "direct", members: ids, ...(encrypted ? { encrypted: true } : {}) });
  }

  async lookupUser(username: string): Promise<UserSummary> {
    const name = username.trim().replace(/^@/, "");
    try {
      const u = await this.http.json<UserSummary>("GET", `/api/v1/users/by-name/${seg(name)}`);
      this.users.set(u.id, u);
      return u;
    } catch (e) {
      if (e instanceof ApiError && e.code === "not_found") throw new ApiError(404, "not_found", `There is no user called "${name}".`);
      throw e;
    }
  }

  async loadMembers(roomId: string): Promise<Member[]> {
    const { members } = await this.http.json<{ members: Member[] }>("GET", `/api/v1/rooms/${seg(roomId)}/members`);
    this.members.set(roomId, members);
    for (const m of members) if (!this.users.has(m.user_id)) this.users.set(m.user_id, { id: m.user_id, username: m.username, display_name: m.username });
    this.changed();
    return members;
  }

  /** Reads a room again (after a change its events may not have reached yet). */
  async refreshRoom(roomId: string): Promise<void> {
    const room = await this.http.json<Room>("GET", `/api/v1/rooms/${seg(roomId)}`);
    const prev = this.rooms.get(roomId);
    this.rooms.set(roomId, { ...room, unread: prev?.unread ?? 0, last_read_seq: prev?.last_read_seq ?? room.seq });
    this.changed();
  }

  async publicRooms(): Promise<Room[]> {
    return (await this.http.json<{ rooms: Room[] }>("GET", "/api/v1/rooms/public")).rooms;
  }

  async join(roomId: string): Promise<void> {
    await this.http.json("POST", `/api/v1/rooms/${seg(roomId)}/join`);
    const room = await this.http.json<Room>("GET", `/api/v1/rooms/${seg(roomId)}`);
    this.rooms.set(room.id, { ...room, unread: 0 });
    this.changed();
  }

  async invite(roomId: string, username: string): Promise<void> {
    const u = await this.lookupUser(username);
    if (await this.e2e.chain(roomId)) await this.e2e.invite(roomId, u.id);
    else await this.http.json("POST", `/api/v1/rooms/${seg(roomId)}/members`, { user_id: u.id });
    await this.loadMembers(roomId);
  }

  async removeMember(roomId: string, userId: string): Promise<void> {
    if (await this.e2e.chain(roomId)) await this.e2e.remove(roomId, userId);
    else await this.http.json("DELETE", `/api/v1/rooms/${seg(roomId)}/members/${seg(userId)}`);
    await this.loadMembers(roomId);
  }

  async leave(roomId: string): Promise<void> {
    if (await this.e2e.chain(roomId)) await this.e2e.leave(roomId);
    else await this.http.json("POST", `/api/v1/rooms/${seg(roomId)}/leave`);
    this.forgetRoom(roomId);
  }

  private forgetRoom(roomId: string): void {
    this.rooms.delete(roomId);
    this.timelines.delete(roomId);
    this.members.delete(roomId);
    this.changed();
  }

  // --- messages ---

  timeline(roomId: string): Timeline {
    let t = this.timelines.get(roomId);
    if (!t) {
      t = { messages: [], views: new Map(), hasMoreBefore: true, loading: false, loaded: false };
      this.timelines.set(roomId, t);
    }
    return t;
  }

  /** Loads the newest page, or the page before what is loaded. */
  async loadHistory(roomId: string, older = false): Promise<void> {
    const t = this.timeline(roomId);
    if (t.loading || (older && !t.hasMoreBefore)) return;
    t.loading = true;
    this.changed();
    try {
      const first = t.messages[0];
      const q = older && first ? `?before=${first.seq}&limit=50` : "?limit=50";
      const page = await this.http.json<MessagePage>("GET", `/api/v1/rooms/${seg(roomId)}/messages${q}`);
      t.hasMoreBefore = page.has_more;
      // User Timing, read by the browser benchmark: opening (and decrypting) one page.
      const start = performance.now();
      const verify = await this.e2e.verifyPage(page.messages);
      await Promise.all(page.messages.map((m) => this.apply(m, verify)));
      performance.measure("sotto:open-page", { start, detail: { count: page.messages.length } });
      t.loaded = true;
    } finally {
      t.loading = false;
      this.changed();
    }
  }

  /** Puts a message into its room's timeline (by id: events are applied idempotently). */
  private async apply(m: Message, verify?: SignatureVerifier): Promise<void> {
    const t = this.timeline(m.room_id);
    const at = t.messages.findIndex((x) => x.id === m.id);
    if (at >= 0) {
      if (t.messages[at]!.version_seq > m.version_seq) return;
      t.messages[at] = m;
    } else {
      let i = t.messages.length;
      while (i > 0 && t.messages[i - 1]!.seq > m.seq) i--;
      t.messages.splice(i, 0, m);
    }
    t.views.set(m.id, await this.view(m, verify));
    this.changed();
  }

  private async view(m: Message, verify?: SignatureVerifier): Promise<MessageView> {
    const room = this.rooms.get(m.room_id);
    const base: MessageView = {
      id: m.id,
      seq: m.seq,
      senderId: m.sender_id,
      time: m.created_at,
      edited: m.edited_at !== null,
      deleted: m.deleted,
      text: m.text,
      encrypted: false,
      verified: false,
      problem: null,
      otr: false,
      file: null,
      mentionsMe: m.mentions.includes(this.me.id),
    };
    if (m.deleted) return { ...base, text: null };
    if (m.ciphertext !== null) {
      if (!room) return { ...base, encrypted: true, text: null, problem: "This message cannot be opened here" };
      return this.e2e.view(room, m, verify);
    }
    if (room && m.text !== null) {
      const problem = await this.e2e.plaintextProblem(room, m, this.timelines.get(m.room_id)?.messages ?? []);
      if (problem) return { ...base, text: null, problem };
    }
    if (m.text !== null) {
      const f = parseFileText(m.text);
      if (f) return { ...base, file: { fileId: f.fileId, name: f.label.replace(/\s*\([^)]*\)$/, "") || "file", size: null, type: null } };
    }
    return base;
  }

  /** Re-derives every loaded view of a room (after keys arrive or are unlocked). */
  async refreshViews(roomId?: string): Promise<void> {
    const ids = roomId ? [roomId] : [...this.timelines.keys()];
    await Promise.all(
      ids.map(async (id) => {
        const t = this.timelines.get(id);
        if (!t) return;
        for (const m of t.messages) t.views.set(m.id, await this.view(m));
      }),
    );
    this.changed();
  }

  async send(roomId: string, text: string): Promise<void> {
    const room = this.requireRoom(roomId);
    const m = await this.post(room, text);
    await this.apply(m);
  }

  /** Sends text, sealed when the room's signed state says it is encrypted (B12). */
  private async post(room: Room, text: string, file?: FileRef): Promise<Message> {
    const path = `/api/v1/rooms/${seg(room.id)}/messages`;
    if (!(await this.e2e.mustSeal(room))) return this.http.json<Message>("POST", path, { id: newMessageId(), text });
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.http.json<Message>("POST", path, await this.e2e.sealText(room, text, file));
      } catch (e) {
        // A new epoch became due meanwhile: once more on a fresh look at the chain.
        if (!(e instanceof ApiError && e.code === "conflict") || attempt > 0) throw e;
      }
    }
  }

  private requireRoom(roomId: string): Room {
    const room = this.rooms.get(roomId);
    if (!room) throw new Error("You are not in this room any more.");
    return room;
  }

  async edit(roomId: string, messageId: string, text: string): Promise<void> {
    const room = this.requireRoom(roomId);
    const sealed = await this.e2e.mustSeal(room);
    const body = sealed ? { ciphertext: (await this.e2e.sealText(room, text, undefined, messageId)).ciphertext } : { text };
    const m = await this.http.json<Message>("PATCH", `/api/v1/rooms/${seg(roomId)}/messages/${seg(messageId)}`, body);
    await this.apply(m);
  }

  async remove(roomId: string, messageId: string): Promise<void> {
    const m = await this.http.json<Message>("DELETE", `/api/v1/rooms/${seg(roomId)}/messages/${seg(messageId)}`);
    if (m) await this.apply(m);
  }

  /** Uploads a file with progress (encrypted on this device in encrypted rooms), then announces it. */
  async sendFile(roomId: string, file: File, progress: (sent: number, total: number) => void): Promise<void> {
    const room = this.requireRoom(roomId);
    const token = this.http.socketToken();
    const filesPath = `/api/v1/rooms/${seg(roomId)}/files`;
    let m: Message;
    if (await this.e2e.mustSeal(room)) {
      const { blob, ref } = await this.e2e.encryptFile(file);
      // No name and no real type: both travel inside the encrypted message.
      const info = await upload(filesPath, blob, "application/octet-stream", token, progress);
      (ref.secret as { fileId: string }).fileId = info.id;
      m = await this.post(room, file.name, { ...ref, fileId: info.id });
    } else {
      const info = await upload(`${filesPath}?name=${encodeURIComponent(file.name)}`, file, file.type || "application/octet-stream", token, progress);
      m = await this.post(room, fileText(file.name, info.size, info.id));
    }
    await this.apply(m);
  }

  /** A file's bytes, decrypted and checked on this device when it came encrypted. */
  async download(file: FileRef): Promise<Blob> {
    const res = await this.http.raw("GET", `/api/v1/files/${seg(file.fileId)}/content`);
    if (file.secret && res.body) return this.e2e.decryptFile(res.body, file);
    return res.blob();
  }

  /** Marks the room read up to its newest loaded message. */
  async markRead(roomId: string): Promise<void> {
    const room = this.rooms.get(roomId);
    const last = this.timelines.get(roomId)?.messages.at(-1);
    if (!room || !last || (room.last_read_seq ?? 0) >= last.seq) return;
    room.last_read_seq = last.seq;
    room.unread = 0;
    this.changed();
    await this.http.json("POST", `/api/v1/rooms/${seg(roomId)}/read`, { seq: last.seq });
  }

  async search(q: string, roomId?: string, cursor?: string): Promise<SearchPage> {
    const p = new URLSearchParams({ q, limit: "20" });
    if (roomId) p.set("room_id", roomId);
    if (cursor) p.set("cursor", cursor);
    return this.http.json<SearchPage>("GET", `/api/v1/search?${p}`);
  }

  // --- realtime ---

  private onFrame(f: ServerFrame): void {
    if ("room_id" in f && "seq" in f) {
      void this.onRoomEvent(f);
      return;
    }
    if (f.type === "presence") {
      if (f.online) this.online.add(f.user_id);
      else this.online.delete(f.user_id);
      this.changed();
    }
    this.e2e.onFrame(f);
    this.otr.onNotice(f);
  }

  /**
   * Who shares a room with this user and is online. Presence frames reach only those
   * who shared a room at the moment of the change, so a new room or member asks again.
   */
  private async refreshPresence(): Promise<void> {
    try {
      const { online } = await this.http.json<{ online: string[] }>("GET", "/api/v1/presence");
      for (const id of online) this.online.add(id);
      this.changed();
    } catch {
      /* the frames still come; the next change asks again */
    }
  }

  private async onRoomEvent(e: RoomEvent): Promise<void> {
    const known = this.rooms.get(e.room_id);
    if (known && e.seq > known.seq) known.seq = e.seq;
    switch (e.type) {
      case "room_created":
      case "room_updated": {
        const prev = this.rooms.get(e.room_id);
        this.rooms.set(e.room_id, { ...e.room, unread: prev?.unread ?? 0, last_read_seq: prev?.last_read_seq ?? e.seq, seq: Math.max(e.seq, e.room.seq) });
        if (e.type === "room_created" || !this.members.has(e.room_id)) await this.loadMembers(e.room_id);
        if (e.type === "room_created") void this.refreshPresence();
        break;
      }
      case "member_added":
        if (e.member.user_id === this.me.id && !known) {
          const room = await this.http.json<Room>("GET", `/api/v1/rooms/${seg(e.room_id)}`);
          this.rooms.set(room.id, { ...room, unread: 0, last_read_seq: e.seq });
        }
        await this.loadMembers(e.room_id);
        void this.refreshPresence();
        break;
      case "member_removed":
        if (e.user_id === this.me.id) this.forgetRoom(e.room_id);
        else await this.loadMembers(e.room_id);
        break;
      case "owner_changed":
        await this.loadMembers(e.room_id);
        break;
      case "encryption_changed":
        if (known) known.encrypted = e.encrypted;
        break;
      case "message_created":
      case "message_edited":
      case "message_deleted": {
        const t = this.timelines.get(e.room_id);
        if (t?.loaded || e.room_id === this.activeRoom) await this.apply(e.message);
        if (e.type === "message_created" && known && e.message.sender_id !== this.me.id) {
          if (e.room_id === this.activeRoom && document.visibilityState === "visible") void this.markRead(e.room_id);
          else known.unread = Math.min(100, (known.unread ?? 0) + 1);
        }
        break;
      }
      default:
        break;
    }
    this.e2e.onFrame(e);
    this.changed();
  }

  // --- administration and account pages (ui/Admin.tsx, ui/Account.tsx) ---

  /** Re-reads the workspace settings (an admin may have changed them elsewhere). */
  async reloadSettings(): Promise<Settings> {
    this.settings = await this.http.json<Settings>("GET", "/api/v1/settings");
    this.changed();
    return this.settings;
  }

  /** Changes some settings (admins only); answers every setting as now stored. */
  async updateSettings(patch: Partial<Settings>): Promise<Settings> {
    this.settings = await this.http.json<Settings>("PATCH", "/api/v1/settings", patch);
    // Turning encryption on or off changes what this user is asked to do about keys.
    await this.e2e.init();
    return this.settings;
  }

  async adminUsers(): Promise<User[]> {
    return (await this.http.json<{ users: User[] }>("GET", "/api/v1/admin/users")).users;
  }

  async adminCreateUser(req: { username: string; password: string; display_name: string | null; admin: boolean }): Promise<User> {
    return this.http.json<User>("POST", "/api/v1/admin/users", req);
  }

  /** Deactivates (ending all their sessions and tokens) or reactivates a user. */
  async adminSetDeactivated(userId: string, deactivated: boolean): Promise<User> {
    return this.http.json<User>("POST", `/api/v1/admin/users/${seg(userId)}/${deactivated ? "deactivate" : "reactivate"}`);
  }

  /** Sets a user's login password; their password logins end. */
  async adminResetPassword(userId: string, password: string): Promise<void> {
    await this.http.json("PUT", `/api/v1/admin/users/${seg(userId)}/password`, { password });
  }

  /** Resets a user's end-to-end encryption keys; their password logins end. */
  async adminResetKeys(userId: string): Promise<void> {
    await this.http.json("POST", `/api/v1/admin/users/${seg(userId)}/keys/reset`);
  }

  /** Every room, private ones and DMs included (admins only). */
  async adminRooms(): Promise<AdminRoom[]> {
    return (await this.http.json<{ rooms: AdminRoom[] }>("GET", "/api/v1/admin/rooms")).rooms;
  }

  /** Any room's members (admins only). */
  async adminRoomMembers(roomId: string): Promise<Member[]> {
    return (await this.http.json<{ members: Member[] }>("GET", `/api/v1/admin/rooms/${seg(roomId)}/members`)).members;
  }

  /**
   * Adds a person to a room without its owners' say (admins only). An encrypted room's
   * signed state is untouched: its members see them as added by an administrator.
   */
  async adminAddMember(roomId: string, username: string): Promise<Member[]> {
    const u = await this.lookupUser(username);
    const { members } = await this.http.json<{ members: Member[] }>("POST", `/api/v1/admin/rooms/${seg(roomId)}/members`, { user_id: u.id });
    if (this.members.has(roomId)) await this.loadMembers(roomId).catch(() => undefined);
    return members;
  }

  /** Removes a member without the room's say (admins only). */
  async adminRemoveMember(roomId: string, userId: string): Promise<void> {
    await this.http.json("DELETE", `/api/v1/admin/rooms/${seg(roomId)}/members/${seg(userId)}`);
    if (this.members.has(roomId)) await this.loadMembers(roomId).catch(() => undefined);
  }

  /** The caller's password-login sessions, newest first. */
  async mySessions(): Promise<Session[]> {
    return (await this.http.json<{ sessions: Session[] }>("GET", "/api/v1/me/sessions")).sessions;
  }

  async revokeSession(sessionId: string): Promise<void> {
    await this.http.json("DELETE", `/api/v1/me/sessions/${seg(sessionId)}`);
  }

  /** The caller's personal access tokens, newest first (never the tokens themselves). */
  async myTokens(): Promise<Session[]> {
    return (await this.http.json<{ sessions: Session[] }>("GET", "/api/v1/me/tokens")).sessions;
  }

  /** Creates a personal access token; `token` is shown only now. */
  async createToken(name: string): Promise<{ token: string; session: Session }> {
    return this.http.json<{ token: string; session: Session }>("POST", "/api/v1/me/tokens", { name });
  }

  async revokeToken(tokenId: string): Promise<void> {
    await this.http.json("DELETE", `/api/v1/me/tokens/${seg(tokenId)}`);
  }
}

function sessionName(): string {
  const ua = navigator.userAgent;
  const browser = /Firefox\//.test(ua) ? "Firefox" : /Edg\//.test(ua) ? "Edge" : /Chrom(e|ium)\//.test(ua) ? "Chromium" : /Safari\//.test(ua) ? "Safari" : "Browser";
  return `${browser} (web)`;
}

/** Uploads a body with progress events (fetch has none for uploads). */
export function upload(path: string, body: Blob, contentType: string, token: string | null, progress: (sent: number, total: number) => void): Promise<FileInfo> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.setRequestHeader("Content-Type", contentType);
    xhr.upload.onprogress = (e) => progress(e.loaded, e.total || body.size);
    xhr.onload = () => {
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(xhr.responseText);
      } catch {
        /* handled below */
      }
      if (xhr.status >= 200 && xhr.status < 300 && parsed) resolve(parsed as FileInfo);
      else {
        const e = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
        reject(new ApiError(xhr.status, e?.code ?? "internal", e?.message ?? `The upload failed (${xhr.status}).`));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The upload was interrupted."));
    xhr.send(body);
  });
}
