// The deniable handshake (protocol §9.2): triple Diffie-Hellman between both users'
// agreement keys and fresh ephemeral keys, a transcript hash as HKDF salt, and
// confirmation MACs. Mirrors crates/sotto-crypto/src/otr/handshake.rs.

import { Writer, concat, equalBytes, signingInput, utf8 } from "../encoding";
import { type RoomId, type UserId, writeId } from "../ids";
import { AgreementError, hkdfSha256, hmacSha256, sha256, x25519, x25519PublicKey } from "../primitives";
import { OtrError } from "./error";
import { VERSION } from "./frame";

/** Labels of the OTR part of the protocol (§12). */
export const LABEL = {
  transcript: "sotto/v1/otr/transcript",
  handshake: "sotto/v1/otr/handshake",
  accept: "sotto/v1/otr/accept",
  confirm: "sotto/v1/otr/confirm",
  root: "sotto/v1/otr/root",
  message: "sotto/v1/otr/message",
  data: "sotto/v1/otr/data",
} as const;

/** Where randomness comes from: `n` fresh bytes per call (production: randomBytes). */
export type Rng = (n: number) => Uint8Array;

/** Draws a fresh 32-byte X25519 secret (clamped by X25519 itself). */
export function drawSecret(rng: Rng): Uint8Array {
  const s = rng(32);
  if (s.length !== 32) throw new RangeError("rng returned the wrong length");
  return Uint8Array.from(s);
}

/** Everything the transcript hash binds, in its fixed order. */
export interface Transcript {
  session: Uint8Array;
  room: RoomId;
  initiator: UserId;
  responder: UserId;
  /** `apk_I`, `apk_R`: the users' agreement public keys. */
  initiatorIdentity: Uint8Array;
  responderIdentity: Uint8Array;
  /** `E_I`, `E_R`. */
  initiatorEphemeral: Uint8Array;
  responderEphemeral: Uint8Array;
}

/** `th`: SHA-256 over the label and every public input of the handshake. */
export async function transcriptHash(t: Transcript): Promise<Uint8Array> {
  const w = new Writer().bytes8(utf8(LABEL.transcript)).u8(VERSION).raw(t.session);
  writeId(w, t.room);
  writeId(w, t.initiator);
  writeId(w, t.responder);
  w.raw(t.initiatorIdentity).raw(t.responderIdentity).raw(t.initiatorEphemeral).raw(t.responderEphemeral);
  return sha256(w.finish());
}

/** X25519, refusing an all-zero (non-contributory) result with `WeakKey`. */
export async function dh(secret: Uint8Array, peerPublic: Uint8Array): Promise<Uint8Array> {
  try {
    return await x25519(secret, peerPublic);
  } catch (e) {
    if (e instanceof AgreementError) throw new OtrError("WeakKey");
    throw e;
  }
}

/** The public key of an X25519 secret. */
export function publicKey(secret: Uint8Array): Promise<Uint8Array> {
  return x25519PublicKey(secret);
}

/** The side of the handshake this party plays. */
export type Role = "initiator" | "responder";

/** What a completed triple Diffie-Hellman yields. */
export class HandshakeKeys {
  private constructor(
    /** `th`, public. */
    readonly transcript: Uint8Array,
    /** `RK0`, handed to the ratchet. */
    readonly root: Uint8Array,
    private readonly acceptKey: Uint8Array,
    private readonly confirmKey: Uint8Array,
  ) {}

  /**
   * Runs the triple Diffie-Hellman from one side. `ownIdentity` (`ask`) and
   * `ownEphemeral` are this party's secrets; the transcript holds the public keys.
   */
  static async derive(role: Role, ownIdentity: Uint8Array, ownEphemeral: Uint8Array, t: Transcript): Promise<HandshakeKeys> {
    // DH1 = DH(ask_I, E_R), DH2 = DH(e_I, apk_R), DH3 = DH(e_I, E_R): each side computes the same three.
    const [dh1, dh2] =
      role === "initiator"
        ? [await dh(ownIdentity, t.responderEphemeral), await dh(ownEphemeral, t.responderIdentity)]
        : [await dh(ownEphemeral, t.initiatorIdentity), await dh(ownIdentity, t.initiatorEphemeral)];
    const dh3 = await dh(ownEphemeral, role === "initiator" ? t.responderEphemeral : t.initiatorEphemeral);
    const ikm = concat(dh1, dh2, dh3);
    const transcript = await transcriptHash(t);
    const okm = await hkdfSha256(ikm, transcript, utf8(LABEL.handshake), 96);
    for (const x of [dh1, dh2, dh3, ikm]) x.fill(0);
    const keys = new HandshakeKeys(transcript, okm.slice(0, 32), okm.slice(32, 64), okm.slice(64, 96));
    okm.fill(0);
    return keys;
  }

  /** `mac_R = HMAC(K_R, bytes8("sotto/v1/otr/accept") ‖ th)`. */
  acceptMac(): Promise<Uint8Array> {
    return hmacSha256(this.acceptKey, signingInput(LABEL.accept, this.transcript));
  }

  /** `mac_I = HMAC(K_I, bytes8("sotto/v1/otr/confirm") ‖ th ‖ T_I)`. */
  confirmMac(ratchetKey: Uint8Array): Promise<Uint8Array> {
    return hmacSha256(this.confirmKey, signingInput(LABEL.confirm, this.transcript, ratchetKey));
  }

  /** Checks the responder's MAC in constant time (`BadConfirmation`). */
  async verifyAccept(mac: Uint8Array): Promise<void> {
    if (!equalBytes(await this.acceptMac(), mac)) throw new OtrError("BadConfirmation");
  }

  /** Checks the initiator's MAC over its first ratchet key in constant time (`BadConfirmation`). */
  async verifyConfirm(ratchetKey: Uint8Array, mac: Uint8Array): Promise<void> {
    if (!equalBytes(await this.confirmMac(ratchetKey), mac)) throw new OtrError("BadConfirmation");
  }

  /** Overwrites every secret. */
  wipe(): void {
    this.root.fill(0);
    this.acceptKey.fill(0);
    this.confirmKey.fill(0);
  }
}
