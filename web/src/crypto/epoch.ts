// A room key of one epoch (docs/protocol.md §6): the symmetric key every message of
// that epoch is sealed under, and the random 16-byte id that names the epoch.

import { type EpochId, newRandomId, randomIdToHex } from "./ids";
import { randomBytes } from "./primitives";

export const EPOCH_KEY_LEN = 32;

/** Draws `n` random bytes; production passes `randomBytes`, tests feed vector values. */
export type Rng = (n: number) => Uint8Array;

/** The secret key of one epoch. `toString`/`toJSON` show only the epoch id. */
export class EpochKey {
  readonly #key: Uint8Array;

  constructor(
    readonly epochId: EpochId,
    key: Uint8Array,
  ) {
    if (epochId.length !== 16) throw new RangeError("epoch id must be 16 bytes");
    if (key.length !== EPOCH_KEY_LEN) throw new RangeError("epoch key must be 32 bytes");
    this.#key = Uint8Array.from(key);
  }

  /** A new epoch: 16 bytes of id, then 32 bytes of key, from `rng`. */
  static generate(rng: Rng = randomBytes): EpochKey {
    const id = newRandomId(rng);
    return new EpochKey(id, rng(EPOCH_KEY_LEN));
  }

  /** The secret key bytes (a copy). */
  keyBytes(): Uint8Array {
    return Uint8Array.from(this.#key);
  }

  /** The epoch id as 32 hex digits. */
  get epochHex(): string {
    return randomIdToHex(this.epochId);
  }

  wipe(): void {
    this.#key.fill(0);
  }

  toString(): string {
    return `EpochKey(${this.epochHex})`;
  }

  toJSON(): string {
    return this.toString();
  }
}
