// A user's keys (docs/protocol.md §2): an Ed25519 identity key that signs, an X25519
// key for key agreement, and the signed public bundle the server publishes.

import { DecodeError, Reader, Writer, equalBytes, signingInput } from "./encoding";
import { type UserId, readUserId, writeId } from "./ids";
import { ed25519IsValidPublicKey, ed25519PublicKey, ed25519Sign, ed25519Verify, randomBytes, x25519PublicKey } from "./primitives";

export const SIGNATURE_LEN = 64;
export const KEY_LEN = 32;
/** Length of the encoded private keys: version, Ed25519 seed, X25519 secret. */
export const PRIVATE_KEYS_LEN = 65;

const BUNDLE_LABEL = "sotto/v1/bundle";

export type BundleErrorKind = "Decode" | "InvalidIdentityKey" | "BadSignature";

/** Why a public bundle was refused; `decode` carries the decoding error for `Decode`. */
export class BundleError extends Error {
  constructor(
    readonly kind: BundleErrorKind,
    readonly decode?: DecodeError,
  ) {
    super(decode ? `${kind}: ${decode.message}` : kind);
    this.name = "BundleError";
  }
}

/** True when `key` is a canonical Ed25519 point of large order (§2). */
export function isValidIdentityKey(key: Uint8Array): boolean {
  return ed25519IsValidPublicKey(key);
}

/** Strict verification of `signature` over `bytes8(label) ‖ parts…` (§1.4). */
export function verifyIdentitySignature(identityKey: Uint8Array, label: string, parts: Uint8Array[], signature: Uint8Array): boolean {
  return ed25519Verify(identityKey, signingInput(label, ...parts), signature);
}

/** A user's private keys. The secrets live in private fields, so they never show in logs. */
export class IdentityKeys {
  readonly #isk: Uint8Array;
  readonly #ask: Uint8Array;
  /** Ed25519 identity public key `ipk`. */
  readonly identityPublic: Uint8Array;
  /** X25519 agreement public key `apk`. */
  readonly agreementPublic: Uint8Array;

  private constructor(isk: Uint8Array, ask: Uint8Array, ipk: Uint8Array, apk: Uint8Array) {
    this.#isk = isk;
    this.#ask = ask;
    this.identityPublic = ipk;
    this.agreementPublic = apk;
  }

  /** Keys from a 32-byte Ed25519 seed and a 32-byte X25519 secret. */
  static async fromSecrets(isk: Uint8Array, ask: Uint8Array): Promise<IdentityKeys> {
    if (isk.length !== KEY_LEN || ask.length !== KEY_LEN) throw new RangeError("identity secrets must be 32 bytes each");
    const seed = Uint8Array.from(isk);
    const secret = Uint8Array.from(ask);
    return new IdentityKeys(seed, secret, ed25519PublicKey(seed), await x25519PublicKey(secret));
  }

  /** Fresh keys: 32 bytes for `isk`, then 32 bytes for `ask`, from `random`. */
  static async generate(random: (n: number) => Uint8Array = randomBytes): Promise<IdentityKeys> {
    const isk = random(KEY_LEN);
    const ask = random(KEY_LEN);
    return IdentityKeys.fromSecrets(isk, ask);
  }

  /** Decodes `0x01 ‖ isk ‖ ask`; throws DecodeError. */
  static async fromBytes(bytes: Uint8Array): Promise<IdentityKeys> {
    const r = new Reader(bytes);
    r.version();
    const isk = r.take(KEY_LEN);
    const ask = r.take(KEY_LEN);
    r.finish();
    return IdentityKeys.fromSecrets(isk, ask);
  }

  /** The 65-byte private keys encoding `0x01 ‖ isk ‖ ask` (secret: the caller wipes it). */
  toBytes(): Uint8Array {
    return new Writer().u8(1).raw(this.#isk).raw(this.#ask).finish();
  }

  /** The X25519 secret, for HPKE and agreement by the modules that need it. */
  agreementSecret(): Uint8Array {
    return Uint8Array.from(this.#ask);
  }

  /** Signs `bytes8(label) ‖ parts…`. */
  sign(label: string, ...parts: Uint8Array[]): Uint8Array {
    return ed25519Sign(this.#isk, signingInput(label, ...parts));
  }

  /** The signed public bundle for `user`. */
  bundle(user: UserId): PublicBundle {
    const body = bundleBody(user, this.identityPublic, this.agreementPublic);
    // Decoded back, so every PublicBundle in memory has passed the receiver's checks.
    return PublicBundle.decode(new Writer().raw(body).raw(this.sign(BUNDLE_LABEL, body)).finish());
  }

  /** Whether these private keys are the ones behind `bundle`. */
  matches(bundle: PublicBundle): boolean {
    return equalBytes(this.identityPublic, bundle.identityKey) && equalBytes(this.agreementPublic, bundle.agreementKey);
  }

  /** Overwrites the secrets in memory; the object is unusable afterwards. */
  wipe(): void {
    this.#isk.fill(0);
    this.#ask.fill(0);
  }

  toString(): string {
    return "IdentityKeys(…)";
  }

  toJSON(): string {
    return this.toString();
  }
}

function bundleBody(user: UserId, ipk: Uint8Array, apk: Uint8Array): Uint8Array {
  return writeId(new Writer().u8(1), user).raw(ipk).raw(apk).finish();
}

/** A user's public keys, self-signed by the identity key and bound to the user id. */
export class PublicBundle {
  private constructor(
    readonly user: UserId,
    readonly identityKey: Uint8Array,
    readonly agreementKey: Uint8Array,
    readonly signature: Uint8Array,
  ) {}

  /** `body ‖ sig`. */
  encode(): Uint8Array {
    return new Writer().raw(bundleBody(this.user, this.identityKey, this.agreementKey)).raw(this.signature).finish();
  }

  /**
   * Parses a bundle and checks, in order, the encoding (`Decode`), the identity key
   * (`InvalidIdentityKey`) and the self-signature (`BadSignature`).
   */
  static decode(bytes: Uint8Array): PublicBundle {
    let user: UserId;
    let ipk: Uint8Array;
    let apk: Uint8Array;
    let sig: Uint8Array;
    try {
      const r = new Reader(bytes);
      r.version();
      user = readUserId(r);
      ipk = r.take(KEY_LEN);
      apk = r.take(KEY_LEN);
      sig = r.take(SIGNATURE_LEN);
      r.finish();
    } catch (e) {
      if (e instanceof DecodeError) throw new BundleError("Decode", e);
      throw e;
    }
    if (!isValidIdentityKey(ipk)) throw new BundleError("InvalidIdentityKey");
    if (!verifyIdentitySignature(ipk, BUNDLE_LABEL, [bundleBody(user, ipk, apk)], sig)) throw new BundleError("BadSignature");
    return new PublicBundle(user, Uint8Array.from(ipk), Uint8Array.from(apk), Uint8Array.from(sig));
  }

  equals(other: PublicBundle): boolean {
    return equalBytes(this.encode(), other.encode());
  }
}
