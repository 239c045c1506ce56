// Crafted Ed25519 signatures at the edges of strict verification (protocol §2), for
// checking that the native batch verifier accepts exactly what the pure-script reference
// does. Used by external.test.ts (Node's WebCrypto) and by the browser benchmark
// (Chromium's). `expect` is the strict answer where the construction fixes it.

import { ed25519 } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { concat, utf8 } from "../../src/crypto/encoding";
import { ed25519PublicKey, ed25519Sign } from "../../src/crypto/primitives";

export interface Ed25519Case {
  name: string;
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
  expect?: boolean;
}

const { Point } = ed25519;
const P = Point.Fp.ORDER;
const L = Point.Fn.ORDER;

export function le(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}

export function leBytes(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
}

/** An encoding with the given y (< 2^255) and sign bit, canonical or not. */
function encoding(y: bigint, sign: 0 | 1): Uint8Array {
  const b = leBytes(y);
  b[31]! |= sign << 7;
  return b;
}

/** S for the nonce r (R's discrete log), key scalar a, over R ‖ A ‖ M as given. */
function sFor(r: bigint, a: bigint, rBytes: Uint8Array, aBytes: Uint8Array, msg: Uint8Array): bigint {
  return (r + (le(sha512(concat(rBytes, aBytes, msg))) % L) * a) % L;
}

/** The 8 points of small order, from an order-8 point (libsodium's blocklist, first entry). */
export function smallOrderPoints(): InstanceType<typeof Point>[] {
  const t = Point.fromHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa");
  const out = [];
  for (let m = Point.ZERO, i = 0; i < 8; i++, m = m.add(t)) out.push(m);
  return out;
}

export function ed25519Cases(): Ed25519Case[] {
  const seed = new Uint8Array(32).fill(7);
  const pk = ed25519PublicKey(seed);
  const { scalar: a } = ed25519.utils.getExtendedPublicKey(seed);
  const msg = utf8("a message of the room");
  const good = ed25519Sign(seed, msg);
  const goodS = good.subarray(32);
  const cases: Ed25519Case[] = [{ name: "valid", publicKey: pk, message: msg, signature: good, expect: true }];
  const withR = (name: string, rBytes: Uint8Array, s = goodS, expect: boolean | undefined = false) =>
    cases.push({ name, publicKey: pk, message: msg, signature: concat(rBytes, s), expect });

  // Small-order R, canonical: for the identity, S = k·a satisfies [S]B = R + [k]A, so
  // only the small-order rule refuses it.
  const torsion = smallOrderPoints();
  for (const [i, t] of torsion.entries()) {
    const rb = t.toBytes();
    withR(`small-order R #${i}`, rb);
    withR(`small-order R #${i}, equation holds for the identity`, rb, leBytes(sFor(0n, a, rb, pk, msg)));
  }
  // Small-order R, non-canonical: x = 0 with the sign bit, and y + p.
  for (const [name, y, sign] of [
    ["identity, sign bit", 1n, 1],
    ["order 2, sign bit", P - 1n, 1],
    ["y = p (≡ 0)", P, 0],
    ["y = p (≡ 0), sign bit", P, 1],
    ["y = p + 1 (≡ 1)", P + 1n, 0],
    ["y = p + 1 (≡ 1), sign bit", P + 1n, 1],
  ] as const) {
    const rb = encoding(y, sign);
    withR(`non-canonical small-order R: ${name}`, rb);
    withR(`non-canonical small-order R: ${name}, S = k·a`, rb, leBytes(sFor(0n, a, rb, pk, msg)));
  }
  // Every y ≥ p, both signs.
  for (let i = 0n; i < 19n; i++) for (const sign of [0, 1] as const) withR(`R with y = p + ${i}, sign ${sign}`, encoding(P + i, sign));
  // R not on the curve (canonical y with no x).
  let offCurve = 0;
  for (let y = 2n; offCurve < 3; y++) {
    const rb = encoding(y, 0);
    try {
      Point.fromBytes(rb);
    } catch {
      withR(`R off the curve, y = ${y}`, rb);
      offCurve++;
    }
  }
  // S out of range.
  const sPlusL = le(goodS) + L;
  for (const [name, s] of [
    ["S = L", L],
    ["S = L + 1", L + 1n],
    ["S + L", sPlusL],
    ["S ≥ 2^253", le(goodS) | (1n << 253n)],
    ["S = 2^256 - 1", (1n << 256n) - 1n],
  ] as const) {
    cases.push({ name, publicKey: pk, message: msg, signature: concat(good.subarray(0, 32), leBytes(s % (1n << 256n))), expect: false });
  }
  // R with a torsion part: S = r + k·a with R = rB + T; only a cofactored check accepts.
  const r = 12345678901234567890n;
  for (const [i, t] of torsion.entries()) {
    const rb = Point.BASE.multiply(r).add(t).toBytes();
    withR(`R = rB + T#${i}`, rb, leBytes(sFor(r, a, rb, pk, msg)), i === 0);
  }
  // Small-order and non-canonical keys, with R = rB and S = r: [S]B = R + [k]A holds
  // whenever [k]A is the identity.
  const rb = Point.BASE.multiply(r).toBytes();
  const keys: [string, Uint8Array][] = [
    ...torsion.map((t, i): [string, Uint8Array] => [`small-order A #${i}`, t.toBytes()]),
    ["A = identity, y = p + 1", encoding(P + 1n, 0)],
    ["A = identity, sign bit", encoding(1n, 1)],
    ["A with y = p + 3 (a valid point's non-canonical encoding)", encoding(P + 3n, 0)],
    ["A with the wrong sign bit", Uint8Array.from(pk, (b, i) => (i === 31 ? b ^ 0x80 : b))],
  ];
  for (const [name, key] of keys) {
    cases.push({ name, publicKey: key, message: msg, signature: concat(rb, leBytes(r)), expect: false });
    cases.push({ name: `${name}, the valid signature`, publicKey: key, message: msg, signature: good, expect: false });
  }
  // A key with a torsion part is a valid key; the cofactorless equation holds only when
  // [k]T vanishes, k ≡ 0 mod 8: some of these verify, the rest do not.
  const mixed = Point.BASE.multiply(a).add(torsion[1]!).toBytes();
  for (let i = 0; i < 24; i++) {
    const m = utf8(`mixed-order key ${i}`);
    cases.push({ name: `mixed-order A, message ${i}`, publicKey: mixed, message: m, signature: concat(rb, leBytes(sFor(r, a, rb, mixed, m))) });
  }
  // Another key, a changed message.
  cases.push({ name: "other key", publicKey: ed25519PublicKey(new Uint8Array(32).fill(8)), message: msg, signature: good, expect: false });
  cases.push({ name: "changed message", publicKey: pk, message: utf8("another message"), signature: good, expect: false });
  cases.push({ name: "short signature", publicKey: pk, message: msg, signature: good.subarray(0, 63), expect: false });
  cases.push({ name: "short key", publicKey: pk.subarray(0, 31), message: msg, signature: good, expect: false });
  return cases;
}

/** 50 valid signatures by one key, of distinct messages, with the one at `bad` broken. */
export function pageOf50(bad: number): Ed25519Case[] {
  const seed = new Uint8Array(32).fill(9);
  const publicKey = ed25519PublicKey(seed);
  return Array.from({ length: 50 }, (_, i) => {
    const message = utf8(`message ${i} of the page`);
    const signature = ed25519Sign(seed, message);
    if (i === bad) signature[40]! ^= 1;
    return { name: `page item ${i}`, publicKey, message, signature, expect: i !== bad };
  });
}
