// The Double Ratchet (protocol §10.1–10.4): an X25519 ratchet feeding an HKDF root
// chain, HMAC sending and receiving chains, and one AES-256-GCM key and nonce per
// message key. Mirrors crates/sotto-crypto/src/otr/ratchet.rs. State lives only in
// memory; every key is overwritten as soon as it is used or replaced.

import { equalBytes, signingInput, utf8 } from "../encoding";
import { AeadError, aesGcmOpen, aesGcmSeal, hkdfSha256, hmacSha256 } from "../primitives";
import { OtrError } from "./error";
import { type Header, VERSION, headerBytes } from "./frame";
import { LABEL, type Rng, dh, drawSecret, publicKey } from "./handshake";

/** Most skipped message keys kept in total; the oldest is dropped beyond this. */
export const MAX_SKIPPED_KEYS = 1000;
/** Most message keys one received message may cause to be skipped in one chain. */
export const MAX_SKIP_PER_STEP = 1000;
/** Most peer ratchet keys remembered as stepped past. */
export const MAX_OLD_PEERS = 1000;
/** Largest message number plus one: a chain carries at most 2^32 − 1 messages. */
const MAX_CHAIN_LEN = 0xffffffff;

const MESSAGE_KEY_CONSTANT = Uint8Array.of(0x01);
const CHAIN_KEY_CONSTANT = Uint8Array.of(0x02);
/** HKDF's default salt: HashLen zero bytes. */
const NO_SALT = new Uint8Array(32);

/** Root chain step: `(new root key, new chain key) = KDF_RK(rk, dh)`. */
export async function kdfRoot(root: Uint8Array, dhOut: Uint8Array): Promise<[Uint8Array, Uint8Array]> {
  const okm = await hkdfSha256(dhOut, root, utf8(LABEL.root), 64);
  const out: [Uint8Array, Uint8Array] = [okm.slice(0, 32), okm.slice(32, 64)];
  okm.fill(0);
  return out;
}

/** Symmetric chain step: `(message key, next chain key) = KDF_CK(ck)`. */
export async function kdfChain(chain: Uint8Array): Promise<[Uint8Array, Uint8Array]> {
  return [await hmacSha256(chain, MESSAGE_KEY_CONSTANT), await hmacSha256(chain, CHAIN_KEY_CONSTANT)];
}

/** The AES key and nonce of one message key. */
export async function messageCipher(mk: Uint8Array): Promise<{ key: Uint8Array; nonce: Uint8Array }> {
  const okm = await hkdfSha256(mk, NO_SALT, utf8(LABEL.message), 44);
  const out = { key: okm.slice(0, 32), nonce: okm.slice(32, 44) };
  okm.fill(0);
  return out;
}

/** `bytes8("sotto/v1/otr/data") ‖ 0x01 ‖ fixed(16) session_id ‖ header`. */
export function associatedData(session: Uint8Array, header: Header): Uint8Array {
  return signingInput(LABEL.data, Uint8Array.of(VERSION), session, headerBytes(header));
}

async function seal(mk: Uint8Array, padded: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  const { key, nonce } = await messageCipher(mk);
  try {
    return await aesGcmSeal(key, nonce, padded, aad);
  } finally {
    key.fill(0);
  }
}

async function open(mk: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  const { key, nonce } = await messageCipher(mk);
  try {
    return await aesGcmOpen(key, nonce, ciphertext, aad);
  } catch (e) {
    if (e instanceof AeadError) throw new OtrError("DecryptFailed");
    throw e;
  } finally {
    key.fill(0);
  }
}

/** Runs async operations one at a time, in call order. */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(op: () => Promise<T>): Promise<T> {
    const result = this.tail.then(op);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

interface SkippedKey {
  ratchetKey: Uint8Array;
  number: number;
  key: Uint8Array;
}

interface State {
  session: Uint8Array;
  /** `RK`. */
  root: Uint8Array;
  /** `DHs`: own ratchet secret and public key. */
  own: Uint8Array;
  ownPublic: Uint8Array;
  /** `DHr`. */
  peer: Uint8Array | null;
  /** `CKs`, `CKr`. */
  sending: Uint8Array | null;
  receiving: Uint8Array | null;
  /** `Ns`, `Nr`, `PN`. */
  sent: number;
  received: number;
  previousSent: number;
  skipped: SkippedKey[];
  /** Peer ratchet keys already stepped past, oldest first. */
  oldPeers: Uint8Array[];
}

function secretsOf(s: State): Uint8Array[] {
  const out = [s.root, s.own];
  if (s.sending) out.push(s.sending);
  if (s.receiving) out.push(s.receiving);
  for (const k of s.skipped) out.push(k.key);
  return out;
}

/** Overwrites every secret of `a` that `b` does not also hold. */
function wipeUnshared(a: State, b: State | null): void {
  const keep = new Set(b ? secretsOf(b) : []);
  for (const k of secretsOf(a)) if (!keep.has(k)) k.fill(0);
}

/** One side's ratchet state. Not re-entrant on its own: calls are serialised. */
export class Ratchet {
  private readonly serial = new Serial();

  private constructor(private s: State) {}

  /**
   * The initiator's ratchet after a valid Accept: `DHs = (t_I, T_I)`, `DHr = E_R`,
   * `(RK, CKs) = KDF_RK(RK0, DH(t_I, E_R))`.
   */
  static async initiator(session: Uint8Array, root: Uint8Array, own: Uint8Array, responderEphemeral: Uint8Array): Promise<Ratchet> {
    const shared = await dh(own, responderEphemeral);
    const [rk, sending] = await kdfRoot(root, shared);
    shared.fill(0);
    return new Ratchet({
      session: session.slice(),
      root: rk,
      own: own.slice(),
      ownPublic: await publicKey(own),
      peer: responderEphemeral.slice(),
      sending,
      receiving: null,
      sent: 0,
      received: 0,
      previousSent: 0,
      skipped: [],
      oldPeers: [],
    });
  }

  /**
   * The responder's ratchet after a valid Confirm: starts from `DHs = (e_R, E_R)`,
   * `RK = RK0`, and takes the DH ratchet step with the initiator's `T_I`.
   */
  static async responder(session: Uint8Array, root: Uint8Array, ownEphemeral: Uint8Array, initiatorRatchetKey: Uint8Array, rng: Rng): Promise<Ratchet> {
    const s: State = {
      session: session.slice(),
      root: root.slice(),
      own: ownEphemeral.slice(),
      ownPublic: await publicKey(ownEphemeral),
      peer: null,
      sending: null,
      receiving: null,
      sent: 0,
      received: 0,
      previousSent: 0,
      skipped: [],
      oldPeers: [],
    };
    try {
      await dhStep(s, null, initiatorRatchetKey, rng);
    } catch (e) {
      wipeUnshared(s, null);
      throw e;
    }
    return new Ratchet(s);
  }

  /** Seals one padded body with the next sending message key. */
  encrypt(padded: Uint8Array): Promise<{ header: Header; ciphertext: Uint8Array }> {
    return this.serial.run(async () => {
      const s = this.s;
      if (!s.sending) throw new OtrError("NotEstablished");
      if (s.sent >= MAX_CHAIN_LEN) throw new OtrError("ChainExhausted");
      const [mk, next] = await kdfChain(s.sending);
      const header: Header = { ratchetKey: s.ownPublic.slice(), previousChainLen: s.previousSent, number: s.sent };
      let ciphertext: Uint8Array;
      try {
        ciphertext = await seal(mk, padded, associatedData(s.session, header));
      } catch (e) {
        next.fill(0);
        throw e;
      } finally {
        mk.fill(0);
      }
      if (this.s !== s) {
        // Wiped meanwhile: the message must not go out.
        next.fill(0);
        throw new OtrError("Ended");
      }
      s.sending.fill(0);
      s.sending = next;
      s.sent += 1;
      return { header, ciphertext };
    });
  }

  /**
   * Opens one message (§10.4 "Receiving"). The state changes only if the message
   * authenticates, so a forged, replayed or damaged frame leaves it exactly as it was.
   */
  decrypt(header: Header, ciphertext: Uint8Array, rng: Rng): Promise<Uint8Array> {
    return this.serial.run(async () => {
      const base = this.s;
      const aad = associatedData(base.session, header);
      // 1. A stored key for (ratchet key, N): used once, then gone.
      const i = base.skipped.findIndex((k) => k.number === header.number && equalBytes(k.ratchetKey, header.ratchetKey));
      if (i >= 0) {
        const stored = base.skipped[i]!;
        const plain = await open(stored.key, ciphertext, aad);
        if (this.s !== base) throw new OtrError("Ended");
        base.skipped.splice(i, 1);
        stored.key.fill(0);
        return plain;
      }
      // 2. A chain already stepped past: a replay, or a key that expired.
      if (base.oldPeers.some((p) => equalBytes(p, header.ratchetKey))) throw new OtrError("KeyUnavailable");
      // 3–6 on a copy.
      const next: State = { ...base, skipped: [...base.skipped], oldPeers: [...base.oldPeers] };
      let plain: Uint8Array;
      try {
        if (!next.peer || !equalBytes(next.peer, header.ratchetKey)) {
          await skipTo(next, base, header.previousChainLen);
          await dhStep(next, base, header.ratchetKey, rng);
        }
        if (header.number < next.received) throw new OtrError("KeyUnavailable");
        await skipTo(next, base, header.number);
        if (!next.receiving) throw new OtrError("UnexpectedFrame");
        const [mk, chainNext] = await kdfChain(next.receiving);
        try {
          plain = await open(mk, ciphertext, aad);
        } catch (e) {
          chainNext.fill(0);
          throw e;
        } finally {
          mk.fill(0);
        }
        replaceReceiving(next, base, chainNext);
        next.received += 1;
      } catch (e) {
        wipeUnshared(next, base);
        throw e;
      }
      if (this.s !== base) {
        wipeUnshared(next, null);
        throw new OtrError("Ended");
      }
      // 7. Replace the state with the copy.
      wipeUnshared(base, next);
      this.s = next;
      return plain;
    });
  }

  /** How many skipped message keys are stored (for tests and diagnostics). */
  get skippedCount(): number {
    return this.s.skipped.length;
  }

  /** Overwrites every key; the ratchet is unusable afterwards. */
  wipe(): void {
    const s = this.s;
    wipeUnshared(s, null);
    this.s = { ...s, sending: null, receiving: null, peer: null, skipped: [], oldPeers: [] };
  }
}

/** Sets `CKr`, overwriting the previous one unless the committed state still holds it. */
function replaceReceiving(n: State, base: State | null, ck: Uint8Array): void {
  if (n.receiving && n.receiving !== base?.receiving) n.receiving.fill(0);
  n.receiving = ck;
}

/** Stores the keys of messages `Nr..until` of the receiving chain (§10.4 "Skipping"). */
async function skipTo(n: State, base: State | null, until: number): Promise<void> {
  if (!n.receiving || !n.peer || until <= n.received) return;
  if (until - n.received > MAX_SKIP_PER_STEP) throw new OtrError("TooManySkipped");
  while (n.received < until) {
    const [mk, ck] = await kdfChain(n.receiving!);
    replaceReceiving(n, base, ck);
    if (n.skipped.length >= MAX_SKIPPED_KEYS) n.skipped.shift();
    n.skipped.push({ ratchetKey: n.peer, number: n.received, key: mk });
    n.received += 1;
  }
}

/**
 * The DH ratchet step on meeting a new peer ratchet key: a new receiving chain, then
 * a fresh own ratchet key and a new sending chain.
 */
async function dhStep(n: State, base: State | null, peer: Uint8Array, rng: Rng): Promise<void> {
  const shared1 = await dh(n.own, peer);
  const [rk1, receiving] = await kdfRoot(n.root, shared1);
  shared1.fill(0);
  const own = drawSecret(rng);
  let rk2: Uint8Array;
  let sending: Uint8Array;
  try {
    const shared2 = await dh(own, peer);
    [rk2, sending] = await kdfRoot(rk1, shared2);
    shared2.fill(0);
  } catch (e) {
    for (const k of [rk1, receiving, own]) k.fill(0);
    throw e;
  } finally {
    rk1.fill(0);
  }
  const ownPublic = await publicKey(own);
  if (n.peer) {
    if (n.oldPeers.length >= MAX_OLD_PEERS) n.oldPeers.shift();
    n.oldPeers.push(n.peer);
  }
  const wipeIfOwned = (k: Uint8Array | null): void => {
    if (k && (!base || (k !== base.root && k !== base.own && k !== base.sending && k !== base.receiving))) k.fill(0);
  };
  wipeIfOwned(n.root);
  wipeIfOwned(n.own);
  wipeIfOwned(n.sending);
  wipeIfOwned(n.receiving);
  n.previousSent = n.sent;
  n.sent = 0;
  n.received = 0;
  n.peer = peer.slice();
  n.receiving = receiving;
  n.sending = sending;
  n.ownPublic = ownPublic;
  n.own = own;
  n.root = rk2;
}
