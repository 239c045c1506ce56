// Room-key boxes (docs/protocol.md §6): one epoch's key, HPKE-sealed to one member's
// X25519 key and signed by the member who hands it on (the distributor). A member's
// own copies are boxes sealed and signed by themselves (distributor = recipient).

import { DecodeError, Reader, Writer, equalBytes, signingInput } from "./encoding";
import { type EpochId, type RoomId, type UserId, readRandomId, readRoomId, readUserId, writeId } from "./ids";
import type { IdentityKeys } from "./identity";
import type { KeyResolver } from "./chain/index";
import type { RoomState } from "./chain/state";
import { EPOCH_KEY_LEN, EpochKey, type Rng } from "./epoch";
import { ed25519Verify, hpkeOpen, hpkeSeal } from "./primitives";

export const ROOM_KEY_LABEL = "sotto/v1/room-key";
export const ROOM_KEY_INFO_LABEL = "sotto/v1/room-key-info";
/** Length of the HPKE encapsulated key. */
export const ENC_LEN = 32;
/** Length of the sealed epoch key: the key and the 16-byte tag. */
export const SEALED_KEY_LEN = EPOCH_KEY_LEN + 16;
const SIGNATURE_LEN = 64;

export type RoomKeyErrorKind =
  | "Decode"
  | "InvalidRecipientKey"
  | "NotForMe"
  | "WrongRoom"
  | "UnknownEpoch"
  | "DistributorNotAuthorized"
  | "RecipientNotAuthorized"
  | "UnknownDistributor"
  | "BadSignature"
  | "DecryptFailed";

/** Why a room-key box could not be made or was refused (§6.1, §6.3). */
export class RoomKeyError extends Error {
  constructor(
    readonly kind: RoomKeyErrorKind,
    readonly decode?: DecodeError,
  ) {
    super(decode ? `${kind}: ${decode.message}` : kind);
    this.name = "RoomKeyError";
  }
}

/** What sealing needs of a recipient's public bundle (a PublicBundle fits). */
export interface RecipientBundle {
  readonly user: UserId;
  readonly identityKey: Uint8Array;
  readonly agreementKey: Uint8Array;
}

function encodeHeader(room: RoomId, epoch: EpochId, recipient: UserId, distributor: UserId): Uint8Array {
  if (epoch.length !== 16) throw new RangeError("epoch id must be 16 bytes");
  const w = new Writer().u8(1);
  writeId(w, room).raw(epoch);
  writeId(w, recipient);
  writeId(w, distributor);
  return w.finish();
}

/** HPKE `info`: `bytes8("sotto/v1/room-key-info") ‖ header`. */
export function roomKeyInfo(room: RoomId, epoch: EpochId, recipient: UserId, distributor: UserId): Uint8Array {
  return signingInput(ROOM_KEY_INFO_LABEL, encodeHeader(room, epoch, recipient, distributor));
}

/** Who may hand `recipient` the key of `epoch`: a holder that is still a member, or anyone for its own self-copy. */
function mayDistribute(state: RoomState, epoch: EpochId, distributor: UserId, recipient: UserId): boolean {
  return state.mayHoldEpoch(epoch, distributor) && (state.isMember(distributor) || distributor === recipient);
}

export interface SealOptions {
  /**
   * The HPKE ephemeral X25519 secret, only to reproduce vectors; production leaves it
   * out and HPKE draws a fresh one.
   */
  ephemeralSecret?: Uint8Array;
}

/** One epoch key sealed to one recipient, signed by its distributor. */
export class RoomKeyBox {
  private constructor(
    readonly roomId: RoomId,
    readonly epochId: EpochId,
    readonly recipient: UserId,
    readonly distributor: UserId,
    readonly enc: Uint8Array,
    readonly sealedKey: Uint8Array,
    readonly signature: Uint8Array,
  ) {}

  /**
   * Seals `epochKey` of `room` to `recipient`'s agreement key and signs the box as
   * `distributor`. No chain checks: use `sealForMembers` unless those were done.
   * `InvalidRecipientKey` when HPKE cannot encapsulate to the key.
   */
  static async seal(epochKey: EpochKey, room: RoomId, distributorKeys: IdentityKeys, distributor: UserId, recipient: RecipientBundle, opts: SealOptions = {}): Promise<RoomKeyBox> {
    const epoch = epochKey.epochId;
    const info = roomKeyInfo(room, epoch, recipient.user, distributor);
    let enc: Uint8Array;
    let ct: Uint8Array;
    try {
      const key = epochKey.keyBytes();
      ({ enc, ciphertext: ct } = await hpkeSeal(recipient.agreementKey, info, new Uint8Array(0), key, opts.ephemeralSecret));
      key.fill(0);
    } catch {
      throw new RoomKeyError("InvalidRecipientKey");
    }
    if (enc.length !== ENC_LEN || ct.length !== SEALED_KEY_LEN) throw new RoomKeyError("InvalidRecipientKey");
    const header = encodeHeader(room, epoch, recipient.user, distributor);
    const body = new Writer().raw(header).raw(enc).raw(ct).finish();
    const signature = distributorKeys.sign(ROOM_KEY_LABEL, body);
    return new RoomKeyBox(room, Uint8Array.from(epoch), recipient.user, distributor, enc, ct, signature);
  }

  /**
   * Seals `epochKey` to every recipient after checking, against the room's verified
   * state, that the chain declares the epoch (`UnknownEpoch`), that the distributor
   * may hand it to each of them (`DistributorNotAuthorized`), and that each recipient
   * may hold it (`RecipientNotAuthorized`). With `pinned`, each recipient bundle's
   * identity key must also be the pinned one (`RecipientNotAuthorized`). Nothing is
   * sealed if any check fails. `ephemeral` is for vectors only: one secret per recipient.
   */
  static async sealForMembers(
    epochKey: EpochKey,
    state: RoomState,
    distributorKeys: IdentityKeys,
    distributor: UserId,
    recipients: readonly RecipientBundle[],
    opts: { pinned?: KeyResolver; ephemeral?: Rng } = {},
  ): Promise<RoomKeyBox[]> {
    const epoch = epochKey.epochId;
    if (!state.declares(epoch)) throw new RoomKeyError("UnknownEpoch");
    if (recipients.some((b) => !mayDistribute(state, epoch, distributor, b.user))) throw new RoomKeyError("DistributorNotAuthorized");
    if (recipients.some((b) => !state.mayHoldEpoch(epoch, b.user))) throw new RoomKeyError("RecipientNotAuthorized");
    const pinned = opts.pinned;
    if (pinned) {
      for (const b of recipients) {
        const key = pinned(b.user);
        if (!key || !equalBytes(key, b.identityKey)) throw new RoomKeyError("RecipientNotAuthorized");
      }
    }
    const out: RoomKeyBox[] = [];
    for (const b of recipients) {
      const ephemeralSecret = opts.ephemeral?.(32);
      out.push(await RoomKeyBox.seal(epochKey, state.roomId, distributorKeys, distributor, b, ephemeralSecret ? { ephemeralSecret } : {}));
    }
    return out;
  }

  /** Parses a box without any key (what the server does). Throws DecodeError. */
  static decode(bytes: Uint8Array): RoomKeyBox {
    const r = new Reader(bytes);
    r.version();
    const room = readRoomId(r);
    const epoch = readRandomId(r);
    const recipient = readUserId(r);
    const distributor = readUserId(r);
    const enc = Uint8Array.from(r.take(ENC_LEN));
    const sealed = Uint8Array.from(r.take(SEALED_KEY_LEN));
    const signature = Uint8Array.from(r.take(SIGNATURE_LEN));
    r.finish();
    return new RoomKeyBox(room, epoch, recipient, distributor, enc, sealed, signature);
  }

  /** `0x01 ‖ room ‖ epoch ‖ recipient ‖ distributor`. */
  header(): Uint8Array {
    return encodeHeader(this.roomId, this.epochId, this.recipient, this.distributor);
  }

  /** The HPKE info this box was sealed with. */
  info(): Uint8Array {
    return roomKeyInfo(this.roomId, this.epochId, this.recipient, this.distributor);
  }

  /** The signed bytes (after the label): header ‖ enc ‖ sealed key. */
  body(): Uint8Array {
    return new Writer().raw(this.header()).raw(this.enc).raw(this.sealedKey).finish();
  }

  encode(): Uint8Array {
    return new Writer().raw(this.body()).raw(this.signature).finish();
  }

  /** Whether this is a member's own copy (sealed by and to the same user). */
  isSelfCopy(): boolean {
    return this.recipient === this.distributor;
  }

  /** Checks only the distributor's signature (strict). */
  verifySignature(distributorKey: Uint8Array): boolean {
    return ed25519Verify(distributorKey, signingInput(ROOM_KEY_LABEL, this.body()), this.signature);
  }

  /**
   * The recipient's checks of §6.3 steps 2–9, in order: `NotForMe`, `WrongRoom`,
   * `UnknownEpoch`, `DistributorNotAuthorized`, `RecipientNotAuthorized`,
   * `UnknownDistributor`, `BadSignature`, `DecryptFailed`. `keys` gives pinned identity
   * keys; `formerKeys` the distributor's keys from before an accepted change (§4.2).
   */
  async open(me: UserId, myKeys: IdentityKeys, state: RoomState, keys: KeyResolver, opts: { formerKeys?: (user: UserId) => readonly Uint8Array[] } = {}): Promise<EpochKey> {
    if (this.recipient !== me) throw new RoomKeyError("NotForMe");
    if (this.roomId !== state.roomId) throw new RoomKeyError("WrongRoom");
    if (!state.declares(this.epochId)) throw new RoomKeyError("UnknownEpoch");
    if (!mayDistribute(state, this.epochId, this.distributor, this.recipient)) throw new RoomKeyError("DistributorNotAuthorized");
    if (!state.mayHoldEpoch(this.epochId, this.recipient)) throw new RoomKeyError("RecipientNotAuthorized");
    const key = keys(this.distributor);
    if (!key) throw new RoomKeyError("UnknownDistributor");
    if (!this.verifySignature(key) && !(opts.formerKeys?.(this.distributor) ?? []).some((k) => this.verifySignature(k))) {
      throw new RoomKeyError("BadSignature");
    }
    const secret = myKeys.agreementSecret();
    let plain: Uint8Array;
    try {
      plain = await hpkeOpen(secret, this.enc, this.info(), new Uint8Array(0), this.sealedKey);
    } catch {
      throw new RoomKeyError("DecryptFailed");
    } finally {
      secret.fill(0);
    }
    if (plain.length !== EPOCH_KEY_LEN) throw new RoomKeyError("DecryptFailed");
    const epochKey = new EpochKey(this.epochId, plain);
    plain.fill(0);
    return epochKey;
  }
}

/** Decodes a box (`Decode`) and runs every check of §6.3, in order. */
export async function openRoomKeyBox(
  bytes: Uint8Array,
  me: UserId,
  myKeys: IdentityKeys,
  state: RoomState,
  keys: KeyResolver,
  opts: { formerKeys?: (user: UserId) => readonly Uint8Array[] } = {},
): Promise<EpochKey> {
  let box: RoomKeyBox;
  try {
    box = RoomKeyBox.decode(bytes);
  } catch (e) {
    if (e instanceof DecodeError) throw new RoomKeyError("Decode", e);
    throw e;
  }
  return box.open(me, myKeys, state, keys, opts);
}
