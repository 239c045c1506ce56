// One signed statement of a room's state chain and its canonical encoding
// (docs/protocol.md §5.1).

import { DecodeError, Reader, Writer, signingInput } from "../encoding";
import { type EpochId, type RoomId, type UserId, checkRandomId, compareIds, readRandomId, readRoomId, readUserId, writeId } from "../ids";
import { type IdentityKeys, isValidIdentityKey } from "../identity";
import { ed25519Verify, sha256 } from "../primitives";
import { TooManyMembers } from "./errors";

export const STATEMENT_LABEL = "sotto/v1/room-state";
/** The `prev` of the creation statement. */
export const GENESIS_PREV: Uint8Array = new Uint8Array(32);
/** Most members a creation statement may list (its count is a `u16`). */
export const MAX_CREATE_MEMBERS = 0xffff;
const SIGNATURE_LEN = 64;

export type RoomKind = "DirectMessage" | "GroupDirectMessage" | "PrivateChannel" | "PrivateTeam" | "Discussion";

const KIND_CODES: Record<RoomKind, number> = {
  DirectMessage: 1,
  GroupDirectMessage: 2,
  PrivateChannel: 3,
  PrivateTeam: 4,
  Discussion: 5,
};
const KINDS: readonly RoomKind[] = ["DirectMessage", "GroupDirectMessage", "PrivateChannel", "PrivateTeam", "Discussion"];

/** Whether members of this kind of room may all toggle encryption (a DM of either size). */
export function isDirect(kind: RoomKind): boolean {
  return kind === "DirectMessage" || kind === "GroupDirectMessage";
}

/** The content of a creation statement. `members` is a set: encoding sorts it. */
export interface Create {
  kind: RoomKind;
  members: readonly UserId[];
  encrypted: boolean;
  historyShared: boolean;
}

export type Action =
  | ({ type: "Create" } & Create)
  | { type: "Invite"; user: UserId }
  | { type: "Remove"; user: UserId }
  | { type: "Leave" }
  | { type: "AddOwner"; user: UserId }
  | { type: "RemoveOwner"; user: UserId }
  | { type: "SetEncryption"; on: boolean }
  | { type: "NewEpoch"; epoch: EpochId }
  /** The actor's statements before this one were signed under `former` (its key before a reset). */
  | { type: "KeyChange"; former: Uint8Array };

/** The members of a Create in strictly ascending byte order, without duplicates. */
export function sortedMembers(members: readonly UserId[]): UserId[] {
  const out = [...new Set(members)].sort(compareIds);
  return out;
}

function writeAction(w: Writer, a: Action): void {
  switch (a.type) {
    case "Create": {
      const members = sortedMembers(a.members);
      if (members.length > MAX_CREATE_MEMBERS) throw new TooManyMembers();
      w.u8(1).u8(KIND_CODES[a.kind]).u8(a.encrypted ? 1 : 0).u8(a.historyShared ? 1 : 0).u16(members.length);
      for (const m of members) writeId(w, m);
      return;
    }
    case "Invite":
      writeId(w.u8(2), a.user);
      return;
    case "Remove":
      writeId(w.u8(3), a.user);
      return;
    case "Leave":
      w.u8(4);
      return;
    case "AddOwner":
      writeId(w.u8(5), a.user);
      return;
    case "RemoveOwner":
      writeId(w.u8(6), a.user);
      return;
    case "SetEncryption":
      w.u8(7).u8(a.on ? 1 : 0);
      return;
    case "NewEpoch":
      w.u8(8).raw(checkRandomId(a.epoch, "EpochId"));
      return;
    case "KeyChange":
      if (a.former.length !== 32) throw new RangeError("a former identity key is 32 bytes");
      w.u8(9).raw(a.former);
      return;
  }
}

function readFlag(r: Reader, what: string): boolean {
  const v = r.u8();
  if (v === 0) return false;
  if (v === 1) return true;
  throw new DecodeError("InvalidField", what);
}

function readAction(r: Reader): Action {
  const tag = r.u8();
  switch (tag) {
    case 1: {
      const kind = KINDS[r.u8() - 1];
      if (!kind) throw new DecodeError("InvalidField", "room kind");
      const encrypted = readFlag(r, "encrypted flag");
      const historyShared = readFlag(r, "history flag");
      const count = r.u16();
      const members: UserId[] = [];
      for (let i = 0; i < count; i++) {
        const m = readUserId(r);
        const last = members[members.length - 1];
        if (last !== undefined && compareIds(last, m) >= 0) throw new DecodeError("InvalidField", "member order");
        members.push(m);
      }
      return { type: "Create", kind, members, encrypted, historyShared };
    }
    case 2:
      return { type: "Invite", user: readUserId(r) };
    case 3:
      return { type: "Remove", user: readUserId(r) };
    case 4:
      return { type: "Leave" };
    case 5:
      return { type: "AddOwner", user: readUserId(r) };
    case 6:
      return { type: "RemoveOwner", user: readUserId(r) };
    case 7:
      return { type: "SetEncryption", on: readFlag(r, "encryption flag") };
    case 8:
      return { type: "NewEpoch", epoch: readRandomId(r) };
    case 9: {
      const former = Uint8Array.from(r.take(32));
      if (!isValidIdentityKey(former)) throw new DecodeError("InvalidField", "former identity key");
      return { type: "KeyChange", former };
    }
    default:
      throw new DecodeError("InvalidField", "action");
  }
}

function encodeBody(room: RoomId, seq: bigint, prev: Uint8Array, action: Action, actor: UserId): Uint8Array {
  if (seq < 0n || seq > 0xffffffffffffffffn) throw new RangeError("sequence number out of range");
  if (prev.length !== 32) throw new RangeError("prev must be 32 bytes");
  const w = new Writer().u8(1);
  writeId(w, room).u64(seq).raw(prev);
  writeAction(w, action);
  writeId(w, actor);
  return w.finish();
}

/** A signed change to a room's state: the `seq`-th link of the room's chain. */
export class Statement {
  #hash: Promise<Uint8Array> | undefined;

  private constructor(
    readonly roomId: RoomId,
    readonly seq: bigint,
    readonly prev: Uint8Array,
    readonly action: Action,
    readonly actor: UserId,
    readonly signature: Uint8Array,
  ) {}

  /** Signs a statement as `actor` with the actor's own keys. Throws TooManyMembers. */
  static sign(room: RoomId, seq: bigint, prev: Uint8Array, action: Action, actor: UserId, keys: IdentityKeys): Statement {
    const body = encodeBody(room, seq, prev, action, actor);
    const normalized = action.type === "Create" ? { ...action, members: sortedMembers(action.members) } : action;
    return new Statement(room, seq, Uint8Array.from(prev), normalized, actor, keys.sign(STATEMENT_LABEL, body));
  }

  /** The creation statement of a new room (seq 0, prev zeros). */
  static create(room: RoomId, create: Create, actor: UserId, keys: IdentityKeys): Statement {
    return Statement.sign(room, 0n, GENESIS_PREV, { type: "Create", ...create }, actor, keys);
  }

  /** The statement that follows `head` in the same room. */
  static async next(head: Statement, action: Action, actor: UserId, keys: IdentityKeys): Promise<Statement> {
    return Statement.sign(head.roomId, head.seq + 1n, await head.hash(), action, actor, keys);
  }

  /** Parses a statement; checks only the encoding. Throws DecodeError. */
  static decode(bytes: Uint8Array): Statement {
    const r = new Reader(bytes);
    r.version();
    const room = readRoomId(r);
    const seq = r.u64();
    const prev = Uint8Array.from(r.take(32));
    const action = readAction(r);
    const actor = readUserId(r);
    const signature = Uint8Array.from(r.take(SIGNATURE_LEN));
    r.finish();
    return new Statement(room, seq, prev, action, actor, signature);
  }

  /** The bytes the signature covers (after its label). */
  body(): Uint8Array {
    return encodeBody(this.roomId, this.seq, this.prev, this.action, this.actor);
  }

  /** Canonical encoding: body, then the 64-byte signature. */
  encode(): Uint8Array {
    return new Writer().raw(this.body()).raw(this.signature).finish();
  }

  /** SHA-256 of the full encoding, signature included: the next statement's `prev`. */
  hash(): Promise<Uint8Array> {
    this.#hash ??= sha256(this.encode());
    return this.#hash;
  }

  /** Strict verification of the signature under the actor's identity key. */
  verifySignature(actorKey: Uint8Array): boolean {
    return ed25519Verify(actorKey, signingInput(STATEMENT_LABEL, this.body()), this.signature);
  }
}
