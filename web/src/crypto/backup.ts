// The key backup (docs/protocol.md §3): the user's private keys sealed under a key
// derived from the encryption password with Argon2id, stored on the server as 122
// opaque bytes.

import { DecodeError, Reader, Writer, signingInput } from "./encoding";
import { IdentityKeys, PRIVATE_KEYS_LEN, type PublicBundle, verifyIdentitySignature } from "./identity";
import { type UserId, writeId } from "./ids";
import type { EncryptionPassword } from "./password";
import { AeadError, aesGcmOpen, aesGcmSeal, argon2id, randomBytes, sha256 } from "./primitives";

export const SALT_LEN = 16;
export const NONCE_LEN = 12;
export const KEK_LEN = 32;
export const CIPHERTEXT_LEN = PRIVATE_KEYS_LEN + 16;
export const BACKUP_LEN = 1 + 12 + SALT_LEN + NONCE_LEN + CIPHERTEXT_LEN;

const BACKUP_LABEL = "sotto/v1/backup";
const REPLACE_LABEL = "sotto/v1/backup-replace";

export type BackupErrorKind =
  | "Decode"
  | "ParamsBelowFloor"
  | "ParamsAboveCeiling"
  | "WeakerParams"
  | "Kdf"
  | "WrongPassword"
  | "InvalidPrivateKeys"
  | "BundleForOtherUser"
  | "KeysDoNotMatchBundle";

/** Why a backup could not be made or opened (§3.6); `decode` carries the decoding error. */
export class BackupError extends Error {
  constructor(
    readonly kind: BackupErrorKind,
    readonly decode?: DecodeError,
  ) {
    super(decode ? `${kind}: ${decode.message}` : kind);
    this.name = "BackupError";
  }
}

/** Argon2id cost: memory in KiB, passes, lanes. */
export interface KdfParams {
  readonly mKib: number;
  readonly t: number;
  readonly p: number;
}

export const DEFAULT_PARAMS: KdfParams = Object.freeze({ mKib: 65536, t: 3, p: 1 });
export const FLOOR_PARAMS: KdfParams = Object.freeze({ mKib: 19456, t: 2, p: 1 });
export const CEILING_PARAMS: KdfParams = Object.freeze({ mKib: 1048576, t: 10, p: 4 });

/** Floor first (`ParamsBelowFloor`), then ceiling (`ParamsAboveCeiling`). */
export function checkParams(params: KdfParams): void {
  const lo = FLOOR_PARAMS;
  const hi = CEILING_PARAMS;
  if (params.mKib < lo.mKib || params.t < lo.t || params.p < lo.p) throw new BackupError("ParamsBelowFloor");
  if (params.mKib > hi.mKib || params.t > hi.t || params.p > hi.p) throw new BackupError("ParamsAboveCeiling");
}

/** No downgrade: `m_kib` and `t` at least those accepted before (`p` is not compared). */
export function ensureAtLeast(params: KdfParams, accepted: KdfParams): void {
  if (params.mKib < accepted.mKib || params.t < accepted.t) throw new BackupError("WeakerParams");
}

/** `u32 m_kib ‖ u32 t ‖ u32 p`. */
export function encodeParams(params: KdfParams): Uint8Array {
  return new Writer().u32(params.mKib).u32(params.t).u32(params.p).finish();
}

/** The key-encryption key; checks the parameters before deriving anything. */
export async function deriveKek(password: EncryptionPassword, salt: Uint8Array, params: KdfParams): Promise<Uint8Array> {
  checkParams(params);
  if (salt.length !== SALT_LEN) throw new RangeError("salt must be 16 bytes");
  const pw = password.kdfInput();
  try {
    return await argon2id(pw, salt, { mKib: params.mKib, t: params.t, p: params.p }, KEK_LEN);
  } catch {
    throw new BackupError("Kdf");
  } finally {
    pw.fill(0);
  }
}

/** `bytes8("sotto/v1/backup") ‖ 0x01 ‖ bytes8(user_id) ‖ params ‖ salt`. */
export function backupAssociatedData(user: UserId, params: KdfParams, salt: Uint8Array): Uint8Array {
  const inner = writeId(new Writer().u8(1), user).raw(encodeParams(params)).raw(salt).finish();
  return signingInput(BACKUP_LABEL, inner);
}

/** What a successful open gives: the keys, and the parameters to record as accepted. */
export interface OpenedBackup {
  keys: IdentityKeys;
  params: KdfParams;
}

export class KeyBackup {
  private constructor(
    readonly params: KdfParams,
    readonly salt: Uint8Array,
    readonly nonce: Uint8Array,
    readonly ciphertext: Uint8Array,
  ) {}

  /**
   * Seals `keys` for `user` under `password`. Draws the salt (16 bytes) and then the
   * nonce (12 bytes) from `random`.
   */
  static async create(keys: IdentityKeys, user: UserId, password: EncryptionPassword, params: KdfParams = DEFAULT_PARAMS, random: (n: number) => Uint8Array = randomBytes): Promise<KeyBackup> {
    checkParams(params);
    const salt = Uint8Array.from(random(SALT_LEN));
    const nonce = Uint8Array.from(random(NONCE_LEN));
    if (salt.length !== SALT_LEN || nonce.length !== NONCE_LEN) throw new RangeError("random source returned the wrong length");
    const kek = await deriveKek(password, salt, params);
    const plain = keys.toBytes();
    try {
      const ct = await aesGcmSeal(kek, nonce, plain, backupAssociatedData(user, params, salt));
      return new KeyBackup({ mKib: params.mKib, t: params.t, p: params.p }, salt, nonce, ct);
    } finally {
      kek.fill(0);
      plain.fill(0);
    }
  }

  /** Decodes the 122 bytes: `Decode(UnsupportedVersion | Truncated | TrailingBytes)`. */
  static decode(bytes: Uint8Array): KeyBackup {
    try {
      const r = new Reader(bytes);
      r.version();
      const params = { mKib: r.u32(), t: r.u32(), p: r.u32() };
      const salt = Uint8Array.from(r.take(SALT_LEN));
      const nonce = Uint8Array.from(r.take(NONCE_LEN));
      const ct = Uint8Array.from(r.take(CIPHERTEXT_LEN));
      r.finish();
      return new KeyBackup(params, salt, nonce, ct);
    } catch (e) {
      if (e instanceof DecodeError) throw new BackupError("Decode", e);
      throw e;
    }
  }

  encode(): Uint8Array {
    return new Writer().u8(1).raw(encodeParams(this.params)).raw(this.salt).raw(this.nonce).raw(this.ciphertext).finish();
  }

  associatedData(user: UserId): Uint8Array {
    return backupAssociatedData(user, this.params, this.salt);
  }

  /**
   * Opens the backup (§3.4 steps 2–8): parameters against floor and ceiling, then
   * against `accepted` (the parameters this client last accepted, if any), the expected
   * bundle's user, the KDF, decryption (`WrongPassword`), the private keys, and their
   * match with `expected`. Record the returned parameters as accepted.
   */
  async open(password: EncryptionPassword, user: UserId, expected: PublicBundle, accepted?: KdfParams): Promise<OpenedBackup> {
    checkParams(this.params);
    if (accepted) ensureAtLeast(this.params, accepted);
    if (expected.user !== user) throw new BackupError("BundleForOtherUser");
    const kek = await deriveKek(password, this.salt, this.params);
    let plain: Uint8Array;
    try {
      plain = await aesGcmOpen(kek, this.nonce, this.ciphertext, this.associatedData(user));
    } catch (e) {
      if (e instanceof AeadError) throw new BackupError("WrongPassword");
      throw e;
    } finally {
      kek.fill(0);
    }
    let keys: IdentityKeys;
    try {
      keys = await IdentityKeys.fromBytes(plain);
    } catch {
      throw new BackupError("InvalidPrivateKeys");
    } finally {
      plain.fill(0);
    }
    if (!keys.matches(expected)) {
      keys.wipe();
      throw new BackupError("KeysDoNotMatchBundle");
    }
    return { keys, params: this.params };
  }

  /**
   * What the identity key signs to let this backup replace `current` (the stored
   * backup's bytes exactly as the server served them) for `user` (§3.5), label included:
   * `bytes8("sotto/v1/backup-replace") ‖ 0x01 ‖ bytes8(user_id) ‖ SHA-256(current) ‖ this backup`.
   */
  async replacementInput(user: UserId, current: Uint8Array): Promise<Uint8Array> {
    return signingInput(REPLACE_LABEL, await this.replacementBody(user, current));
  }

  /** The identity key's signature letting this backup replace `current` (§3.5). */
  async signReplacement(keys: IdentityKeys, user: UserId, current: Uint8Array): Promise<Uint8Array> {
    return keys.sign(REPLACE_LABEL, await this.replacementBody(user, current));
  }

  /** Whether `signature` lets this backup replace `current`, under `bundle`'s identity key. */
  async verifyReplacement(bundle: PublicBundle, current: Uint8Array, signature: Uint8Array): Promise<boolean> {
    return verifyIdentitySignature(bundle.identityKey, REPLACE_LABEL, [await this.replacementBody(bundle.user, current)], signature);
  }

  private async replacementBody(user: UserId, current: Uint8Array): Promise<Uint8Array> {
    return writeId(new Writer().u8(1), user).raw(await sha256(current)).raw(this.encode()).finish();
  }

  /**
   * A new backup of the same keys under `newPassword` (§3.5), with a fresh salt and
   * nonce and parameters at least as strong as this backup's (`WeakerParams`).
   */
  async rewrap(keys: IdentityKeys, user: UserId, newPassword: EncryptionPassword, params: KdfParams = this.params, random: (n: number) => Uint8Array = randomBytes): Promise<KeyBackup> {
    ensureAtLeast(params, this.params);
    return KeyBackup.create(keys, user, newPassword, params, random);
  }
}

/** §3.4 in full, from the stored bytes: decode (step 1), then `KeyBackup.open`. */
export async function openBackup(bytes: Uint8Array, password: EncryptionPassword, user: UserId, expected: PublicBundle, accepted?: KdfParams): Promise<OpenedBackup> {
  return KeyBackup.decode(bytes).open(password, user, expected, accepted);
}
