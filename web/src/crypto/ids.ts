// Identifiers the protocol binds into signatures and associated data (docs/protocol.md §1.3).

import { DecodeError, Reader, Writer, fromUtf8, utf8 } from "./encoding";
import { randomBytes } from "./primitives";

/** Longest user or room id, in bytes. */
export const MAX_ID_LEN = 64;
/** Length of a message, epoch or OTR session id. */
export const RANDOM_ID_LEN = 16;

declare const userIdBrand: unique symbol;
declare const roomIdBrand: unique symbol;
/** A user's id as the server assigns it; only `userId` and `readUserId` make one. */
export type UserId = string & { readonly [userIdBrand]: true };
/** A room's id as the server assigns it; only `roomId` and `readRoomId` make one. */
export type RoomId = string & { readonly [roomIdBrand]: true };

/** 1 to 64 bytes of ASCII letters, digits, `-`, `_`, `.` or `:`. */
export function isValidId(s: string): boolean {
  return /^[A-Za-z0-9._:-]{1,64}$/.test(s);
}

export function userId(s: string): UserId {
  if (!isValidId(s)) throw new DecodeError("InvalidField", "user id");
  return s as UserId;
}

export function roomId(s: string): RoomId {
  if (!isValidId(s)) throw new DecodeError("InvalidField", "room id");
  return s as RoomId;
}

/** `bytes8(ascii)`. */
export function writeId(w: Writer, id: UserId | RoomId): Writer {
  return w.bytes8(utf8(id));
}

/** The encoding `bytes8(ascii)` of an id on its own. */
export function encodeId(id: UserId | RoomId): Uint8Array {
  return writeId(new Writer(), id).finish();
}

function readText(r: Reader, what: "user id" | "room id"): string {
  const raw = r.bytes8();
  let s: string;
  try {
    s = fromUtf8(raw);
  } catch {
    throw new DecodeError("InvalidField", what);
  }
  if (!isValidId(s)) throw new DecodeError("InvalidField", what);
  return s;
}

export function readUserId(r: Reader): UserId {
  return readText(r, "user id") as UserId;
}

export function readRoomId(r: Reader): RoomId {
  return readText(r, "room id") as RoomId;
}

/**
 * Byte order of two ids (negative, zero, positive). Ids are ASCII, so this is the
 * order of their encodings' contents, as the protocol's sorted lists require.
 */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// --- 16-byte random ids: message, epoch, OTR session ---

/** A message's id: 16 random bytes chosen by the sender. */
export type MessageId = Uint8Array;
/** A room key epoch's id: 16 random bytes chosen by whoever starts the epoch. */
export type EpochId = Uint8Array;
/** An OTR session's id: 16 random bytes chosen by the initiator. */
export type OtrSessionId = Uint8Array;

export type RandomIdKind = "MessageId" | "EpochId" | "OtrSessionId";

/** A fresh 16-byte id; `random` is for tests that reproduce vectors. */
export function newRandomId(random: (n: number) => Uint8Array = randomBytes): Uint8Array {
  const id = random(RANDOM_ID_LEN);
  if (id.length !== RANDOM_ID_LEN) throw new RangeError("random id must be 16 bytes");
  return Uint8Array.from(id);
}

/** Checks a 16-byte id held in memory. */
export function checkRandomId(id: Uint8Array, kind: RandomIdKind = "MessageId"): Uint8Array {
  if (id.length !== RANDOM_ID_LEN) throw new DecodeError("InvalidField", kind);
  return id;
}

/** Reads `fixed(16)`; the copy does not alias the input. */
export function readRandomId(r: Reader): Uint8Array {
  return Uint8Array.from(r.take(RANDOM_ID_LEN));
}

/** The id as 32 lowercase hex digits. */
export function randomIdToHex(id: Uint8Array): string {
  let s = "";
  for (const b of id) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Parses exactly 32 hex digits (either case; no sign, no prefix). */
export function randomIdFromHex(s: string, kind: RandomIdKind = "MessageId"): Uint8Array {
  if (!/^[0-9a-fA-F]{32}$/.test(s)) throw new DecodeError("InvalidField", kind);
  const out = new Uint8Array(RANDOM_ID_LEN);
  for (let i = 0; i < RANDOM_ID_LEN; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Byte order of two byte strings (shorter prefix first). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}
