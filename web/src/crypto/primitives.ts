// The protocol's primitives (docs/protocol.md §1.1), and nothing else: WebCrypto where
// the browser has the primitive, audited @noble packages where it does not (strict
// Ed25519 verification), @hpke/core for HPKE and hash-wasm for Argon2id. Every other
// crypto module calls these; none calls WebCrypto or a library directly.

import { ed25519 } from "@noble/curves/ed25519.js";
import { sha512 as sha512Sync } from "@noble/hashes/sha2.js";
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { argon2id as argon2idWasm } from "hash-wasm";
import { toHex } from "./encoding";

const subtle = globalThis.crypto.subtle;

/** A fresh copy backed by a plain ArrayBuffer, as WebCrypto's typings want. */
function buf(b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}

export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  globalThis.crypto.getRandomValues(out);
  return out;
}

// --- hashes, HMAC, HKDF ---

export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.digest("SHA-256", buf(data)));
}

export async function sha512(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.digest("SHA-512", buf(data)));
}

export async function hmacSha256(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await subtle.importKey("raw", buf(key.length ? key : new Uint8Array(32)), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, buf(data)));
}

/** HKDF-SHA-256 (RFC 5869), extract and expand in one. An empty salt is HashLen zeros. */
export async function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Promise<Uint8Array> {
  const k = await subtle.importKey("raw", buf(ikm), "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: buf(salt), info: buf(info) }, k, length * 8);
  return new Uint8Array(bits);
}

// --- AES-256-GCM (96-bit nonce, 16-byte tag appended) ---

export class AeadError extends Error {
  constructor() {
    super("decryption failed");
    this.name = "AeadError";
  }
}

async function aesKey(key: Uint8Array, usage: KeyUsage): Promise<CryptoKey> {
  if (key.length !== 32) throw new RangeError("AES-256-GCM key must be 32 bytes");
  return subtle.importKey("raw", buf(key), "AES-GCM", false, [usage]);
}

export async function aesGcmSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  const k = await aesKey(key, "encrypt");
  const ct = await subtle.encrypt({ name: "AES-GCM", iv: buf(nonce), additionalData: buf(aad), tagLength: 128 }, k, buf(plaintext));
  return new Uint8Array(ct);
}

/** Opens or throws AeadError; never returns unauthenticated bytes. */
export async function aesGcmOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  const k = await aesKey(key, "decrypt");
  try {
    const pt = await subtle.decrypt({ name: "AES-GCM", iv: buf(nonce), additionalData: buf(aad), tagLength: 128 }, k, buf(ciphertext));
    return new Uint8Array(pt);
  } catch {
    throw new AeadError();
  }
}

// --- Ed25519 ---

export function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(seed);
}

/** Deterministic RFC 8032 signature. */
export function ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, seed);
}

/** True when `publicKey` is a canonical point of large order (protocol §2). */
export function ed25519IsValidPublicKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return false;
  try {
    const p = ed25519.Point.fromBytes(publicKey, false);
    return !p.isSmallOrder() && p.toBytes().every((b, i) => b === publicKey[i]);
  } catch {
    return false;
  }
}

/**
 * Strict verification: canonical R and S, no small-order key or R, and the cofactorless
 * equation [S]B = R + [k]A (as Rust's `verify_strict`), so a crafted signature whose R has
 * a torsion component verifies in neither implementation rather than only in one.
 */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64 || !ed25519IsValidPublicKey(publicKey)) return false;
  try {
    const Point = ed25519.Point;
    const rBytes = signature.subarray(0, 32);
    const r = Point.fromBytes(rBytes, false);
    if (r.isSmallOrder() || !r.toBytes().every((b, i) => b === rBytes[i])) return false;
    const s = littleEndian(signature.subarray(32, 64));
    if (s >= Point.Fn.ORDER) return false;
    const a = Point.fromBytes(publicKey, false);
    const k = littleEndian(sha512Sync(concatBytes(rBytes, publicKey, message))) % Point.Fn.ORDER;
    return Point.BASE.multiplyUnsafe(s).equals(r.add(a.multiplyUnsafe(k)));
  } catch {
    return false;
  }
}

/** One signature to check: `signature` over `message` under `publicKey`. */
export interface SignedItem {
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

const P_LE = leBytes32(ed25519.Point.Fp.ORDER);
const L_LE = leBytes32(ed25519.Point.Fn.ORDER);

/**
 * The y-coordinates (sign bit clear) of the 8 points of small order. An R whose y is one
 * of them is refused with either sign bit: with the bit clear it is small order, with it
 * set it is small order too or (x = 0) not canonical.
 */
const SMALL_ORDER_Y: ReadonlySet<string> = (() => {
  // An order-8 point, the first entry of libsodium's small-order blocklist; its
  // multiples are the whole torsion subgroup.
  const t = ed25519.Point.fromHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa");
  if (t.double().double().is0() || !t.double().double().double().is0()) throw new Error("not a point of order 8");
  const ys = new Set<string>();
  for (let m = ed25519.Point.ZERO, i = 0; i < 8; i++, m = m.add(t)) ys.add(toHex(yBytes(m.toBytes())));
  return ys;
})();

/** Whether R's encoding passes the strict checks (§2) without decoding it: y < p, not small order. */
function strictR(r: Uint8Array): boolean {
  const y = yBytes(r);
  return lessThanLE(y, P_LE) && !SMALL_ORDER_Y.has(toHex(y));
}

/**
 * Each key's validity and imported WebCrypto key, as a promise so that a page signed by
 * one sender imports it once. Keys are public; the map is bounded, oldest out first.
 */
const verifyKeys = new Map<string, Promise<CryptoKey | null>>();
const VERIFY_KEYS_MAX = 256;

function verifyKey(publicKey: Uint8Array): Promise<CryptoKey | null> {
  const id = toHex(publicKey);
  let key = verifyKeys.get(id);
  if (!key) {
    key = ed25519IsValidPublicKey(publicKey)
      ? subtle.importKey("raw", buf(publicKey), { name: "Ed25519" }, false, ["verify"]).catch(() => null)
      : Promise.resolve(null);
    if (verifyKeys.size >= VERIFY_KEYS_MAX) verifyKeys.delete(verifyKeys.keys().next().value!);
    verifyKeys.set(id, key);
  }
  return key;
}

/**
 * Strict verification of many signatures at once, each answered on its own (in order):
 * the same set `ed25519Verify` accepts. The checks on R and S are done here on bytes,
 * the key's once per key (cached), and WebCrypto's Ed25519 (the cofactorless equation,
 * comparing the encoding of [S]B - [k]A with R, so an R off the curve fails) does the
 * curve arithmetic, all the page's verifications issued together.
 */
export async function ed25519VerifyBatch(items: readonly SignedItem[]): Promise<boolean[]> {
  return Promise.all(
    items.map(async ({ publicKey, message, signature }) => {
      if (signature.length !== 64 || !strictR(signature.subarray(0, 32)) || !lessThanLE(signature.subarray(32, 64), L_LE)) return false;
      const key = await verifyKey(publicKey);
      if (!key) return false;
      try {
        return await subtle.verify({ name: "Ed25519" }, key, buf(signature), buf(message));
      } catch {
        return false;
      }
    }),
  );
}

/** `ed25519Verify` with the curve arithmetic done natively: a batch of one. */
export async function ed25519VerifyAsync(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  return (await ed25519VerifyBatch([{ publicKey, message, signature }]))[0]!;
}

/** A 32-byte encoding with the sign bit cleared: the y-coordinate. */
function yBytes(encoding: Uint8Array): Uint8Array {
  const y = Uint8Array.from(encoding);
  y[31]! &= 0x7f;
  return y;
}

/** a < b, both little-endian and of the same length. */
function lessThanLE(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = a.length - 1; i >= 0; i--) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

function leBytes32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
}

function littleEndian(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// --- X25519 ---

const PKCS8_X25519 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);

async function x25519Private(secret: Uint8Array): Promise<CryptoKey> {
  if (secret.length !== 32) throw new RangeError("X25519 secret must be 32 bytes");
  const der = new Uint8Array(PKCS8_X25519.length + 32);
  der.set(PKCS8_X25519);
  der.set(secret, PKCS8_X25519.length);
  return subtle.importKey("pkcs8", der, { name: "X25519" }, true, ["deriveBits"]);
}

export async function x25519PublicKey(secret: Uint8Array): Promise<Uint8Array> {
  const priv = await x25519Private(secret);
  const jwk = await subtle.exportKey("jwk", priv);
  return base64UrlDecode(jwk.x ?? "");
}

export class AgreementError extends Error {
  constructor() {
    super("key agreement failed");
    this.name = "AgreementError";
  }
}

/** X25519(secret, public); a low-order peer key (all-zero output) is an error. */
export async function x25519(secret: Uint8Array, peerPublic: Uint8Array): Promise<Uint8Array> {
  if (peerPublic.length !== 32) throw new AgreementError();
  const priv = await x25519Private(secret);
  let pub: CryptoKey;
  let bits: ArrayBuffer;
  try {
    pub = await subtle.importKey("raw", buf(peerPublic), { name: "X25519" }, true, []);
    bits = await subtle.deriveBits({ name: "X25519", public: pub }, priv, 256);
  } catch {
    throw new AgreementError();
  }
  const out = new Uint8Array(bits);
  if (out.every((b) => b === 0)) throw new AgreementError();
  return out;
}

function base64UrlDecode(s: string): Uint8Array {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

// --- HPKE base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM ---

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });

export interface HpkeSealed {
  enc: Uint8Array;
  ciphertext: Uint8Array;
}

/**
 * Single-shot seal. `ephemeralSecret` is only for reproducing vectors; production
 * callers leave it out and HPKE draws a fresh ephemeral key.
 */
export async function hpkeSeal(recipientPublic: Uint8Array, info: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, ephemeralSecret?: Uint8Array): Promise<HpkeSealed> {
  const recipientPublicKey = await suite.kem.deserializePublicKey(buf(recipientPublic).buffer);
  const ekm = ephemeralSecret ? await ephemeralPair(ephemeralSecret) : undefined;
  const sender = await suite.createSenderContext({ recipientPublicKey, info: buf(info).buffer, ...(ekm ? { ekm } : {}) });
  const ct = await sender.seal(buf(plaintext).buffer, buf(aad).buffer);
  return { enc: new Uint8Array(sender.enc), ciphertext: new Uint8Array(ct) };
}

async function ephemeralPair(secret: Uint8Array): Promise<CryptoKeyPair> {
  const privateKey = await suite.kem.deserializePrivateKey(buf(secret).buffer);
  const publicKey = await suite.kem.deserializePublicKey(buf(await x25519PublicKey(secret)).buffer);
  return { privateKey, publicKey };
}

/** Single-shot open; throws AeadError on any failure. */
export async function hpkeOpen(recipientSecret: Uint8Array, enc: Uint8Array, info: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
  try {
    const recipientKey = await suite.kem.deserializePrivateKey(buf(recipientSecret).buffer);
    const recipient = await suite.createRecipientContext({ recipientKey, enc: buf(enc).buffer, info: buf(info).buffer });
    return new Uint8Array(await recipient.open(buf(ciphertext).buffer, buf(aad).buffer));
  } catch {
    throw new AeadError();
  }
}

// --- Argon2id v0x13 (RFC 9106), 32-byte tag, no secret, no associated data ---

export interface Argon2Params {
  mKib: number;
  t: number;
  p: number;
}

export async function argon2id(password: Uint8Array, salt: Uint8Array, params: Argon2Params, length = 32): Promise<Uint8Array> {
  return argon2idWasm({
    password: buf(password),
    salt: buf(salt),
    memorySize: params.mKib,
    iterations: params.t,
    parallelism: params.p,
    hashLength: length,
    outputType: "binary",
  });
}

// --- incremental SHA-256 (for hashing a file blob as it streams, in constant memory) ---

import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";

export interface IncrementalHash {
  update(data: Uint8Array): void;
  digest(): Uint8Array;
}

/** SHA-256 fed piece by piece; `digest` may be called once. */
export function sha256Incremental(): IncrementalHash {
  const h = nobleSha256.create();
  return {
    update(data: Uint8Array): void {
      h.update(data);
    },
    digest(): Uint8Array {
      return h.digest();
    },
  };
}
