// The protocol's own vectors for user keys, backups and safety numbers
// (testdata/vectors/sotto/), and the refusals §2–§4 and §7.7 list.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import { DecodeError, Writer, concat, fromHex, toHex, utf8 } from "../../src/crypto/encoding";
import { aesGcmSeal, sha256 } from "../../src/crypto/primitives";
import { compareBytes, encodeId, isValidId, randomIdFromHex, randomIdToHex, roomId, userId, newRandomId } from "../../src/crypto/ids";
import { BundleError, IdentityKeys, PublicBundle } from "../../src/crypto/identity";
import { EncryptionPassword, PasswordError, wordIndex } from "../../src/crypto/password";
import {
  BACKUP_LEN,
  BackupError,
  type BackupErrorKind,
  CEILING_PARAMS,
  FLOOR_PARAMS,
  KeyBackup,
  type KdfParams,
  backupAssociatedData,
  checkParams,
  deriveKek,
  encodeParams,
  openBackup,
} from "../../src/crypto/backup";
import { SafetyNumber, fingerprintDigits } from "../../src/crypto/safety";
import { PinError, PinStore } from "../../src/crypto/pins";
import { ReplayError, SeenMessages } from "../../src/crypto/replay";
import { flip } from "./vectorfiles";

const dir = join(process.cwd(), "..", "testdata", "vectors", "sotto");
function vector<T>(name: string): T {
  return JSON.parse(readFileSync(join(dir, name), "utf8")) as T;
}

/** A random source that hands out `bytes` in order and fails if asked for more. */
function feed(...chunks: Uint8Array[]): (n: number) => Uint8Array {
  const all = concat(...chunks);
  let at = 0;
  return (n) => {
    assert.ok(at + n <= all.length, "random source exhausted");
    const out = all.slice(at, at + n);
    at += n;
    return out;
  };
}

function isDecode(kind: DecodeError["kind"], detail?: string) {
  return (e: unknown) => e instanceof DecodeError && e.kind === kind && (detail === undefined || e.message === `${kind}: ${detail}`);
}
function isBackup(kind: BackupErrorKind) {
  return (e: unknown) => e instanceof BackupError && e.kind === kind;
}

// --- ids ---

test("ids: the documented alphabet and length, hex of 16-byte ids", () => {
  assert.ok(isValidId("u_01HZX.a:b-c"));
  for (const bad of ["", "a b", "é", "a\n", "r".repeat(65), "a/b"]) assert.ok(!isValidId(bad), JSON.stringify(bad));
  assert.ok(isValidId("r".repeat(64)));
  assert.throws(() => userId("a b"), isDecode("InvalidField", "user id"));
  assert.throws(() => roomId(""), isDecode("InvalidField", "room id"));
  assert.equal(toHex(encodeId(userId("u.a"))), "03752e61");
  const id = fromHex("ab".repeat(16));
  assert.equal(randomIdToHex(id), "ab".repeat(16));
  assert.deepEqual(randomIdFromHex(randomIdToHex(id)), id);
  for (const bad of ["zz", "+a".repeat(16), "é".repeat(16), "ab".repeat(15)]) assert.throws(() => randomIdFromHex(bad), isDecode("InvalidField"));
  assert.equal(newRandomId().length, 16);
  assert.ok(compareBytes(Uint8Array.of(1), Uint8Array.of(1, 0)) < 0);
});

// --- §2 bundle ---

interface BundleVector {
  user_id: string;
  private_keys: string;
  identity_public: string;
  agreement_public: string;
  bundle: string;
}
const bv = vector<BundleVector>("bundle.json");

test("bundle.json: private keys give the public keys and the exact signed bundle", async () => {
  const keys = await IdentityKeys.fromBytes(fromHex(bv.private_keys));
  assert.equal(toHex(keys.toBytes()), bv.private_keys);
  assert.equal(toHex(keys.identityPublic), bv.identity_public);
  assert.equal(toHex(keys.agreementPublic), bv.agreement_public);
  const user = userId(bv.user_id);
  const bundle = keys.bundle(user);
  assert.equal(toHex(bundle.encode()), bv.bundle);
  const decoded = PublicBundle.decode(fromHex(bv.bundle));
  assert.equal(decoded.user, bv.user_id);
  assert.equal(toHex(decoded.identityKey), bv.identity_public);
  assert.equal(toHex(decoded.agreementKey), bv.agreement_public);
  assert.ok(keys.matches(decoded));
  assert.ok(decoded.equals(bundle));
  // Secrets stay out of logs.
  const secretHex = bv.private_keys.slice(2, 18);
  assert.ok(!JSON.stringify({ keys }).includes(secretHex));
  assert.ok(!String(keys).includes(secretHex));
  const { inspect } = await import("node:util");
  assert.ok(!inspect(keys, { depth: 5 }).includes("18, 89, 23"));
});

test("bundle refusals: encoding first, then the identity key, then the signature", async () => {
  const good = fromHex(bv.bundle);
  const asBundle = (e: unknown) => e as BundleError;
  const kindOf = (bytes: Uint8Array): string => {
    try {
      PublicBundle.decode(bytes);
      return "ok";
    } catch (e) {
      const b = asBundle(e);
      assert.ok(b instanceof BundleError);
      return b.decode ? `${b.kind}(${b.decode.kind})` : b.kind;
    }
  };
  assert.equal(kindOf(good), "ok");
  // Every flipped bit of every byte is refused.
  for (let i = 0; i < good.length; i++) {
    const bad = Uint8Array.from(good);
    bad[i]! ^= 0x01;
    assert.notEqual(kindOf(bad), "ok", `byte ${i}`);
  }
  assert.equal(kindOf(good.subarray(0, good.length - 1)), "Decode(Truncated)");
  assert.equal(kindOf(concat(good, Uint8Array.of(0))), "Decode(TrailingBytes)");
  const v2 = Uint8Array.from(good);
  v2[0] = 2;
  assert.equal(kindOf(v2), "Decode(UnsupportedVersion)");
  const badId = Uint8Array.from(good);
  badId[2] = 0x20; // "u.alice" → " .alice"
  assert.equal(kindOf(badId), "Decode(InvalidField)");
  // A small-order identity key in an otherwise well-formed bundle; with a short tail
  // too, the encoding error wins.
  const at = 2 + bv.user_id.length;
  const weak = Uint8Array.from(good);
  weak.fill(0, at, at + 32);
  assert.equal(kindOf(weak), "InvalidIdentityKey");
  assert.equal(kindOf(weak.subarray(0, weak.length - 1)), "Decode(Truncated)");
  // The signature region, and a re-attribution to another user of the same length.
  const sig = Uint8Array.from(good);
  sig[sig.length - 1]! ^= 0x80;
  assert.equal(kindOf(sig), "BadSignature");
  const moved = Uint8Array.from(good);
  moved.set(utf8("u.bobby"), 2);
  assert.equal(kindOf(moved), "BadSignature");
  const apk = Uint8Array.from(good);
  apk[at + 32]! ^= 0x01;
  assert.equal(kindOf(apk), "BadSignature");
});

test("IdentityKeys: generation draws isk then ask, private keys round-trip and refuse bad encodings", async () => {
  const isk = fromHex("11".repeat(32));
  const ask = fromHex("22".repeat(32));
  const keys = await IdentityKeys.generate(feed(isk, ask));
  assert.equal(toHex(keys.toBytes()), "01" + "11".repeat(32) + "22".repeat(32));
  const back = await IdentityKeys.fromBytes(keys.toBytes());
  assert.deepEqual(back.identityPublic, keys.identityPublic);
  assert.deepEqual(back.agreementPublic, keys.agreementPublic);
  await assert.rejects(IdentityKeys.fromBytes(keys.toBytes().subarray(0, 64)), isDecode("Truncated"));
  await assert.rejects(IdentityKeys.fromBytes(concat(keys.toBytes(), Uint8Array.of(0))), isDecode("TrailingBytes"));
  const v2 = keys.toBytes();
  v2[0] = 2;
  await assert.rejects(IdentityKeys.fromBytes(v2), isDecode("UnsupportedVersion"));
  const fresh = await IdentityKeys.generate();
  assert.ok(!fresh.matches(keys.bundle(userId("u.x"))));
});

// --- §3 password and backup ---

interface BackupCase {
  description: string;
  password_as_typed: string;
  password_as_typed_utf8: string;
  password_nfc_utf8: string;
  params: { m_kib: number; t: number; p: number };
  salt: string;
  nonce: string;
  kek: string;
  associated_data: string;
  ciphertext: string;
  backup: string;
  word_indices?: number[];
}
interface BackupVector {
  user_id: string;
  private_keys: string;
  bundle: string;
  wrong_password: string;
  cases: BackupCase[];
}
const bk = vector<BackupVector>("backup.json");
const alice = userId(bk.user_id);
const paramsOf = (c: BackupCase): KdfParams => ({ mKib: c.params.m_kib, t: c.params.t, p: c.params.p });

test("password: generation takes two bytes per word, big-endian, low 11 bits", () => {
  const c = bk.cases[0]!;
  const indices = c.word_indices!;
  assert.equal(indices.length, 12);
  assert.equal(wordlist.length, 2048);
  assert.equal(wordlist[0], "abandon");
  assert.equal(wordlist[2047], "zoo");
  // The vector's indices, with varied high bits above the 11 that count.
  const bytes = indices.map((i, n) => {
    const v = i | ((n * 0x0800) & 0xf800);
    return Uint8Array.of(v >> 8, v & 0xff);
  });
  const pw = EncryptionPassword.generate(feed(...bytes));
  assert.equal(pw.text(), c.password_as_typed);
  assert.equal(toHex(pw.kdfInput()), c.password_nfc_utf8);
  assert.deepEqual(
    pw.text().split(" ").map((w) => wordlist.indexOf(w)),
    indices,
  );
  assert.equal(wordIndex(0xff, 0xff), 2047);
  assert.equal(wordIndex(0x01, 0x01), 257);
  assert.equal(EncryptionPassword.generate(feed(new Uint8Array(24).fill(0xff))).text(), Array(12).fill("zoo").join(" "));
  assert.equal(EncryptionPassword.generate(feed(new Uint8Array(24))).text(), Array(12).fill("abandon").join(" "));
  const fresh = EncryptionPassword.generate().text().split(" ");
  assert.equal(fresh.length, 12);
  assert.ok(fresh.every((w) => wordlist.includes(w)));
  assert.ok(!String(pw).includes("flag") && !JSON.stringify({ pw }).includes("flag"));
});

test("password: NFC of what was typed, nothing trimmed, empty refused", () => {
  const c = bk.cases[1]!;
  assert.equal(toHex(utf8(c.password_as_typed)), c.password_as_typed_utf8);
  assert.notEqual(c.password_as_typed_utf8, c.password_nfc_utf8);
  assert.equal(toHex(EncryptionPassword.fromUser(c.password_as_typed).kdfInput()), c.password_nfc_utf8);
  assert.equal(toHex(EncryptionPassword.fromUser("caf\u00e9").kdfInput()), toHex(EncryptionPassword.fromUser("cafe\u0301").kdfInput()));
  assert.equal(EncryptionPassword.fromUser(" pw ").text(), " pw ");
  assert.throws(() => EncryptionPassword.fromUser(""), (e: unknown) => e instanceof PasswordError && e.kind === "Empty");
});

function passwordOf(c: BackupCase): EncryptionPassword {
  return EncryptionPassword.fromUser(c.password_as_typed);
}

test("backup.json: kek, associated data, ciphertext and the 122-byte backup, byte for byte", async () => {
  const keys = await IdentityKeys.fromBytes(fromHex(bk.private_keys));
  const bundle = PublicBundle.decode(fromHex(bk.bundle));
  assert.equal(toHex(keys.bundle(alice).encode()), bk.bundle);
  assert.equal(bk.cases.length, 2);
  for (const c of bk.cases) {
    const pw = passwordOf(c);
    const params = paramsOf(c);
    assert.deepEqual(params, FLOOR_PARAMS);
    assert.equal(toHex(await deriveKek(pw, fromHex(c.salt), params)), c.kek, c.description);
    assert.equal(toHex(backupAssociatedData(alice, params, fromHex(c.salt))), c.associated_data);
    const made = await KeyBackup.create(keys, alice, pw, params, feed(fromHex(c.salt), fromHex(c.nonce)));
    assert.equal(toHex(made.ciphertext), c.ciphertext);
    assert.equal(toHex(made.encode()), c.backup);
    assert.equal(made.encode().length, BACKUP_LEN);
    assert.equal(BACKUP_LEN, 122);
    const decoded = KeyBackup.decode(fromHex(c.backup));
    assert.deepEqual(decoded.params, params);
    assert.equal(toHex(decoded.salt), c.salt);
    assert.equal(toHex(decoded.nonce), c.nonce);
    const opened = await openBackup(fromHex(c.backup), pw, alice, bundle);
    assert.equal(toHex(opened.keys.toBytes()), bk.private_keys);
    assert.deepEqual(opened.params, params);
    // The accepted parameters recorded from here on let this backup open again.
    await openBackup(fromHex(c.backup), pw, alice, bundle, opened.params);
    await assert.rejects(openBackup(fromHex(c.backup), EncryptionPassword.fromUser(bk.wrong_password), alice, bundle), isBackup("WrongPassword"));
  }
  // The typed (decomposed) form opens the second backup; its raw bytes as a KDF input would not.
  const c = bk.cases[1]!;
  assert.equal(toHex(await deriveKek(EncryptionPassword.fromUser(c.password_as_typed.normalize("NFD")), fromHex(c.salt), FLOOR_PARAMS)), c.kek);
});

/** A password whose KDF input must never be read: proves a refusal came before deriving. */
function untouchablePassword(): { pw: EncryptionPassword; touched: () => boolean } {
  let touched = false;
  const pw = Object.create(EncryptionPassword.prototype) as EncryptionPassword;
  Object.defineProperty(pw, "kdfInput", {
    value: () => {
      touched = true;
      return utf8("x");
    },
  });
  return { pw, touched: () => touched };
}

function withParams(backup: string, p: KdfParams): Uint8Array {
  const b = fromHex(backup);
  b.set(encodeParams(p), 1);
  return b;
}

test("backup refusals: the spec's order and error kinds", async () => {
  const c = bk.cases[0]!;
  const pw = passwordOf(c);
  const bundle = PublicBundle.decode(fromHex(bk.bundle));
  const good = fromHex(c.backup);

  // 1. Encoding.
  const v2 = Uint8Array.from(good);
  v2[0] = 2;
  await assert.rejects(openBackup(v2, pw, alice, bundle), (e: unknown) => isBackup("Decode")(e) && (e as BackupError).decode?.kind === "UnsupportedVersion");
  await assert.rejects(openBackup(good.subarray(0, 121), pw, alice, bundle), (e: unknown) => (e as BackupError).decode?.kind === "Truncated");
  await assert.rejects(openBackup(concat(good, Uint8Array.of(0)), pw, alice, bundle), (e: unknown) => (e as BackupError).decode?.kind === "TrailingBytes");
  await assert.rejects(openBackup(new Uint8Array(), pw, alice, bundle), (e: unknown) => (e as BackupError).decode?.kind === "Truncated");

  // 2. Floor, then ceiling, before anything is derived.
  const cases: [KdfParams, BackupErrorKind][] = [
    [{ ...FLOOR_PARAMS, mKib: 19455 }, "ParamsBelowFloor"],
    [{ ...FLOOR_PARAMS, t: 1 }, "ParamsBelowFloor"],
    [{ ...FLOOR_PARAMS, p: 0 }, "ParamsBelowFloor"],
    [{ ...CEILING_PARAMS, mKib: 1048577 }, "ParamsAboveCeiling"],
    [{ ...CEILING_PARAMS, t: 11 }, "ParamsAboveCeiling"],
    [{ ...CEILING_PARAMS, p: 5 }, "ParamsAboveCeiling"],
    [{ mKib: 0xffffffff, t: 1, p: 1 }, "ParamsBelowFloor"], // below the floor wins over above the ceiling
    [{ mKib: 1, t: 0xffffffff, p: 0xffffffff }, "ParamsBelowFloor"],
  ];
  for (const [p, kind] of cases) {
    const spy = untouchablePassword();
    await assert.rejects(openBackup(withParams(c.backup, p), spy.pw, alice, bundle), isBackup(kind), JSON.stringify(p));
    assert.ok(!spy.touched(), "derived before refusing");
    assert.throws(() => checkParams(p), isBackup(kind));
    const keys = await IdentityKeys.fromBytes(fromHex(bk.private_keys));
    await assert.rejects(KeyBackup.create(keys, alice, spy.pw, p), isBackup(kind));
    assert.ok(!spy.touched());
  }
  checkParams(FLOOR_PARAMS);
  checkParams(CEILING_PARAMS);

  // 3. No downgrade: m_kib and t against the accepted ones; p is not compared.
  for (const accepted of [
    { mKib: 19457, t: 2, p: 1 },
    { mKib: 19456, t: 3, p: 1 },
  ]) {
    const spy = untouchablePassword();
    await assert.rejects(openBackup(good, spy.pw, alice, bundle, accepted), isBackup("WeakerParams"));
    assert.ok(!spy.touched());
  }
  await openBackup(good, pw, alice, bundle, { mKib: 19456, t: 2, p: 4 });

  // 4. The expected bundle must be the user's.
  const bob = userId("u.bob");
  {
    const spy = untouchablePassword();
    await assert.rejects(openBackup(good, spy.pw, bob, bundle), isBackup("BundleForOtherUser"));
    assert.ok(!spy.touched());
  }
  // Presented as another user's (with that user's bundle of the same keys): the
  // associated data differs, so it reads as a wrong password.
  const keys = await IdentityKeys.fromBytes(fromHex(bk.private_keys));
  await assert.rejects(openBackup(good, pw, bob, keys.bundle(bob)), isBackup("WrongPassword"));

  // 6. Wrong password, and any altered byte, is WrongPassword.
  await assert.rejects(openBackup(good, EncryptionPassword.fromUser(bk.wrong_password), alice, bundle), isBackup("WrongPassword"));
  for (const at of [13, 29, 41, 121]) {
    const bad = Uint8Array.from(good);
    bad[at]! ^= 0x01;
    await assert.rejects(openBackup(bad, pw, alice, bundle), isBackup("WrongPassword"), `byte ${at}`);
  }

  // 7. A plaintext that is not private keys.
  const kek = fromHex(c.kek);
  const salt = fromHex(c.salt);
  const nonce = fromHex(c.nonce);
  const notKeys = fromHex(bk.private_keys);
  notKeys[0] = 2;
  const sealed = await aesGcmSeal(kek, nonce, notKeys, backupAssociatedData(alice, FLOOR_PARAMS, salt));
  const invalid = new Writer().u8(1).raw(encodeParams(FLOOR_PARAMS)).raw(salt).raw(nonce).raw(sealed).finish();
  await assert.rejects(openBackup(invalid, pw, alice, bundle), isBackup("InvalidPrivateKeys"));

  // 8. A backup substituted by the server: other keys under the user's password.
  const bundleVector = vector<BundleVector>("bundle.json");
  assert.equal(bundleVector.user_id, bk.user_id);
  const otherBundle = PublicBundle.decode(fromHex(bundleVector.bundle));
  await assert.rejects(openBackup(good, pw, alice, otherBundle), isBackup("KeysDoNotMatchBundle"));
});

test("re-wrap: same keys under a new password, fresh salt and nonce, no weaker parameters", async () => {
  const c = bk.cases[0]!;
  const bundle = PublicBundle.decode(fromHex(bk.bundle));
  const old = KeyBackup.decode(fromHex(c.backup));
  const { keys } = await old.open(passwordOf(c), alice, bundle);
  const newPw = EncryptionPassword.fromUser("a new password ✓");
  const salt = fromHex("01".repeat(16));
  const nonce = fromHex("02".repeat(12));
  const rewrapped = await old.rewrap(keys, alice, newPw, FLOOR_PARAMS, feed(salt, nonce));
  assert.equal(toHex(rewrapped.salt), toHex(salt));
  assert.equal(toHex(rewrapped.nonce), toHex(nonce));
  const bytes = rewrapped.encode();
  assert.equal(toHex((await openBackup(bytes, newPw, alice, bundle)).keys.toBytes()), bk.private_keys);
  await assert.rejects(openBackup(bytes, passwordOf(c), alice, bundle), isBackup("WrongPassword"));
  // Raising the parameters is allowed; lowering them is not, and is refused before deriving.
  const stronger = await old.rewrap(keys, alice, newPw, { mKib: 19456, t: 3, p: 1 });
  assert.deepEqual(KeyBackup.decode(stronger.encode()).params, { mKib: 19456, t: 3, p: 1 });
  const spy = untouchablePassword();
  await assert.rejects(stronger.rewrap(keys, alice, spy.pw, FLOOR_PARAMS), isBackup("WeakerParams"));
  assert.ok(!spy.touched());
});

// --- §4.1 safety numbers ---

interface SafetyVector {
  user_a: string;
  user_b: string;
  identity_public_a: string;
  identity_public_b: string;
  iterations: number;
  fingerprint_a: string;
  fingerprint_b: string;
  safety_number: string;
  display: string;
}

test("safety_number.json: both halves, the 60 digits and the display form", async () => {
  const s = vector<SafetyVector>("safety_number.json");
  assert.equal(s.iterations, 5200);
  const a = { user: userId(s.user_a), identityKey: fromHex(s.identity_public_a) };
  const b = { user: userId(s.user_b), identityKey: fromHex(s.identity_public_b) };
  assert.equal(await fingerprintDigits(a.user, a.identityKey), s.fingerprint_a);
  assert.equal(await fingerprintDigits(b.user, b.identityKey), s.fingerprint_b);
  const ab = await SafetyNumber.compute(a, b);
  const ba = await SafetyNumber.compute(b, a);
  assert.equal(ab.digits, s.safety_number);
  assert.equal(ba.digits, s.safety_number);
  assert.equal(ab.display(), s.display);
  assert.equal(ab.groups().length, 12);
  assert.ok(ab.matchesText(s.display));
  assert.ok(ab.matchesText(` ${s.safety_number.slice(0, 7)}\n${s.safety_number.slice(7)}\t`));
  assert.ok(!ab.matchesText(s.safety_number.slice(1)));
  // The id is hashed with the key: the same key shown as another user's differs.
  assert.notEqual(await fingerprintDigits(userId("u.mallory"), a.identityKey), s.fingerprint_a);
});

// --- §4.2, §4.3 pins ---

async function ipk(byte: number): Promise<Uint8Array> {
  return (await IdentityKeys.fromSecrets(new Uint8Array(32).fill(byte), new Uint8Array(32).fill(byte))).identityPublic;
}

test("pins: first use, known, verified, changes never taken silently", async () => {
  const [k1, k2, k3] = [await ipk(1), await ipk(2), await ipk(3)];
  const store = new PinStore();
  const bob = userId("u.bob");
  assert.ok(!store.trusted(bob, k1));
  assert.deepEqual(store.observe(bob, k1), { kind: "FirstUse" });
  assert.ok(store.trusted(bob, k1));
  assert.deepEqual(store.observe(bob, k1), { kind: "Known", verified: false });
  const pinErr = (kind: PinError["kind"]) => (e: unknown) => e instanceof PinError && e.kind === kind;
  assert.throws(() => store.markVerified(bob, k2), pinErr("NotPinnedKey"));
  assert.throws(() => store.markVerified(userId("u.eve"), k1), pinErr("UnknownUser"));
  store.markVerified(bob, k1);
  assert.deepEqual(store.observe(bob, k1), { kind: "Known", verified: true });
  assert.throws(() => store.acceptChange(bob, k2), pinErr("NoPendingChange"));
  assert.throws(() => store.acceptChange(userId("u.eve"), k2), pinErr("UnknownUser"));

  assert.deepEqual(store.observe(bob, k2), { kind: "Changed", wasVerified: true });
  assert.ok(store.trusted(bob, k1) && !store.trusted(bob, k2));
  assert.throws(() => store.markVerified(bob, k2), pinErr("NotPinnedKey"));
  assert.deepEqual(store.get(bob)!.pending, k2);
  assert.deepEqual(store.observe(bob, k3), { kind: "Changed", wasVerified: true });
  assert.throws(() => store.acceptChange(bob, k2), pinErr("NotPendingKey"));
  assert.ok(store.trusted(bob, k1));
  assert.deepEqual(store.get(bob)!.pending, k3);
  // Marking the pinned key verified leaves the pending key pending.
  store.markVerified(bob, k1);
  assert.deepEqual(store.get(bob)!.pending, k3);
  const accepted = store.acceptChange(bob, k3);
  assert.deepEqual(accepted, { key: k3, former: k1 });
  assert.deepEqual(store.get(bob), { key: k3, state: "Unverified", pending: null });
  assert.ok(store.trusted(bob, k3) && !store.trusted(bob, k1));
  assert.deepEqual(store.observe(bob, k3), { kind: "Known", verified: false });
  assert.throws(() => store.observe(bob, new Uint8Array(32)), isDecode("InvalidField", "identity key"));
});

test("pin store encoding: exact bytes, round trip, and every refusal of §4.3", async () => {
  const [k1, k2] = [await ipk(1), await ipk(2)];
  const store = new PinStore();
  store.observe(userId("u.bob"), k1);
  store.observe(userId("u.amy"), k2);
  store.markVerified(userId("u.amy"), k2);
  store.observe(userId("u.bob"), k2);
  const bytes = store.encode();
  const expected = concat(
    fromHex("0100000002"),
    encodeId(userId("u.amy")),
    k2,
    Uint8Array.of(1, 0),
    encodeId(userId("u.bob")),
    k1,
    Uint8Array.of(0, 1),
    k2,
  );
  assert.equal(toHex(bytes), toHex(expected));
  const back = PinStore.decode(bytes);
  assert.equal(toHex(back.encode()), toHex(bytes));
  assert.deepEqual(back.users(), ["u.amy", "u.bob"]);
  assert.deepEqual(back.get(userId("u.bob")), { key: k1, state: "Unverified", pending: k2 });
  assert.equal(toHex(new PinStore().encode()), "0100000000");

  const amyAt = 5;
  const amyKey = amyAt + 6;
  const amyState = amyKey + 32;
  const bobAt = amyState + 2;
  const bobFlag = bobAt + 6 + 32 + 1;
  const mutate = (f: (b: Uint8Array) => Uint8Array | void) => {
    const b = Uint8Array.from(bytes);
    return f(b) ?? b;
  };
  const refusals: [Uint8Array, DecodeError["kind"], string?][] = [
    [mutate((b) => void (b[amyAt + 1] = 0x20)), "InvalidField", "user id"],
    [mutate((b) => void b.set(utf8("u.bob"), amyAt + 1)), "InvalidField", "pin order"],
    [mutate((b) => void b.set(utf8("u.cat"), amyAt + 1)), "InvalidField", "pin order"],
    [mutate((b) => void b.fill(0, amyKey, amyKey + 32)), "InvalidField", "identity key"],
    [mutate((b) => void (b[amyState] = 2)), "InvalidField", "pin state"],
    [mutate((b) => void (b[amyState + 1] = 2)), "InvalidField", "pending flag"],
    [mutate((b) => void b.set(k1, bobFlag + 1)), "InvalidField", "pending key"],
    [mutate((b) => void b.fill(0, bobFlag + 1, bobFlag + 33)), "InvalidField", "identity key"],
    [bytes.subarray(0, bytes.length - 1), "Truncated"],
    [concat(bytes, Uint8Array.of(0)), "TrailingBytes"],
    [mutate((b) => void (b[0] = 2)), "UnsupportedVersion"],
    [mutate((b) => void (b[4] = 3)), "Truncated"],
    [mutate((b) => void (b[4] = 1)), "TrailingBytes"],
  ];
  for (const [bad, kind, detail] of refusals) assert.throws(() => PinStore.decode(bad), isDecode(kind, detail), `${kind} ${detail ?? ""}`);
});

// --- §7.7 seen message ids ---

test("seen message ids: replays caught per room and across restarts, canonical encoding", () => {
  const seen = new SeenMessages();
  const a = roomId("a");
  const b = roomId("b");
  const id1 = new Uint8Array(16).fill(1);
  const id2 = new Uint8Array(16).fill(2);
  seen.checkAndInsert(a, id2);
  seen.checkAndInsert(a, id1);
  assert.throws(() => seen.checkAndInsert(a, id1), (e: unknown) => e instanceof ReplayError && e.kind === "Replayed");
  seen.checkAndInsert(b, id1);
  const good = seen.encode();
  assert.equal(toHex(good), toHex(concat(fromHex("0100000002"), encodeId(a), fromHex("00000002"), id1, id2, encodeId(b), fromHex("00000001"), id1)));
  const restarted = SeenMessages.decode(good);
  assert.ok(restarted.contains(a, id1) && restarted.contains(a, id2) && restarted.contains(b, id1));
  assert.ok(!restarted.contains(b, id2));
  assert.throws(() => restarted.checkAndInsert(b, id1), ReplayError);
  restarted.forgetRoom(b);
  restarted.checkAndInsert(b, id1);
  assert.equal(toHex(new SeenMessages().encode()), "0100000000");

  const start = 1 + 4 + 2 + 4;
  const swapped = Uint8Array.from(good);
  swapped.set(id2, start);
  swapped.set(id1, start + 16);
  assert.throws(() => SeenMessages.decode(swapped), isDecode("InvalidField", "message id order"));
  const dup = Uint8Array.from(good);
  dup.set(id1, start + 16);
  assert.throws(() => SeenMessages.decode(dup), isDecode("InvalidField", "message id order"));
  const renamed = Uint8Array.from(good);
  renamed[start + 32 + 1] = "a".charCodeAt(0);
  assert.throws(() => SeenMessages.decode(renamed), isDecode("InvalidField", "room order"));
  assert.throws(() => SeenMessages.decode(concat(good, Uint8Array.of(0))), isDecode("TrailingBytes"));
  assert.throws(() => SeenMessages.decode(good.subarray(0, good.length - 1)), isDecode("Truncated"));
  assert.throws(() => SeenMessages.decode(Uint8Array.of(2, 0, 0, 0, 0)), isDecode("UnsupportedVersion"));
  assert.throws(() => SeenMessages.decode(Uint8Array.of(1, 0, 0, 0, 1, 1, 0x61, 0, 0, 0, 0)), isDecode("InvalidField", "message id count"));
  assert.throws(() => SeenMessages.decode(Uint8Array.of(1, 0, 0, 0, 1, 1, 0x20, 0, 0, 0, 1)), isDecode("InvalidField", "room id"));
});

// --- §3.5 signed backup replacement ---

interface ReplaceCase {
  current_backup: string;
  current_sha256: string;
  new_backup: string;
  signing_input: string;
  signature: string;
}
interface ReplaceVector {
  user_id: string;
  private_keys: string;
  bundle: string;
  cases: ReplaceCase[];
}

test("backup_replace.json: the signed input and signature byte for byte; a replay and other keys refused", async () => {
  const v = vector<ReplaceVector>("backup_replace.json");
  const user = userId(v.user_id);
  const keys = await IdentityKeys.fromBytes(fromHex(v.private_keys));
  const bundle = PublicBundle.decode(fromHex(v.bundle));
  assert.ok(keys.matches(bundle));
  assert.equal(v.cases.length, 2);
  for (const c of v.cases) {
    const current = fromHex(c.current_backup);
    const next = KeyBackup.decode(fromHex(c.new_backup));
    assert.equal(toHex(await sha256(current)), c.current_sha256);
    assert.equal(toHex(await next.replacementInput(user, current)), c.signing_input);
    assert.equal(toHex(await next.signReplacement(keys, user, current)), c.signature);
    assert.ok(await next.verifyReplacement(bundle, current, fromHex(c.signature)));
    assert.ok(!(await next.verifyReplacement(bundle, current, flip(fromHex(c.signature), 5))));
  }
  const [first, second] = v.cases as [ReplaceCase, ReplaceCase];
  assert.equal(first.new_backup, second.current_backup);
  // The first replacement, replayed once the backup has moved on, does not verify.
  const replayed = KeyBackup.decode(fromHex(first.new_backup));
  assert.ok(!(await replayed.verifyReplacement(bundle, fromHex(second.current_backup), fromHex(first.signature))));
  // Nor does one made by other keys.
  const other = await IdentityKeys.generate();
  const next = KeyBackup.decode(fromHex(second.new_backup));
  const current = fromHex(second.current_backup);
  assert.ok(!(await next.verifyReplacement(bundle, current, await next.signReplacement(other, user, current))));
});
