// Message envelopes (docs/protocol.md §7): a message body, padded and sealed under the
// room key of one epoch, behind a cleartext header the server routes by, signed by the
// sender.
//
//   header    = 0x01 ‖ bytes8(room_id) ‖ fixed(16) epoch_id ‖ bytes8(sender_id) ‖ fixed(16) message_id
//   envelope  = header ‖ fixed(12) nonce ‖ ciphertext ‖ fixed(64) signature
//   ciphertext = AES-256-GCM(epoch_key, nonce, aad = header, pad(body))
//   signature = Ed25519(isk, bytes8("sotto/v1/message") ‖ header ‖ nonce ‖ ciphertext)

import { type Attachment, type MessageBody, decodeBody, encodeBody } from "./body";
import { DecodeError, Reader, Writer, equalBytes, signingInput, toHex } from "./encoding";
import type { EpochKey, Rng } from "./epoch";
import { type EpochId, type MessageId, type RoomId, type UserId, checkRandomId, newRandomId, readRandomId, readRoomId, readUserId, writeId } from "./ids";
import type { IdentityKeys } from "./identity";
import { MAX_DATA_LEN, PaddingError, isBucket, pad, unpad } from "./padding";
import { aesGcmOpen, aesGcmSeal, ed25519Verify, ed25519VerifyAsync, ed25519VerifyBatch, randomBytes, type SignedItem } from "./primitives";
import type { SeenMessages } from "./replay";

export const MESSAGE_LABEL = "sotto/v1/message";
export const NONCE_LEN = 12;
export const TAG_LEN = 16;
const SIGNATURE_LEN = 64;
/** Most messages one epoch key may seal, across all senders (§7.4 nonce bound). */
export const MAX_MESSAGES_PER_EPOCH = 2 ** 32;

/** The cleartext header: what the server routes and checks by. */
export interface EnvelopeHeader {
  roomId: RoomId;
  epochId: EpochId;
  senderId: UserId;
  messageId: MessageId;
}

/** A header for a new message, with a fresh random message id drawn from `rng`. */
export function newHeader(roomId: RoomId, epochId: EpochId, senderId: UserId, rng: Rng = randomBytes): EnvelopeHeader {
  return { roomId, epochId: checkRandomId(epochId, "EpochId"), senderId, messageId: newRandomId(rng) };
}

/** The header's canonical bytes (also the AEAD associated data). */
export function encodeHeader(h: EnvelopeHeader): Uint8Array {
  const w = new Writer().u8(1);
  writeId(w, h.roomId).raw(checkRandomId(h.epochId, "EpochId"));
  writeId(w, h.senderId).raw(checkRandomId(h.messageId, "MessageId"));
  return w.finish();
}

function readHeader(r: Reader): EnvelopeHeader {
  r.version();
  const roomId = readRoomId(r);
  const epochId = readRandomId(r);
  const senderId = readUserId(r);
  const messageId = readRandomId(r);
  return { roomId, epochId, senderId, messageId };
}

interface Parsed {
  header: EnvelopeHeader;
  headerBytes: Uint8Array;
  signed: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
  signature: Uint8Array;
}

/** The structure check of §7.5; throws DecodeError. */
function parse(bytes: Uint8Array): Parsed {
  const r = new Reader(bytes);
  const header = readHeader(r);
  const headerLen = bytes.length - r.remaining();
  const nonce = r.take(NONCE_LEN);
  const rest = r.remaining();
  if (rest < SIGNATURE_LEN + TAG_LEN) throw new DecodeError("Truncated");
  const ctLen = rest - SIGNATURE_LEN;
  if (!isBucket(ctLen - TAG_LEN)) throw new DecodeError("InvalidField", "ciphertext length");
  const ciphertext = r.take(ctLen);
  const signature = r.take(SIGNATURE_LEN);
  r.finish();
  return {
    header,
    headerBytes: bytes.subarray(0, headerLen),
    signed: bytes.subarray(0, bytes.length - SIGNATURE_LEN),
    nonce,
    ciphertext,
    signature,
  };
}

/**
 * Reads the header of a whole envelope without any key, after checking its structure
 * (§7.5; `EnvelopeHeader::peek` in Rust). Throws DecodeError.
 */
export function peekEnvelope(bytes: Uint8Array): EnvelopeHeader {
  return parse(bytes).header;
}

export type SealErrorKind = "WrongEpoch" | "InnerMismatch" | "InvalidBody" | "TooLarge";

/** Why a message could not be sealed (§7.4). */
export class SealError extends Error {
  constructor(
    readonly kind: SealErrorKind,
    readonly decode?: DecodeError,
  ) {
    super(decode ? `${kind}: ${decode.message}` : kind);
    this.name = "SealError";
  }
}

export type EnvelopeErrorKind =
  | "Decode"
  | "WrongRoom"
  | "WrongEpoch"
  | "SenderNotAuthorized"
  | "BadSignature"
  | "DecryptFailed"
  | "BadPadding"
  | "BadBody"
  | "InnerMismatch"
  | "Replayed";

/** Why an envelope was refused (§7.6), in the order the checks run. */
export class EnvelopeError extends Error {
  constructor(
    readonly kind: EnvelopeErrorKind,
    /** For `Decode` and `BadBody`: the decoding error. */
    readonly decode?: DecodeError,
  ) {
    super(decode ? `${kind}: ${decode.message}` : kind);
    this.name = "EnvelopeError";
  }
}

/**
 * Pads, encrypts and signs `body` as message `header` under `epochKey` (§7.4). The
 * body must repeat the header's room and sender (`InnerMismatch`), the header's epoch
 * must be the key's (`WrongEpoch`), the body must be within its limits (`InvalidBody`,
 * `TooLarge`). The 12-byte nonce is the only randomness drawn from `rng`.
 */
export async function sealEnvelope(body: MessageBody, header: EnvelopeHeader, epochKey: EpochKey, senderKeys: IdentityKeys, rng: Rng = randomBytes): Promise<Uint8Array> {
  if (body.roomId !== header.roomId || body.senderId !== header.senderId) throw new SealError("InnerMismatch");
  if (!equalBytes(header.epochId, epochKey.epochId)) throw new SealError("WrongEpoch");
  let encoded: Uint8Array;
  try {
    encoded = encodeBody(body);
  } catch (e) {
    if (e instanceof DecodeError) throw new SealError("InvalidBody", e);
    throw e;
  }
  if (encoded.length > MAX_DATA_LEN) throw new SealError("TooLarge");
  const padded = pad(encoded);
  encoded.fill(0);
  const headerBytes = encodeHeader(header);
  const nonce = rng(NONCE_LEN);
  if (nonce.length !== NONCE_LEN) throw new RangeError("nonce must be 12 bytes");
  const key = epochKey.keyBytes();
  const ciphertext = await aesGcmSeal(key, nonce, padded, headerBytes);
  key.fill(0);
  padded.fill(0);
  const signed = new Writer().raw(headerBytes).raw(nonce).raw(ciphertext).finish();
  return new Writer().raw(signed).raw(senderKeys.sign(MESSAGE_LABEL, signed)).finish();
}

export interface OpenEnvelopeOptions {
  /** The room the envelope was delivered in. */
  room: RoomId;
  /** The room key of the header's epoch (§6). */
  epochKey: EpochKey;
  /** The sender's pinned identity key. */
  senderKey: Uint8Array;
  /**
   * Who may send under this epoch (`members_at_epoch` of the chain, §5.6): a set of
   * user ids or a predicate such as `(u) => state.mayHoldEpoch(epoch, u)`.
   */
  authorized: ReadonlySet<string> | readonly string[] | ((user: UserId) => boolean);
  /** Keys the sender had before an accepted key change (§4.2), tried if the pinned key fails. */
  formerKeys?: readonly Uint8Array[];
  /** The room's seen message ids (§7.7); with it, step 10 runs and records the id. */
  seen?: SeenMessages;
  /** Checks the signature under `senderKey` (default `ed25519VerifyAsync`); see `verifyEnvelopeSignatures`. */
  verify?: SignatureVerifier;
}

/** A strict Ed25519 check of `signature` over `message` under `publicKey`. */
export type SignatureVerifier = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => Promise<boolean>;

/**
 * Verifies the signatures of many envelopes (a page of history) in one batch, each under
 * its sender's key as `senderKey` gives it (envelopes that do not parse, or whose sender
 * has none, are left out), and returns the verifier to pass to `openEnvelope`: it answers
 * from the batch for exactly the (key, signing input, signature) bytes checked, and
 * verifies anything else afresh.
 */
export async function verifyEnvelopeSignatures(envelopes: readonly Uint8Array[], senderKey: (sender: UserId) => Uint8Array | undefined): Promise<SignatureVerifier> {
  const items: SignedItem[] = [];
  for (const bytes of envelopes) {
    let env: Parsed;
    try {
      env = parse(bytes);
    } catch {
      continue;
    }
    const publicKey = senderKey(env.header.senderId);
    if (publicKey) items.push({ publicKey, message: signingInput(MESSAGE_LABEL, env.signed), signature: env.signature });
  }
  const results = await ed25519VerifyBatch(items);
  const bySignature = new Map<string, number[]>();
  items.forEach((it, i) => {
    const id = toHex(it.signature);
    bySignature.set(id, [...(bySignature.get(id) ?? []), i]);
  });
  return async (publicKey, message, signature) => {
    const i = (bySignature.get(toHex(signature)) ?? []).find((j) => equalBytes(items[j]!.publicKey, publicKey) && equalBytes(items[j]!.message, message));
    return i === undefined ? ed25519VerifyAsync(publicKey, message, signature) : results[i]!;
  };
}

export interface OpenedEnvelope {
  header: EnvelopeHeader;
  body: MessageBody;
  /** True when the signature verified only under a former key: never show it as verified. */
  underFormerKey: boolean;
}

function isAuthorized(a: OpenEnvelopeOptions["authorized"], user: UserId): boolean {
  if (typeof a === "function") return a(user);
  if (Array.isArray(a)) return (a as readonly string[]).includes(user);
  return (a as ReadonlySet<string>).has(user);
}

/**
 * Checks and opens an envelope (§7.6), in this order, throwing EnvelopeError with the
 * kind of the first failure: `Decode`, `WrongRoom`, `WrongEpoch`, `SenderNotAuthorized`,
 * `BadSignature`, `DecryptFailed`, `BadPadding`, `BadBody`, `InnerMismatch`, and, when
 * `seen` is given, `Replayed` (only then is the id recorded).
 */
export async function openEnvelope(bytes: Uint8Array, opts: OpenEnvelopeOptions): Promise<OpenedEnvelope> {
  let env: Parsed;
  try {
    env = parse(bytes);
  } catch (e) {
    if (e instanceof DecodeError) throw new EnvelopeError("Decode", e);
    throw e;
  }
  const h = env.header;
  if (h.roomId !== opts.room) throw new EnvelopeError("WrongRoom");
  if (!equalBytes(h.epochId, opts.epochKey.epochId)) throw new EnvelopeError("WrongEpoch");
  if (!isAuthorized(opts.authorized, h.senderId)) throw new EnvelopeError("SenderNotAuthorized");
  const input = signingInput(MESSAGE_LABEL, env.signed);
  let underFormerKey = false;
  if (!(await (opts.verify ?? ed25519VerifyAsync)(opts.senderKey, input, env.signature))) {
    if (!(opts.formerKeys ?? []).some((k) => ed25519Verify(k, input, env.signature))) throw new EnvelopeError("BadSignature");
    underFormerKey = true;
  }
  const key = opts.epochKey.keyBytes();
  let padded: Uint8Array;
  try {
    padded = await aesGcmOpen(key, env.nonce, env.ciphertext, env.headerBytes);
  } catch {
    throw new EnvelopeError("DecryptFailed");
  } finally {
    key.fill(0);
  }
  let plain: Uint8Array;
  try {
    plain = unpad(padded);
  } catch (e) {
    if (e instanceof PaddingError) throw new EnvelopeError("BadPadding");
    throw e;
  }
  let body: MessageBody;
  try {
    body = decodeBody(plain);
  } catch (e) {
    if (e instanceof DecodeError) throw new EnvelopeError("BadBody", e);
    throw e;
  } finally {
    padded.fill(0);
  }
  if (body.roomId !== h.roomId || body.senderId !== h.senderId) throw new EnvelopeError("InnerMismatch");
  if (opts.seen) {
    if (opts.seen.contains(h.roomId, h.messageId)) throw new EnvelopeError("Replayed");
    opts.seen.checkAndInsert(h.roomId, h.messageId);
  }
  return { header: h, body, underFormerKey };
}

export type { Attachment, MessageBody };
