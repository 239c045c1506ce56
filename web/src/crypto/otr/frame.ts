// The OTR wire frames (protocol §9.1, §10.4) and the padded message body inside a
// data frame (§10.5). Mirrors crates/sotto-crypto/src/otr/frame.rs.
//
// Every frame starts with the version byte, a kind byte and the 16-byte session id,
// so the server can route it by session without parsing the rest.

import { DecodeError, Reader, Writer, utf8 } from "../encoding";
import { type RoomId, type UserId, readRoomId, readUserId, writeId } from "../ids";
import { OtrError } from "./error";

/** Protocol version byte. */
export const VERSION = 1;
/** Length of an OTR session id. */
export const SESSION_ID_LEN = 16;
/** Length of an X25519 public key, and of a confirmation MAC. */
export const KEY_LEN = 32;
/** Largest encoded message body (before padding): 4 MiB. */
export const MAX_BODY_LEN = 4 * 1024 * 1024;
/** Longest file name, in UTF-8 bytes. */
export const MAX_FILE_NAME_LEN = 255;
/** Smallest padded body. */
const MIN_PADDED_LEN = 256;
/** AES-GCM tag length. */
const TAG_LEN = 16;

const KIND_OFFER = 1;
const KIND_ACCEPT = 2;
const KIND_CONFIRM = 3;
const KIND_DECLINE = 4;
const KIND_DATA = 5;
const KIND_REFRESH = 6;
const KIND_END = 7;

const BODY_TEXT = 1;
const BODY_FILE = 2;

/** An invitation to a handshake (also the content of a refresh). */
export interface Offer {
  /** The session the handshake is for (16 bytes). */
  session: Uint8Array;
  /** The direct-message room the session belongs to. */
  room: RoomId;
  /** Who starts this handshake. */
  initiator: UserId;
  /** Who is asked to answer. */
  responder: UserId;
  /** The initiator's fresh X25519 ephemeral public key `E_I`. */
  ephemeral: Uint8Array;
}

/** The responder's answer: its ephemeral key `E_R` and its confirmation MAC. */
export interface Accept {
  session: Uint8Array;
  ephemeral: Uint8Array;
  mac: Uint8Array;
}

/** The initiator's key confirmation, with its first ratchet public key `T_I`. */
export interface Confirm {
  session: Uint8Array;
  ratchetKey: Uint8Array;
  mac: Uint8Array;
}

/** A ratchet message header, bound into the associated data. */
export interface Header {
  /** The sender's current ratchet public key. */
  ratchetKey: Uint8Array;
  /** `PN`: how many messages the sender sent in its previous sending chain (u32). */
  previousChainLen: number;
  /** `N`: the message's number in the current sending chain (u32). */
  number: number;
}

/** An encrypted message. */
export interface Data {
  session: Uint8Array;
  header: Header;
  /** AES-256-GCM ciphertext of the padded body, with its tag. */
  ciphertext: Uint8Array;
}

/** One OTR frame, as relayed by the server. */
export type Frame =
  | ({ kind: "Offer" } & Offer)
  | ({ kind: "Accept" } & Accept)
  | ({ kind: "Confirm" } & Confirm)
  | { kind: "Decline"; session: Uint8Array }
  | ({ kind: "Data" } & Data)
  | ({ kind: "Refresh" } & Offer)
  | { kind: "End"; session: Uint8Array };

export type FrameKind = Frame["kind"];

const KIND_BYTE: Record<FrameKind, number> = {
  Offer: KIND_OFFER,
  Accept: KIND_ACCEPT,
  Confirm: KIND_CONFIRM,
  Decline: KIND_DECLINE,
  Data: KIND_DATA,
  Refresh: KIND_REFRESH,
  End: KIND_END,
};

function fixed(w: Writer, v: Uint8Array, len: number, what: string): void {
  if (v.length !== len) throw new RangeError(`${what} must be ${len} bytes`);
  w.raw(v);
}

function checkU32(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${what} must be a u32`);
}

function writeHeader(w: Writer, h: Header): void {
  fixed(w, h.ratchetKey, KEY_LEN, "ratchet key");
  checkU32(h.previousChainLen, "previous chain length");
  checkU32(h.number, "message number");
  w.u32(h.previousChainLen).u32(h.number);
}

function readHeader(r: Reader): Header {
  const ratchetKey = r.take(KEY_LEN).slice();
  const previousChainLen = r.u32();
  const number = r.u32();
  return { ratchetKey, previousChainLen, number };
}

/** The header's canonical bytes: `fixed(32) ratchet_key ‖ u32 PN ‖ u32 N`. */
export function headerBytes(h: Header): Uint8Array {
  const w = new Writer();
  writeHeader(w, h);
  return w.finish();
}

/** The canonical encoding of a frame. */
export function encodeFrame(f: Frame): Uint8Array {
  const w = new Writer().u8(VERSION).u8(KIND_BYTE[f.kind]);
  fixed(w, f.session, SESSION_ID_LEN, "session id");
  switch (f.kind) {
    case "Offer":
    case "Refresh":
      writeId(w, f.room);
      writeId(w, f.initiator);
      writeId(w, f.responder);
      fixed(w, f.ephemeral, KEY_LEN, "ephemeral key");
      break;
    case "Accept":
      fixed(w, f.ephemeral, KEY_LEN, "ephemeral key");
      fixed(w, f.mac, KEY_LEN, "mac");
      break;
    case "Confirm":
      fixed(w, f.ratchetKey, KEY_LEN, "ratchet key");
      fixed(w, f.mac, KEY_LEN, "mac");
      break;
    case "Data":
      writeHeader(w, f.header);
      w.bytes32(f.ciphertext);
      break;
    case "Decline":
    case "End":
      break;
  }
  return w.finish();
}

/**
 * Parses a frame, refusing anything not in canonical form. Throws only DecodeError:
 * the version (`UnsupportedVersion`), then the kind byte and session id are read
 * (`Truncated`), the kind checked (`InvalidField("frame kind")`), each field read in
 * order, the Offer/Refresh participants and the Data ciphertext length checked, and
 * finally that nothing follows (`TrailingBytes`).
 */
export function decodeFrame(bytes: Uint8Array): Frame {
  const r = new Reader(bytes);
  r.version();
  const kind = r.u8();
  const session = r.take(SESSION_ID_LEN).slice();
  let frame: Frame;
  switch (kind) {
    case KIND_OFFER:
    case KIND_REFRESH: {
      const room = readRoomId(r);
      const initiator = readUserId(r);
      const responder = readUserId(r);
      const ephemeral = r.take(KEY_LEN).slice();
      if (initiator === responder) throw new DecodeError("InvalidField", "offer to oneself");
      frame = { kind: kind === KIND_OFFER ? "Offer" : "Refresh", session, room, initiator, responder, ephemeral };
      break;
    }
    case KIND_ACCEPT: {
      const ephemeral = r.take(KEY_LEN).slice();
      const mac = r.take(KEY_LEN).slice();
      frame = { kind: "Accept", session, ephemeral, mac };
      break;
    }
    case KIND_CONFIRM: {
      const ratchetKey = r.take(KEY_LEN).slice();
      const mac = r.take(KEY_LEN).slice();
      frame = { kind: "Confirm", session, ratchetKey, mac };
      break;
    }
    case KIND_DECLINE:
      frame = { kind: "Decline", session };
      break;
    case KIND_DATA: {
      const header = readHeader(r);
      const ciphertext = r.bytes32();
      if (!validCiphertextLen(ciphertext.length)) throw new DecodeError("InvalidField", "ciphertext length");
      frame = { kind: "Data", session, header, ciphertext: ciphertext.slice() };
      break;
    }
    case KIND_END:
      frame = { kind: "End", session };
      break;
    default:
      throw new DecodeError("InvalidField", "frame kind");
  }
  r.finish();
  return frame;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** A ciphertext is a padded body (a power of two from 256 bytes to 4 MiB) plus the tag. */
function validCiphertextLen(len: number): boolean {
  const padded = len - TAG_LEN;
  return padded >= MIN_PADDED_LEN && padded <= MAX_BODY_LEN && isPowerOfTwo(padded);
}

/** `P = max(256, the smallest power of two ≥ len)`. */
export function paddedLen(len: number): number {
  let p = MIN_PADDED_LEN;
  while (p < len) p *= 2;
  return p;
}

/** What an OTR message carries. */
export type Body = { kind: "text"; text: string } | { kind: "file"; name: string; mediaType: string; bytes: Uint8Array };

function validMediaType(t: Uint8Array): boolean {
  return t.length >= 1 && t.length <= 255 && t.every((b) => b >= 0x21 && b <= 0x7e);
}

/**
 * The body's canonical encoding followed by zero padding to its bucket size. Throws
 * OtrError: `Body(InvalidField("file name" | "media type"))` or `BodyTooLarge`.
 */
export function encodePaddedBody(body: Body): Uint8Array {
  const w = new Writer().u8(VERSION);
  if (body.kind === "text") {
    w.u8(BODY_TEXT).bytes32(utf8(body.text));
  } else {
    const name = utf8(body.name);
    if (name.length === 0 || name.length > MAX_FILE_NAME_LEN) throw new OtrError("Body", new DecodeError("InvalidField", "file name"));
    const mediaType = utf8(body.mediaType);
    if (!validMediaType(mediaType)) throw new OtrError("Body", new DecodeError("InvalidField", "media type"));
    const len = 2 + 1 + name.length + 1 + mediaType.length + 4 + body.bytes.length;
    if (len > MAX_BODY_LEN) throw new OtrError("BodyTooLarge");
    w.u8(BODY_FILE).bytes8(name).bytes8(mediaType).bytes32(body.bytes);
  }
  const encoded = w.finish();
  if (encoded.length > MAX_BODY_LEN) throw new OtrError("BodyTooLarge");
  const padded = new Uint8Array(paddedLen(encoded.length));
  padded.set(encoded);
  encoded.fill(0);
  return padded;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function readUtf8(b: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(b);
  } catch {
    throw new DecodeError("InvalidField", what);
  }
}

/**
 * Parses a padded body, refusing any padding that is not exactly the zeros an honest
 * sender adds. Throws only DecodeError.
 */
export function decodePaddedBody(padded: Uint8Array): Body {
  const r = new Reader(padded);
  r.version();
  let body: Body;
  switch (r.u8()) {
    case BODY_TEXT:
      body = { kind: "text", text: readUtf8(r.bytes32(), "text") };
      break;
    case BODY_FILE: {
      const nameBytes = r.bytes8();
      if (nameBytes.length === 0) throw new DecodeError("InvalidField", "file name");
      const name = readUtf8(nameBytes, "file name");
      const mediaType = r.bytes8();
      if (!validMediaType(mediaType)) throw new DecodeError("InvalidField", "media type");
      const bytes = r.bytes32().slice();
      body = { kind: "file", name, mediaType: String.fromCharCode(...mediaType), bytes };
      break;
    }
    default:
      throw new DecodeError("InvalidField", "body kind");
  }
  const used = padded.length - r.remaining();
  const pad = r.take(r.remaining());
  if (padded.length !== paddedLen(used) || pad.some((b) => b !== 0)) throw new DecodeError("InvalidField", "padding");
  return body;
}
