// Pinned identities (docs/protocol.md §4.2) and the pin store's encoding (§4.3).

import { DecodeError, Reader, Writer, equalBytes } from "./encoding";
import { type UserId, compareIds, readUserId, writeId } from "./ids";
import { isValidIdentityKey } from "./identity";

export type PinState = "Unverified" | "Verified";

export type Observation = { kind: "FirstUse" } | { kind: "Known"; verified: boolean } | { kind: "Changed"; wasVerified: boolean };

export type PinErrorKind = "UnknownUser" | "NotPinnedKey" | "NoPendingChange" | "NotPendingKey";

export class PinError extends Error {
  constructor(readonly kind: PinErrorKind) {
    super(kind);
    this.name = "PinError";
  }
}

export interface Pin {
  readonly key: Uint8Array;
  readonly state: PinState;
  readonly pending: Uint8Array | null;
}

/** What accepting a change did: the key now pinned and the one it replaced (a former key). */
export interface AcceptedChange {
  key: Uint8Array;
  former: Uint8Array;
}

function checkKey(key: Uint8Array): Uint8Array {
  if (!isValidIdentityKey(key)) throw new DecodeError("InvalidField", "identity key");
  return Uint8Array.from(key);
}

export class PinStore {
  private readonly pins = new Map<UserId, Pin>();

  /**
   * Records a user's identity key taken from a checked bundle: pins it on first use,
   * reports it known, or keeps the pin and stores it as the pending changed key.
   */
  observe(user: UserId, key: Uint8Array): Observation {
    const k = checkKey(key);
    const pin = this.pins.get(user);
    if (!pin) {
      this.pins.set(user, { key: k, state: "Unverified", pending: null });
      return { kind: "FirstUse" };
    }
    if (equalBytes(pin.key, k)) return { kind: "Known", verified: pin.state === "Verified" };
    this.pins.set(user, { ...pin, pending: k });
    return { kind: "Changed", wasVerified: pin.state === "Verified" };
  }

  /** Accepts the change to `key`, which must be the pending key the user was shown. */
  acceptChange(user: UserId, key: Uint8Array): AcceptedChange {
    const pin = this.pins.get(user);
    if (!pin) throw new PinError("UnknownUser");
    if (!pin.pending) throw new PinError("NoPendingChange");
    if (!equalBytes(pin.pending, key)) throw new PinError("NotPendingKey");
    this.pins.set(user, { key: pin.pending, state: "Unverified", pending: null });
    return { key: Uint8Array.from(pin.pending), former: Uint8Array.from(pin.key) };
  }

  /** Marks the pinned key verified after comparing safety numbers; a pending key stays. */
  markVerified(user: UserId, key: Uint8Array): void {
    const pin = this.pins.get(user);
    if (!pin) throw new PinError("UnknownUser");
    if (!equalBytes(pin.key, key)) throw new PinError("NotPinnedKey");
    this.pins.set(user, { ...pin, state: "Verified" });
  }

  /** True exactly when `key` is the user's pinned key, whatever its state. */
  trusted(user: UserId, key: Uint8Array): boolean {
    const pin = this.pins.get(user);
    return pin !== undefined && equalBytes(pin.key, key);
  }

  get(user: UserId): Pin | undefined {
    const pin = this.pins.get(user);
    return pin && { key: Uint8Array.from(pin.key), state: pin.state, pending: pin.pending && Uint8Array.from(pin.pending) };
  }

  /** Users in ascending byte order of their ids. */
  users(): UserId[] {
    return [...this.pins.keys()].sort(compareIds);
  }

  get size(): number {
    return this.pins.size;
  }

  /** `0x01 ‖ u32 count ‖ entry × count`, entries in ascending user id order. */
  encode(): Uint8Array {
    const w = new Writer().u8(1).u32(this.pins.size);
    for (const user of this.users()) {
      const pin = this.pins.get(user)!;
      writeId(w, user).raw(pin.key).u8(pin.state === "Verified" ? 1 : 0);
      if (pin.pending) w.u8(1).raw(pin.pending);
      else w.u8(0);
    }
    return w.finish();
  }

  /**
   * Decodes a saved store. Per entry, in this order: the user id (`InvalidField("user
   * id")`), its order after the previous one (`"pin order"`), the key (`"identity key"`),
   * the state (`"pin state"`), the pending flag (`"pending flag"`), the pending key
   * (`"identity key"`, then `"pending key"` if it equals the pinned key).
   */
  static decode(bytes: Uint8Array): PinStore {
    const r = new Reader(bytes);
    r.version();
    const count = r.u32();
    const store = new PinStore();
    let last: UserId | null = null;
    for (let i = 0; i < count; i++) {
      const user = readUserId(r);
      if (last !== null && compareIds(last, user) >= 0) throw new DecodeError("InvalidField", "pin order");
      const key = readKey(r);
      const stateByte = r.u8();
      if (stateByte > 1) throw new DecodeError("InvalidField", "pin state");
      const flag = r.u8();
      if (flag > 1) throw new DecodeError("InvalidField", "pending flag");
      const pending = flag === 1 ? readKey(r) : null;
      if (pending && equalBytes(pending, key)) throw new DecodeError("InvalidField", "pending key");
      store.pins.set(user, { key, state: stateByte === 1 ? "Verified" : "Unverified", pending });
      last = user;
    }
    r.finish();
    return store;
  }
}

function readKey(r: Reader): Uint8Array {
  const key = r.take(32);
  if (!isValidIdentityKey(key)) throw new DecodeError("InvalidField", "identity key");
  return Uint8Array.from(key);
}
