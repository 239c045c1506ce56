// End-to-end encryption for one signed-in tab: the client rules of docs/protocol.md,
// as crates/sotto-client applies them. Keys are set up or unlocked with the
// encryption password and then live in memory only (a reload asks for the password
// again); contacts' identity keys are pinned on first use and a change is shown until
// accepted; room state chains are verified from their first statement with the pinned
// keys; room keys go only to the members the chain authorizes; a room the chain says is
// encrypted never gets plaintext; message ids already accepted are remembered.

import { ApiError, seg } from "../api/http";
import type { Member, Message, MyKeys, Room, RoomKeyState, ServerFrame } from "../api/types";
import { DEFAULT_PARAMS, type KdfParams, KeyBackup, BackupError } from "../crypto/backup";
import { type Attachment, type MessageBody, textBody } from "../crypto/body";
import { type Action, ChainError, RoomChain, type RoomKind, Statement, decodeStatement } from "../crypto/chain";
import { fromBase64, toBase64, toHex } from "../crypto/encoding";
import { EnvelopeError, type SignatureVerifier, newHeader, openEnvelope, peekEnvelope, sealEnvelope, verifyEnvelopeSignatures } from "../crypto/envelope";
import { EpochKey } from "../crypto/epoch";
import { decryptTransform, encryptTransform, generateFileKey } from "../crypto/file";
import { IdentityKeys, PublicBundle } from "../crypto/identity";
import { type EpochId, type RoomId, type UserId, randomIdFromHex, randomIdToHex, roomId as toRoomId, userId as toUserId } from "../crypto/ids";
import { EncryptionPassword } from "../crypto/password";
import { PinStore } from "../crypto/pins";
import { sha256 } from "../crypto/primitives";
import { RoomKeyBox } from "../crypto/roomkey";
import { SafetyNumber } from "../crypto/safety";
import type { FileRef, MessageView, Workspace } from "./workspace";

export type KeyStatus = "disabled" | "setup_needed" | "locked" | "unlocked";

/** Why an encrypted message is not shown, in the user's words (§11). */
const PROBLEMS: Record<string, string> = {
  Locked: "Encrypted message: enter your E2EE password to read it",
  WaitingForKey: "Waiting for encryption key",
  NoChain: "Waiting for the room's encryption to be set up",
  KeyChanged: "The sender's key changed: check it before reading",
  UnknownSender: "Cannot check who sent this message",
  SenderNotAuthorized: "Sent by someone the room does not vouch for",
  BadSignature: "Invalid sender: the signature does not match",
  Replayed: "This message was delivered twice; the copy is not shown",
  NotThisMessage: "The server moved this message: it is not shown",
  RolledBack: "The server served an older state of this room: this message is not shown",
  ForgedSender: "Invalid sender: the server names someone else than who signed this message",
  NotEncrypted: "Not encrypted: this room is end-to-end encrypted, so this message cannot be from a member (the server may have written it)",
  SupersededEpoch: "Sent under a room key that was already replaced, by someone who no longer holds the room's key: the server put it here",
  Malformed: "This message is damaged and cannot be opened",
};

const ROLLED_BACK = "The server served an older state of this room than this device verified before; nothing was sent.";

class Undecryptable extends Error {
  constructor(readonly kind: keyof typeof PROBLEMS) {
    super(kind);
  }
}

/** What a member list entry looks like to the chain. */
export interface MemberCheck {
  member: Member;
  /** On the server's list but not in the room's signed state: gets no key. */
  notVouched: boolean;
}

export interface Verification {
  user: UserId;
  safetyNumber: string;
  verified: boolean;
  changed: boolean;
}

const STORE = "sotto.e2e.";

export class E2e {
  status: KeyStatus = "disabled";
  /** The generated password, shown until "I saved my password" is pressed. */
  newPassword: string | null = null;
  /** The user put the banner off for this session. */
  deferred = false;
  /** Contacts whose identity key changed and is not accepted yet. */
  keyChanges = new Set<string>();
  /** Rooms whose chain the server served shorter than one verified before (a rollback). */
  rolledBack = new Set<string>();
  private keys: IdentityKeys | null = null;
  private myBundle: PublicBundle | null = null;
  private readonly me: UserId;
  private readonly pins: PinStore;
  private readonly former = new Map<string, Uint8Array[]>();
  private readonly bundles = new Map<string, PublicBundle>();
  private readonly chains = new Map<string, RoomChain>();
  /** Rooms seen without a chain, until a statement arrives. */
  private readonly unchained = new Set<string>();
  private readonly epochKeys = new Map<string, Map<string, EpochKey>>();
  /** Per room, the chain changes this session has under way; sealing waits for them. */
  private readonly pending = new Map<string, Promise<void>>();
  /** Per room, accepted message ids (hex) and the digest of the envelope accepted. */
  private readonly seen: Record<string, Record<string, string>>;
  /** Per room, the length of the longest chain verified on this device (rollback check). */
  private readonly heads: Record<string, number>;
  /** Per room, each epoch (hex) whose NewEpoch statement arrived live, with the room's seq then. */
  private readonly declaredAt: Record<string, Record<string, number>>;

  constructor(private readonly ws: Workspace) {
    this.me = toUserId(ws.me.id);
    this.pins = loadPins(this.me);
    // A change not accepted yet stays announced across reloads (B4).
    for (const u of this.pins.users()) if (u !== this.me && this.pins.get(u)!.pending) this.keyChanges.add(u);
    this.seen = loadJson(`${STORE}seen.${this.me}`, {});
    this.heads = loadJson(`${STORE}heads.${this.me}`, {});
    this.declaredAt = loadJson(`${STORE}declared.${this.me}`, {});
    for (const [u, keys] of Object.entries(loadJson<Record<string, string[]>>(`${STORE}former.${this.me}`, {}))) {
      this.former.set(u, keys.map(fromBase64));
    }
  }

  // --- the user's own keys (E2, E3, E10, E11) ---

  /** Reads whether keys are published and whether encryption is on. */
  async init(): Promise<void> {
    const mine = await this.ws.http.json<MyKeys>("GET", "/api/v1/me/keys");
    if (mine.published && mine.bundle) {
      const bundle = this.checkBundle(mine.bundle.bundle, this.me);
      this.observe(bundle);
      this.myBundle = bundle;
      this.status = this.keys && this.keys.matches(bundle) ? "unlocked" : "locked";
    } else {
      this.keys = null;
      this.myBundle = null;
      this.status = this.ws.settings?.["e2e.enabled"] ? "setup_needed" : "disabled";
    }
    this.ws.changed();
  }

  get unlocked(): boolean {
    return this.status === "unlocked";
  }

  /** Makes the keys and a generated password, publishes the bundle and the backup. */
  async setup(): Promise<string> {
    if (this.newPassword) return this.newPassword;
    const keys = await IdentityKeys.generate();
    const password = EncryptionPassword.generate();
    const backup = await KeyBackup.create(keys, this.me, password, DEFAULT_PARAMS);
    const bundle = keys.bundle(this.me);
    await this.ws.http.json("POST", "/api/v1/me/keys", { bundle: toBase64(bundle.encode()), backup: toBase64(backup.encode()) });
    // The key this device pinned for its own user before a reset, if any.
    const ownPin = this.pins.get(this.me)?.key;
    const former = ownPin && toHex(ownPin) !== toHex(keys.identityPublic) ? Uint8Array.from(ownPin) : undefined;
    this.keys = keys;
    this.myBundle = bundle;
    this.adoptOwn(bundle);
    // Devices that never pinned the former key verify what it signed through this
    // declaration (protocol §3.5); the keys are set up whatever happens there.
    if (former) void this.declareKeyChange(former).catch(() => undefined);
    this.saveAccepted(DEFAULT_PARAMS);
    this.newPassword = password.text();
    this.status = "unlocked";
    this.ws.changed();
    // Messages shown as locked before are now waiting for their keys, or readable.
    void this.ws.refreshViews();
    return this.newPassword;
  }

  confirmSaved(): void {
    this.newPassword = null;
    this.ws.changed();
  }

  /** Opens the backup with the password; a wrong one is a clear error. */
  async unlock(password: string): Promise<void> {
    if (!this.myBundle) await this.init();
    const bundle = this.myBundle;
    if (!bundle) throw new Error("You have no encryption keys yet.");
    const stored = await this.ws.http.json<{ backup: string }>("GET", "/api/v1/me/keys/backup");
    const backup = KeyBackup.decode(fromBase64(stored.backup));
    const accepted = loadJson<KdfParams | null>(`${STORE}kdf.${this.me}`, null) ?? undefined;
    let opened;
    const start = performance.now();
    try {
      opened = await backup.open(EncryptionPassword.fromUser(password), this.me, bundle, accepted);
      performance.measure("sotto:unlock", { start });
    } catch (e) {
      if (e instanceof BackupError && e.kind === "WrongPassword") throw new Error("Wrong encryption password. Check it and try again.");
      if (e instanceof BackupError) throw new Error(backupRefusal(e));
      throw e;
    }
    this.keys = opened.keys;
    this.adoptOwn(bundle);
    this.saveAccepted(opened.params);
    this.status = "unlocked";
    this.deferred = false;
    this.ws.changed();
    await this.ws.refreshViews();
    void this.shareKeysEverywhere();
  }

  /** Re-wraps the keys under a new password (keys must be unlocked). */
  async changePassword(newPassword: string): Promise<void> {
    const keys = this.requireKeys();
    const stored = await this.ws.http.json<{ backup: string }>("GET", "/api/v1/me/keys/backup");
    const current = fromBase64(stored.backup);
    const old = KeyBackup.decode(current);
    const params = old.params.mKib >= DEFAULT_PARAMS.mKib && old.params.t >= DEFAULT_PARAMS.t ? old.params : DEFAULT_PARAMS;
    const next = await old.rewrap(keys, this.me, EncryptionPassword.fromUser(newPassword), params);
    // The identity key vouches for the new backup over the one it replaces (§3.5).
    const signature = await next.signReplacement(keys, this.me, current);
    await this.ws.http.json("PUT", "/api/v1/me/keys/backup", { bundle: toBase64(keys.bundle(this.me).encode()), backup: toBase64(next.encode()), signature: toBase64(signature) });
    this.saveAccepted(params);
  }

  /** Removes one's keys (login password needed); new ones are set up afterwards. */
  async reset(loginPassword: string): Promise<void> {
    await this.ws.http.json("POST", "/api/v1/me/keys/reset", { password: loginPassword });
    this.keys?.wipe();
    this.keys = null;
    this.myBundle = null;
    this.epochKeys.clear();
    this.newPassword = null;
    await this.init();
  }

  private requireKeys(): IdentityKeys {
    if (!this.keys) throw new Error("Enter your E2EE password first.");
    return this.keys;
  }

  // --- contacts and pins (B4) ---

  private checkBundle(b64: string, user: UserId): PublicBundle {
    const bundle = PublicBundle.decode(fromBase64(b64));
    if (bundle.user !== user) throw new Error(`The server gave another user's keys for ${user}.`);
    return bundle;
  }

  /**
   * Pins a checked bundle's key on first use; a different key is a pending change
   * (one's own is adopted by `adoptOwn` once the password proves it).
   */
  private observe(bundle: PublicBundle): void {
    const seen = this.pins.observe(bundle.user, bundle.identityKey);
    if (seen.kind === "Changed" && bundle.user !== this.me) this.keyChanges.add(bundle.user);
    else {
      this.keyChanges.delete(bundle.user);
      this.bundles.set(bundle.user, bundle);
    }
    if (seen.kind === "Changed") this.bundles.set(bundle.user, bundle);
    this.savePins();
  }

  /** Fetches and pins the bundles of users not known yet (or all given, with `fresh`). */
  async observeUsers(users: Iterable<string>, fresh = false): Promise<void> {
    const want = [...new Set(users)].filter((u) => fresh || !this.pins.get(toUserId(u)));
    for (let i = 0; i < want.length; i += 100) {
      const ids = want.slice(i, i + 100);
      const { bundles } = await this.ws.http.json<{ bundles: { user_id: string; bundle: string }[] }>("GET", `/api/v1/keys?user_ids=${ids.map(encodeURIComponent).join(",")}`);
      for (const b of bundles) {
        try {
          this.observe(this.checkBundle(b.bundle, toUserId(b.user_id)));
        } catch {
          /* a bundle that fails its checks is never pinned or used */
        }
      }
    }
    this.ws.changed();
  }

  private pinnedKey = (u: UserId): Uint8Array | undefined => this.pins.get(u)?.key;
  private formerKeys = (u: UserId): Uint8Array[] => this.former.get(u) ?? [];

  async verification(userId: string): Promise<Verification> {
    const keys = this.requireKeys();
    const user = toUserId(userId);
    await this.observeUsers([userId], true);
    const pin = this.pins.get(user);
    if (!pin) throw new Error("This person has not set up encryption yet.");
    const shown = pin.pending ?? pin.key;
    const n = await SafetyNumber.compute({ user: this.me, identityKey: keys.identityPublic }, { user, identityKey: shown });
    return { user, safetyNumber: n.display(), verified: pin.state === "Verified" && !pin.pending, changed: !!pin.pending };
  }

  markVerified(userId: string): void {
    const user = toUserId(userId);
    const pin = this.pins.get(user);
    if (!pin || pin.pending) throw new Error("Accept the new key before marking it verified.");
    this.pins.markVerified(user, pin.key);
    this.savePins();
    this.ws.changed();
    void this.ws.refreshViews();
  }

  /**
   * Accepts a contact's changed key; the old one still checks what it signed before.
   * The room keys held back from the new key are handed on at once (E13).
   */
  acceptKeyChange(userId: string): void {
    const user = toUserId(userId);
    const pending = this.pins.get(user)?.pending;
    if (!pending) return;
    this.replacePin(user, pending);
    this.ws.changed();
    void this.ws.refreshViews().then(() => this.shareKeysEverywhere());
  }

  /** Pins one's own key, made here or opened with the password: a change of it is one's own doing. */
  private adoptOwn(bundle: PublicBundle): void {
    if (this.pins.observe(this.me, bundle.identityKey).kind === "Changed") this.replacePin(this.me, bundle.identityKey);
    else this.savePins();
  }

  /** Replaces a pin by its pending key, keeping the old key as a former key (§4.2). */
  private replacePin(user: UserId, key: Uint8Array): void {
    const { former } = this.pins.acceptChange(user, key);
    this.former.set(user, [...this.formerKeys(user), former]);
    localStorage.setItem(`${STORE}former.${this.me}`, JSON.stringify(Object.fromEntries([...this.former].map(([u, ks]) => [u, ks.map(toBase64)]))));
    this.keyChanges.delete(user);
    this.savePins();
    this.chains.clear();
  }

  isVerified(userId: string): boolean {
    const pin = this.pins.get(toUserId(userId));
    return !!pin && pin.state === "Verified" && !pin.pending;
  }

  // --- room state chains (B11) ---

  /** The room's verified chain, or null when it has none. */
  async chain(roomId: string, refresh = false): Promise<RoomChain | null> {
    const room = toRoomId(roomId);
    const cached = this.chains.get(room);
    if (!refresh && cached) return cached;
    if (!refresh && this.unchained.has(room)) return null;
    const { statements } = await this.ws.http.json<{ statements: string[] }>("GET", `/api/v1/rooms/${seg(room)}/statements`);
    // A chain only grows: one shorter than verified before (here, or in an earlier
    // session) is an older state the server replays, a removal left out, say. Keep the
    // newer state and warn; with none in memory, refuse the room's chain.
    if (statements.length < (this.heads[room] ?? 0)) {
      this.rolledBack.add(room);
      this.ws.changed();
      if (cached) return cached;
      throw new Error(ROLLED_BACK);
    }
    this.rolledBack.delete(room);
    if (statements.length === 0) {
      this.chains.delete(room);
      this.unchained.add(room);
      return null;
    }
    this.unchained.delete(room);
    const decoded = statements.map((s) => decodeStatement(fromBase64(s)));
    await this.observeUsers(decoded.map((s) => s.actor));
    let chain: RoomChain;
    const prefix = cached && cached.length <= decoded.length && cached.statements().every((s, i) => toHex(s.encode()) === toHex(decoded[i]!.encode()));
    // Each statement under its actor's key in effect (protocol §5.5).
    const opts = { formerKeys: this.formerKeys, pendingKey: (u: UserId) => this.pins.get(u)?.pending ?? undefined };
    if (cached && prefix) {
      chain = cached;
      await chain.extend(decoded.slice(cached.length), this.pinnedKey, opts);
    } else {
      chain = await RoomChain.verify(room, decoded, this.pinnedKey, opts);
    }
    this.chains.set(room, chain);
    if (chain.length > (this.heads[room] ?? 0)) {
      this.heads[room] = chain.length;
      localStorage.setItem(`${STORE}heads.${this.me}`, JSON.stringify(this.heads));
    }
    return chain;
  }

  private async requiredChain(roomId: string): Promise<RoomChain> {
    const c = await this.chain(roomId, true);
    if (!c) throw new Error("This room's encryption is not set up yet: its creator has not signed it.");
    return c;
  }

  /**
   * Appends one's KeyChange (protocol §3.5) declaring `former` to every encrypted room
   * whose chain counts one as a member and does not declare it yet.
   */
  private async declareKeyChange(former: Uint8Array): Promise<void> {
    const declared = (c: RoomChain) => c.state.keyChangeList().some((k) => k.user === this.me && toHex(k.former) === toHex(former));
    for (const room of [...this.ws.rooms.values()]) {
      const chain = await this.chain(room.id, true).catch(() => null);
      if (!chain || declared(chain) || !chain.state.isMember(this.me)) continue;
      await this.addStatement(room.id, (c) => {
        // Checked on the fresh head of each attempt: declaring twice would be refused.
        if (declared(c)) throw new Error("The key change is declared already.");
        return { type: "KeyChange", former };
      }).catch(() => undefined);
    }
  }

  /** Signs `action` on the verified head and stores it; retried when another member's statement won. */
  private async addStatement(roomId: string, action: (c: RoomChain) => Action): Promise<RoomChain> {
    const keys = this.requireKeys();
    for (let attempt = 0; ; attempt++) {
      const chain = await this.requiredChain(roomId);
      const stmt = await chain.propose(action(chain), this.me, keys);
      try {
        await this.ws.http.json("POST", `/api/v1/rooms/${seg(roomId)}/statements`, { statement: toBase64(stmt.encode()) });
        return await this.requiredChain(roomId);
      } catch (e) {
        if (!(e instanceof ApiError && e.code === "conflict") || attempt >= 3) throw e;
      }
    }
  }

  /** Signs the creation statement of a new encrypted room and declares its first epoch. */
  async startChain(room: Room): Promise<void> {
    if (await this.chain(room.id, true)) return;
    const keys = this.requireKeys();
    const members = (await this.ws.loadMembers(room.id)).map((m) => toUserId(m.user_id));
    const kind: RoomKind = room.kind === "direct" ? (members.length === 2 ? "DirectMessage" : "GroupDirectMessage") : room.kind === "team" ? "PrivateTeam" : room.kind === "discussion" ? "Discussion" : "PrivateChannel";
    const stmt = Statement.create(toRoomId(room.id), { kind, members, encrypted: true, historyShared: true }, this.me, keys);
    try {
      await this.ws.http.json("POST", `/api/v1/rooms/${seg(room.id)}/statements`, { statement: toBase64(stmt.encode()) });
    } catch (e) {
      // The other person of a DM started it first: use theirs.
      if (!(e instanceof ApiError && e.code === "conflict")) throw e;
    }
    const chain = await this.requiredChain(room.id);
    if (chain.state.rotationDue()) await this.rotate(room.id);
  }

  /** Members as the server lists them, each flagged when the signed state does not vouch for them. */
  async memberChecks(room: Room): Promise<MemberCheck[] | null> {
    const chain = await this.chain(room.id);
    if (!chain) return null;
    return (this.ws.members.get(room.id) ?? []).map((member) => ({ member, notVouched: !chain.state.isMember(member.user_id) }));
  }

  async invite(roomId: string, userId: string): Promise<void> {
    await this.addStatement(roomId, () => ({ type: "Invite", user: toUserId(userId) }));
    await this.distribute(roomId).catch(() => undefined);
  }

  async remove(roomId: string, userId: string): Promise<void> {
    await this.addStatement(roomId, () => ({ type: "Remove", user: toUserId(userId) }));
  }

  async leave(roomId: string): Promise<void> {
    try {
      await this.addStatement(roomId, () => ({ type: "Leave" }));
    } catch (e) {
      // The stored Leave is answered with the room as the caller now sees it: gone.
      if (!(e instanceof ApiError && e.code === "not_found")) throw e;
    }
    this.chains.delete(roomId);
    this.epochKeys.delete(roomId);
  }

  /** "Enable E2E" / "Disable E2E" (E6). */
  setEncryption(room: Room, on: boolean): Promise<void> {
    // The server flags the room encrypted before its chain is signed: a message typed
    // in between waits for the chain instead of being refused.
    return this.track(room.id, this.changeEncryption(room, on));
  }

  private async changeEncryption(room: Room, on: boolean): Promise<void> {
    if (await this.chain(room.id, true)) {
      await this.addStatement(room.id, () => ({ type: "SetEncryption", on }));
      return;
    }
    if (on) this.requireKeys();
    await this.ws.http.json("PUT", `/api/v1/rooms/${seg(room.id)}/encryption`, { on });
    if (on) await this.startChain(await this.ws.http.json<Room>("GET", `/api/v1/rooms/${seg(room.id)}`));
  }

  /** Whether text to the room must be sealed: the chain decides, not the server's flag (B12). */
  async mustSeal(room: Room): Promise<boolean> {
    await this.pending.get(room.id);
    // The server's flag can be ahead of the statement that started the chain: look again.
    const chain = (await this.chain(room.id)) ?? (room.encrypted ? await this.chain(room.id, true) : null);
    if (chain) return chain.state.isEncrypted();
    if (room.encrypted) throw new Error("This room is encrypted but its encryption is not set up yet; nothing was sent.");
    return false;
  }

  // --- room keys (E13, B3) ---

  private keyOf(roomId: string, epoch: EpochId): EpochKey | undefined {
    return this.epochKeys.get(roomId)?.get(toHex(epoch));
  }

  private remember(roomId: string, key: EpochKey): void {
    let m = this.epochKeys.get(roomId);
    if (!m) this.epochKeys.set(roomId, (m = new Map()));
    m.set(toHex(key.epochId), key);
  }

  /** `GET …/keys`, opening the boxes not opened yet against the verified chain. */
  private async loadKeys(roomId: string, chain: RoomChain): Promise<RoomKeyState> {
    const answer = await this.ws.http.json<RoomKeyState>("GET", `/api/v1/rooms/${seg(roomId)}/keys`);
    const keys = this.keys;
    if (!keys) return answer;
    const boxes: RoomKeyBox[] = [];
    for (const item of answer.keys) {
      try {
        const b = RoomKeyBox.decode(fromBase64(item.box));
        if (!this.keyOf(roomId, b.epochId)) boxes.push(b);
      } catch {
        /* a malformed box is never used */
      }
    }
    await this.observeUsers(boxes.map((b) => b.distributor));
    const handedOn: EpochKey[] = [];
    for (const b of boxes) {
      try {
        // Signed before the distributor's key change: the chain's former keys for the epoch, then the kept ones.
        const formerKeys = (u: UserId) => [...chain.state.formerKeysSinceEpoch(u, b.epochId), ...this.formerKeys(u)];
        const key = await b.open(this.me, keys, chain.state, this.pinnedKey, { formerKeys });
        this.remember(roomId, key);
        if (b.distributor !== this.me) handedOn.push(key);
      } catch {
        /* a refused box is never used; the client keeps waiting for a valid one */
      }
    }
    // Keep an own copy of keys another member handed on: it replaces theirs on the
    // server, so later sessions can open it even after that member leaves the room.
    if (handedOn.length) await this.sealAndUpload(roomId, chain, handedOn, [], true).catch(() => undefined);
    return answer;
  }

  /** Declares a new epoch and seals its key to every authorized member and to oneself. */
  rotate(roomId: string): Promise<EpochKey> {
    // Until its key is sealed to oneself, a message sent meanwhile would find the new
    // epoch without its key.
    return this.track(roomId, this.newEpoch(roomId));
  }

  private async newEpoch(roomId: string): Promise<EpochKey> {
    const key = EpochKey.generate();
    const chain = await this.addStatement(roomId, () => ({ type: "NewEpoch", epoch: key.epochId }));
    this.remember(roomId, key);
    const others = chain.state.memberList().filter((u) => u !== this.me);
    await this.sealAndUpload(roomId, chain, [key], others, true);
    return key;
  }

  /** Hands every held key to the members the server says lack the current epoch. */
  async distribute(roomId: string): Promise<void> {
    const chain = await this.requiredChain(roomId);
    const answer = await this.loadKeys(roomId, chain);
    await this.giveHeld(roomId, chain, answer.lacking);
  }

  private async giveHeld(roomId: string, chain: RoomChain, users: string[]): Promise<void> {
    const to = users.filter((u) => u !== this.me);
    if (!to.length) return;
    const held = chain.state.epochList().map((e) => this.keyOf(roomId, e)).filter((k): k is EpochKey => !!k);
    await this.sealAndUpload(roomId, chain, held, to, false);
  }

  /**
   * Seals each key to each user the chain lets hold it, who is on the server's member
   * list and whose bundle matches the pin; a changed key gets nothing until accepted.
   */
  private async sealAndUpload(roomId: string, chain: RoomChain, keys: EpochKey[], users: string[], selfCopy: boolean): Promise<void> {
    const mine = this.requireKeys();
    const listed = new Set((await this.ws.loadMembers(roomId)).map((m) => m.user_id));
    const candidates = users.filter((u) => u !== this.me && chain.state.isMember(u) && listed.has(u));
    await this.observeUsers(candidates, true);
    const trusted = candidates.map((u) => this.bundles.get(u)).filter((b): b is PublicBundle => !!b && !this.keyChanges.has(b.user));
    const boxes: string[] = [];
    for (const key of keys) {
      const to = trusted.filter((b) => chain.state.mayHoldEpoch(key.epochId, b.user));
      if (selfCopy) to.push(mine.bundle(this.me));
      if (!to.length) continue;
      const sealed = await RoomKeyBox.sealForMembers(key, chain.state, mine, this.me, to, { pinned: this.pinnedKey });
      boxes.push(...sealed.map((b) => toBase64(b.encode())));
    }
    for (let i = 0; i < boxes.length; i += 1000) {
      await this.ws.http.json("POST", `/api/v1/rooms/${seg(roomId)}/keys`, { boxes: boxes.slice(i, i + 1000) });
    }
  }

  /** Runs `op` as a chain change of the room that sealing waits for (see mustSeal). */
  private track<T>(roomId: string, op: Promise<T>): Promise<T> {
    const all = Promise.all([this.pending.get(roomId), op.catch(() => undefined)]).then(() => undefined);
    this.pending.set(roomId, all);
    void all.then(() => {
      if (this.pending.get(roomId) === all) this.pending.delete(roomId);
    });
    return op;
  }

  /** The key to send with: a new epoch first when one is due. */
  private async sendingKey(roomId: string, chain: RoomChain): Promise<EpochKey> {
    const answer = await this.loadKeys(roomId, chain);
    if (chain.state.rotationDue() || answer.rotation_due) return this.rotate(roomId);
    const epoch = chain.state.currentEpoch();
    const key = epoch && this.keyOf(roomId, epoch);
    if (!key) throw new Error("Waiting for encryption key: a member who holds it hands it on when online.");
    return key;
  }

  /** Once unlocked: answer what other members are waiting for in each encrypted room. */
  private async shareKeysEverywhere(): Promise<void> {
    for (const room of this.ws.rooms.values()) {
      if (!room.encrypted) continue;
      await this.distribute(room.id).catch(() => undefined);
    }
  }

  // --- messages (§7) ---

  /** Seals a message (or an edit of `editOf`) under the room's current epoch. */
  async sealText(room: Room, text: string, file?: FileRef, editOf?: string): Promise<{ id: string; ciphertext: string }> {
    const keys = this.requireKeys();
    const chain = await this.requiredChain(room.id);
    // Nothing is sealed (nor a new epoch declared) on a state the server is rolling back.
    if (this.rolledBack.has(room.id)) throw new Error(ROLLED_BACK);
    if (!chain.state.isEncrypted()) throw new Error("This room's signed state says it is no longer encrypted; reload the room.");
    const key = await this.sendingKey(room.id, chain);
    const header = newHeader(toRoomId(room.id), key.epochId, this.me);
    const body: MessageBody = {
      ...textBody(toRoomId(room.id), this.me, text),
      editOf: editOf ? randomIdFromHex(editOf) : null,
      mentions: this.mentionsIn(room.id, text),
      attachments: file?.secret ? [file.secret as Attachment] : [],
    };
    const sealed = await sealEnvelope(body, header, key, keys);
    const id = randomIdToHex(header.messageId);
    // Our own envelope is accepted as sent, so reading it back is no replay.
    await this.accept(room.id, id, sealed);
    return { id, ciphertext: toBase64(sealed) };
  }

  /** Encrypts a file in chunks with a fresh key (§8); what to upload and what the message carries. */
  async encryptFile(file: File): Promise<{ blob: Blob; ref: FileRef }> {
    const fileKey = generateFileKey();
    const { stream, summary } = encryptTransform(fileKey);
    const blob = await new Response(file.stream().pipeThrough(stream)).blob();
    const s = await summary;
    const attachment: Omit<Attachment, "fileId"> = {
      fileKey,
      name: file.name || "file",
      mediaType: /^[\x20-\x7e]{1,255}$/.test(file.type) ? file.type : "application/octet-stream",
      size: s.plaintextLen,
      blobSha256: s.blobSha256,
      chunkSize: s.chunkSize,
    };
    return { blob, ref: { fileId: "", name: attachment.name, size: file.size, type: attachment.mediaType, secret: attachment } };
  }

  /** Decrypts a downloaded blob, checking it is exactly the file the message describes. */
  async decryptFile(body: ReadableStream<Uint8Array>, ref: FileRef): Promise<Blob> {
    const a = ref.secret as Attachment;
    const { stream } = decryptTransform(a.fileKey, { size: a.size, blobSha256: a.blobSha256, chunkSize: a.chunkSize });
    try {
      const plain = await new Response(body.pipeThrough(stream)).blob();
      return new Blob([plain], { type: a.mediaType });
    } catch {
      throw new Error("This file is corrupted: it is not the file that was sent.");
    }
  }

  /** Room members mentioned by `@username` (carried inside the envelope, never parsed by the server). */
  private mentionsIn(roomId: string, text: string): UserId[] {
    const names = new Set([...text.matchAll(/@([A-Za-z0-9._-]+)/g)].map((m) => m[1]!.toLowerCase()));
    return (this.ws.members.get(roomId) ?? []).filter((m) => names.has(m.username.toLowerCase())).map((m) => toUserId(m.user_id));
  }

  /**
   * Verifies a fetched page's signatures in one batch, for the envelopes whose sender is
   * pinned; `view` takes the result at its signature step (the order of checks stays §7.6's).
   */
  async verifyPage(messages: readonly Message[]): Promise<SignatureVerifier | undefined> {
    if (!this.keys) return undefined;
    const envelopes = messages.flatMap((m) => {
      try {
        return m.ciphertext !== null && !m.deleted ? [fromBase64(m.ciphertext)] : [];
      } catch {
        return []; // damaged: `open` says so
      }
    });
    if (envelopes.length === 0) return undefined;
    return verifyEnvelopeSignatures(envelopes, (sender) => this.pins.get(sender)?.key);
  }

  async view(room: Room, m: Message, verify?: SignatureVerifier): Promise<MessageView> {
    const base: MessageView = {
      id: m.id,
      seq: m.seq,
      senderId: m.sender_id,
      time: m.created_at,
      edited: m.edited_at !== null,
      deleted: false,
      text: null,
      encrypted: true,
      verified: false,
      problem: null,
      otr: false,
      file: null,
      mentionsMe: false,
    };
    try {
      const { body, verified } = await this.open(room, m, true, verify);
      const a = body.attachments[0];
      return {
        ...base,
        text: body.text,
        verified,
        mentionsMe: body.mentions.includes(this.me),
        file: a ? { fileId: a.fileId, name: a.name, size: Number(a.size), type: a.mediaType, secret: a } : null,
      };
    } catch (e) {
      const kind = e instanceof Undecryptable ? e.kind : "Malformed";
      return { ...base, problem: PROBLEMS[kind]! };
    }
  }

  /**
   * Opens an envelope with every check of §7.6; `place`: also whether the room's order
   * allows it (see `superseded`); `verify`: a page's batch of signature results.
   */
  private async open(room: Room, m: Message, place = true, verify?: SignatureVerifier): Promise<{ body: MessageBody; verified: boolean }> {
    const bytes = fromBase64(m.ciphertext ?? "");
    let header;
    try {
      header = peekEnvelope(bytes);
    } catch {
      throw new Undecryptable("Malformed");
    }
    if (header.roomId !== room.id) throw new Undecryptable("NotThisMessage");
    if (header.senderId !== m.sender_id) throw new Undecryptable("ForgedSender");
    if (!this.keys) throw new Undecryptable("Locked");
    let chain = await this.chain(room.id).catch(() => null);
    if (!chain || !chain.state.declares(header.epochId)) chain = await this.chain(room.id, true).catch(() => null);
    if (!chain) throw new Undecryptable(this.rolledBack.has(room.id) ? "RolledBack" : "NoChain");
    let key = this.keyOf(room.id, header.epochId);
    if (!key) {
      await this.loadKeys(room.id, chain).catch(() => undefined);
      key = this.keyOf(room.id, header.epochId);
    }
    if (!key) throw new Undecryptable("WaitingForKey");
    const sender = header.senderId;
    if (!this.pins.get(sender)) await this.observeUsers([sender]);
    const pin = this.pins.get(sender);
    if (!pin) throw new Undecryptable("UnknownSender");
    const state = chain.state;
    let opened;
    try {
      opened = await openEnvelope(bytes, {
        room: toRoomId(room.id),
        epochKey: key,
        senderKey: pin.key,
        authorized: (u) => state.mayHoldEpoch(header.epochId, u),
        formerKeys: pin.pending ? [] : [...state.formerKeysSinceEpoch(sender, header.epochId), ...this.formerKeys(sender)],
        verify,
      });
    } catch (e) {
      if (e instanceof EnvelopeError && e.kind === "BadSignature") throw new Undecryptable(pin.pending ? "KeyChanged" : "BadSignature");
      if (e instanceof EnvelopeError && e.kind === "SenderNotAuthorized") throw new Undecryptable("SenderNotAuthorized");
      throw new Undecryptable("Malformed");
    }
    const id = randomIdToHex(header.messageId);
    const editOf = opened.body.editOf ? randomIdToHex(opened.body.editOf) : null;
    if (id !== m.id && editOf !== m.id) throw new Undecryptable("NotThisMessage");
    if (place && (await this.superseded(room, m, header.epochId, sender, state))) throw new Undecryptable("SupersededEpoch");
    await this.accept(room.id, id, bytes);
    const own = sender === this.me && this.keys.matches(this.myBundle ?? this.keys.bundle(this.me));
    return { body: opened.body, verified: !opened.underFormerKey && (own || (pin.state === "Verified" && !pin.pending)) };
  }

  /**
   * Whether an envelope under `epoch` from `sender` comes, in the room's order, after a
   * later epoch the sender may not hold (a removed member still holding the old key):
   * after that epoch's statement as this device saw it arrive, or after a message that
   * opened under it. An honest server stores envelopes only under the current epoch
   * (§7.5), so only the server can have put it there. Only envelopes that open count as
   * later: a forged one cannot get a genuine message flagged.
   */
  private async superseded(room: Room, m: Message, epoch: EpochId, sender: UserId, state: RoomChain["state"]): Promise<boolean> {
    const epochs = state.epochList();
    const mine = epochs.findIndex((e) => toHex(e) === toHex(epoch));
    if (mine < 0) return false;
    const barred = new Set(epochs.slice(mine + 1).filter((e) => !state.mayHoldEpoch(e, sender)).map(toHex));
    if (barred.size === 0) return false;
    const declared = this.declaredAt[room.id] ?? {};
    if ([...barred].some((e) => (declared[e] ?? Infinity) < m.version_seq)) return true;
    for (const x of this.ws.timelines.get(room.id)?.messages ?? []) {
      if (x.version_seq >= m.version_seq || x.ciphertext === null || x.deleted) continue;
      let later: string;
      try {
        later = toHex(peekEnvelope(fromBase64(x.ciphertext)).epochId);
      } catch {
        continue;
      }
      if (!barred.has(later)) continue;
      if (await this.open(room, x, false).then(() => true, () => false)) return true;
    }
    return false;
  }

  /**
   * Why a plaintext message cannot be shown in this room, or null. Once the verified
   * chain says encrypted, members only seal (B12): plaintext placed after a message
   * sealed under an epoch declared since encryption was last turned on came from the
   * server. (Plaintext from before encryption was turned on stays readable.)
   */
  async plaintextProblem(room: Room, m: Message, timeline: Message[]): Promise<string | null> {
    const chain = await this.chain(room.id).catch(() => null);
    if (!chain && this.rolledBack.has(room.id)) return PROBLEMS.RolledBack!;
    if (!chain || !chain.state.isEncrypted()) return null;
    const since = epochsSinceEncrypted(chain);
    for (const x of timeline) {
      if (x.seq >= m.seq || x.ciphertext === null || x.deleted) continue;
      try {
        if (since.has(toHex(peekEnvelope(fromBase64(x.ciphertext)).epochId))) return PROBLEMS.NotEncrypted!;
      } catch {
        /* a damaged envelope says nothing about when encryption began */
      }
    }
    return null;
  }

  /** The replay check (§7.7): an envelope id is accepted once; the same envelope reads again. */
  private async accept(roomId: string, envelopeId: string, envelope: Uint8Array): Promise<void> {
    const digest = toHex(await sha256(envelope));
    const room = (this.seen[roomId] ??= {});
    const known = room[envelopeId];
    if (known && known !== digest) throw new Undecryptable("Replayed");
    if (!known) {
      room[envelopeId] = digest;
      this.saveSeenSoon();
    }
  }

  private seenSaving = false;

  /** Writes the seen ids once for all the messages a page or a burst accepted. */
  private saveSeenSoon(): void {
    if (this.seenSaving) return;
    this.seenSaving = true;
    setTimeout(() => {
      this.seenSaving = false;
      localStorage.setItem(`${STORE}seen.${this.me}`, JSON.stringify(this.seen));
    }, 0);
  }

  // --- realtime ---

  onFrame(f: ServerFrame): void {
    void this.handle(f).catch(() => undefined);
  }

  private async handle(f: ServerFrame): Promise<void> {
    switch (f.type) {
      case "room_key_request": {
        if (!this.keys) return;
        const chain = await this.requiredChain(f.room_id);
        const epoch = randomIdFromHex(f.epoch_id, "EpochId");
        if (!this.keyOf(f.room_id, epoch)) await this.loadKeys(f.room_id, chain);
        const key = this.keyOf(f.room_id, epoch);
        if (!key) return;
        // The server asks once per epoch a member lacks (protocol §6.2): answer with that one.
        const to = f.user_ids.filter((u) => u !== this.me);
        if (to.length) await this.sealAndUpload(f.room_id, chain, [key], to, false);
        return;
      }
      case "room_key": {
        if (!this.keys) return;
        const chain = await this.requiredChain(f.room_id);
        await this.loadKeys(f.room_id, chain);
        await this.ws.refreshViews(f.room_id);
        return;
      }
      case "statement_added":
        this.unchained.delete(f.room_id);
        this.noteDeclaration(f.room_id, f.statement, f.seq);
        // The statement that removes this user, or records their leaving, is the last of
        // the room they see: the server refuses them its chain from then on.
        if (endsMembership(f.statement, this.me)) {
          this.chains.delete(toRoomId(f.room_id));
          this.epochKeys.delete(f.room_id);
          return;
        }
        await this.chain(f.room_id, true);
        await this.ws.refreshViews(f.room_id);
        return;
      case "keys_changed":
        if (f.user_id === this.me) await this.init();
        else await this.observeUsers([f.user_id], true);
        this.ws.changed();
        return;
      case "member_added":
        if (f.member.user_id === this.me && this.ws.rooms.get(f.room_id)?.encrypted) await this.ws.refreshViews(f.room_id);
        return;
      default:
        return;
    }
  }

  /** Remembers where in the room's order a new epoch was declared, as it arrives (see `superseded`). */
  private noteDeclaration(roomId: string, statement: string, seq: number): void {
    let epoch: string;
    try {
      const s = decodeStatement(fromBase64(statement));
      if (s.action.type !== "NewEpoch") return;
      epoch = toHex(s.action.epoch);
    } catch {
      return;
    }
    const room = (this.declaredAt[roomId] ??= {});
    if (room[epoch] !== undefined) return;
    room[epoch] = seq;
    localStorage.setItem(`${STORE}declared.${this.me}`, JSON.stringify(this.declaredAt));
  }

  // --- persistence of public state (pins, accepted parameters) ---

  private savePins(): void {
    localStorage.setItem(`${STORE}pins.${this.me}`, toBase64(this.pins.encode()));
  }

  private saveAccepted(p: KdfParams): void {
    localStorage.setItem(`${STORE}kdf.${this.me}`, JSON.stringify(p));
  }

  // --- for off-the-record (state/otr.ts) ---

  /** The unlocked keys, for the OTR handshake's agreement secret. */
  otrKeys(): IdentityKeys {
    return this.requireKeys();
  }

  /**
   * A contact's bundle, fetched afresh, checked and matching the pinned identity key
   * (pinned on first use); a pending key change or a missing bundle is an error in the
   * user's words.
   */
  async trustedBundle(userId: string): Promise<PublicBundle> {
    const user = toUserId(userId);
    const { bundles } = await this.ws.http.json<{ bundles: { user_id: string; bundle: string }[] }>("GET", `/api/v1/keys?user_ids=${encodeURIComponent(user)}`);
    const found = bundles.find((b) => b.user_id === user);
    if (!found) throw new Error(`${this.ws.displayName(user)} has not set up encryption yet.`);
    let bundle: PublicBundle;
    try {
      bundle = this.checkBundle(found.bundle, user);
    } catch {
      throw new Error(`The keys the server gave for ${this.ws.displayName(user)} are invalid.`);
    }
    this.observe(bundle);
    this.ws.changed();
    if (this.keyChanges.has(user)) throw new Error(`${this.ws.displayName(user)}'s encryption key changed: check it and accept the change first.`);
    const pinned = this.bundles.get(user);
    if (!pinned || toHex(pinned.identityKey) !== toHex(bundle.identityKey)) throw new Error(`${this.ws.displayName(user)}'s encryption key does not match the one pinned on this device.`);
    return bundle;
  }
}

/** Why a served backup was refused, for someone who does not know what Argon2id is. */
function backupRefusal(e: BackupError): string {
  switch (e.kind) {
    case "ParamsBelowFloor":
    case "WeakerParams":
      return "Your key backup was refused: its password protection is too weak, so the server may have tampered with it. Nothing was unlocked.";
    case "BundleForOtherUser":
    case "KeysDoNotMatchBundle":
      return "Your key backup was refused: it does not match your identity (the keys inside are not your published keys). Nothing was unlocked.";
    default:
      return `Your key backup was refused (${e.kind}): it may have been tampered with.`;
  }
}

function loadPins(me: UserId): PinStore {
  const saved = localStorage.getItem(`${STORE}pins.${me}`);
  if (saved) {
    try {
      return PinStore.decode(fromBase64(saved));
    } catch {
      /* a damaged store starts over: keys are pinned again on first use */
    }
  }
  return new PinStore();
}

function loadJson<T>(key: string, fallback: T): T {
  try {
    const s = localStorage.getItem(key);
    return s ? (JSON.parse(s) as T) : fallback;
  } catch {
    return fallback;
  }
}

export { ChainError };

/** The epochs (hex) the chain declared since it last turned encryption on. */
function epochsSinceEncrypted(chain: RoomChain): Set<string> {
  let since = new Set<string>();
  for (const s of chain.statements()) {
    const a = s.action;
    if ((a.type === "Create" && a.encrypted) || (a.type === "SetEncryption" && a.on)) since = new Set();
    else if (a.type === "NewEpoch") since.add(toHex(a.epoch));
  }
  return since;
}

/** Whether the encoded statement removes `me` from its room, or is `me` leaving it. */
function endsMembership(statement: string, me: UserId): boolean {
  try {
    const s = decodeStatement(fromBase64(statement));
    return (s.action.type === "Remove" && s.action.user === me) || (s.action.type === "Leave" && s.actor === me);
  } catch {
    return false;
  }
}
