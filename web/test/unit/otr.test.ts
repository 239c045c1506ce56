import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DecodeError, fromHex, toHex, utf8 } from "../../src/crypto/encoding";
import { randomBytes } from "../../src/crypto/primitives";
import { roomId, userId } from "../../src/crypto/ids";
import {
  type Body,
  type Frame,
  MAX_BODY_LEN,
  MAX_SKIP_PER_STEP,
  type OtrErrorKind,
  type OtrEvent,
  OtrError,
  OtrSession,
  type OwnParty,
  type PeerParty,
  decodeFrame,
  encodeFrame,
} from "../../src/crypto/otr";
import { decodePaddedBody, encodePaddedBody } from "../../src/crypto/otr/frame";
import { HandshakeKeys, type Rng, publicKey } from "../../src/crypto/otr/handshake";
import { Ratchet } from "../../src/crypto/otr/ratchet";

// --- helpers ---

const VECTORS = join(process.cwd(), "..", "testdata", "vectors", "sotto");

function vector<T>(name: string): T {
  return JSON.parse(readFileSync(join(VECTORS, name), "utf8")) as T;
}

/** An rng that hands out exactly the listed draws, in order, and checks their lengths. */
function replay(hexes: string[]): Rng & { left: () => number } {
  const queue = hexes.map(fromHex);
  const rng = (n: number): Uint8Array => {
    const next = queue.shift();
    assert.ok(next, "rng drawn more often than the vector lists");
    assert.equal(next.length, n, "rng draw of an unexpected length");
    return next.slice();
  };
  return Object.assign(rng, { left: () => queue.length });
}

function isOtrError(kind: OtrErrorKind, detail?: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof OtrError, `expected OtrError ${kind}, got ${String(e)}`);
    assert.equal(e.kind, kind);
    if (detail !== undefined) assert.equal(e.decode?.message, `InvalidField: ${detail}`);
    return true;
  };
}

async function rejects(p: Promise<unknown>, kind: OtrErrorKind, detail?: string): Promise<void> {
  await assert.rejects(p, isOtrError(kind, detail));
}

function throwsDecode(f: () => unknown, kind: DecodeError["kind"], message?: string): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof DecodeError, String(e));
    assert.equal(e.kind, kind);
    if (message !== undefined) assert.equal(e.message, message);
    return true;
  });
}

/** Every frame goes through its bytes, as through the server. */
function wire(f: Frame): Frame {
  return decodeFrame(encodeFrame(f));
}

function message(ev: OtrEvent): Body {
  assert.equal(ev.kind, "Message");
  if (ev.kind !== "Message") throw new Error("unreachable");
  return ev.body;
}

function text(ev: OtrEvent): string {
  const b = message(ev);
  assert.equal(b.kind, "text");
  if (b.kind !== "text") throw new Error("unreachable");
  return b.text;
}

function replyOf(ev: OtrEvent, kind: "Established" | "Refreshed" | "RefreshStarted"): Frame {
  assert.equal(ev.kind, kind);
  if ((ev.kind === "Established" || ev.kind === "Refreshed" || ev.kind === "RefreshStarted") && ev.reply) return ev.reply;
  throw new Error(`${kind} without a reply`);
}

interface User {
  own: OwnParty;
  peer: PeerParty;
}

async function user(name: string, secret = randomBytes(32)): Promise<User> {
  return { own: { user: name, agreementSecret: secret }, peer: { user: name, agreementPublic: await publicKey(secret) } };
}

const ROOM = "dm.alice.bob";

async function established(): Promise<{ a: OtrSession; b: OtrSession; alice: User; bob: User }> {
  const alice = await user("alice");
  const bob = await user("bob");
  const { session: a, frame: offer } = await OtrSession.offer(alice.own, bob.peer, ROOM);
  assert.equal(a.state, "AwaitingAccept");
  const { session: b, frame: accept } = await OtrSession.accept(wire(offer), bob.own, alice.peer, ROOM);
  assert.equal(b.state, "AwaitingConfirm");
  await rejects(b.sendText("too early"), "NotEstablished");
  const confirm = replyOf(await a.handle(wire(accept)), "Established");
  assert.deepEqual(await b.handle(wire(confirm)), { kind: "Established", reply: null });
  assert.equal(a.state, "Established");
  assert.equal(b.state, "Established");
  return { a, b, alice, bob };
}

// --- vectors ---

interface HandshakeVector {
  alice_private_keys: string;
  bob_private_keys: string;
  alice_agreement_public: string;
  bob_agreement_public: string;
  alice_user_id: string;
  bob_user_id: string;
  room_id: string;
  alice_random: string[];
  bob_random: string[];
  session_id: string;
  transcript_hash: string;
  root_key: string;
  accept_mac: string;
  confirm_mac: string;
  offer_frame: string;
  accept_frame: string;
  confirm_frame: string;
}

/** The agreement secret `ask` from the §2 private keys `0x01 ‖ isk ‖ ask`. */
function agreementSecret(privateKeysHex: string): Uint8Array {
  const b = fromHex(privateKeysHex);
  assert.equal(b.length, 65);
  assert.equal(b[0], 1);
  return b.slice(33, 65);
}

async function parties(v: HandshakeVector): Promise<{ alice: User; bob: User }> {
  const aliceSecret = agreementSecret(v.alice_private_keys);
  const bobSecret = agreementSecret(v.bob_private_keys);
  assert.equal(toHex(await publicKey(aliceSecret)), v.alice_agreement_public);
  assert.equal(toHex(await publicKey(bobSecret)), v.bob_agreement_public);
  return {
    alice: { own: { user: v.alice_user_id, agreementSecret: aliceSecret }, peer: { user: v.alice_user_id, agreementPublic: fromHex(v.alice_agreement_public) } },
    bob: { own: { user: v.bob_user_id, agreementSecret: bobSecret }, peer: { user: v.bob_user_id, agreementPublic: fromHex(v.bob_agreement_public) } },
  };
}

/** Runs the vector's handshake with its random draws; checks every frame byte for byte. */
async function vectorHandshake(v: HandshakeVector, aliceRng: Rng, bobRng: Rng): Promise<{ a: OtrSession; b: OtrSession }> {
  const { alice, bob } = await parties(v);
  const { session: a, frame: offer } = await OtrSession.offer(alice.own, bob.peer, v.room_id, aliceRng);
  assert.equal(toHex(encodeFrame(offer)), v.offer_frame);
  const { session: b, frame: accept } = await OtrSession.accept(decodeFrame(fromHex(v.offer_frame)), bob.own, alice.peer, v.room_id, bobRng);
  assert.equal(toHex(encodeFrame(accept)), v.accept_frame);
  const confirm = replyOf(await a.receive(fromHex(v.accept_frame), aliceRng), "Established");
  assert.equal(toHex(encodeFrame(confirm)), v.confirm_frame);
  assert.deepEqual(await b.receive(fromHex(v.confirm_frame), bobRng), { kind: "Established", reply: null });
  for (const f of [v.offer_frame, v.accept_frame, v.confirm_frame]) assert.equal(toHex(encodeFrame(decodeFrame(fromHex(f)))), f);
  return { a, b };
}

test("otr_handshake.json: every frame and derived value, both roles", async () => {
  const v = vector<HandshakeVector>("otr_handshake.json");
  const aliceRng = replay(v.alice_random);
  const bobRng = replay(v.bob_random);
  const { a, b } = await vectorHandshake(v, aliceRng, bobRng);
  assert.equal(toHex(a.id), v.session_id);
  assert.equal(toHex(b.id), v.session_id);
  assert.equal(aliceRng.left(), 0);
  assert.equal(bobRng.left(), 0);

  // The derived values, from each side's own secrets.
  const [, eI, tI] = v.alice_random.map(fromHex) as [Uint8Array, Uint8Array, Uint8Array];
  const [eR] = v.bob_random.map(fromHex) as [Uint8Array];
  const transcript = {
    session: fromHex(v.session_id),
    room: roomId(v.room_id),
    initiator: userId(v.alice_user_id),
    responder: userId(v.bob_user_id),
    initiatorIdentity: fromHex(v.alice_agreement_public),
    responderIdentity: fromHex(v.bob_agreement_public),
    initiatorEphemeral: await publicKey(eI),
    responderEphemeral: await publicKey(eR),
  };
  const TI = await publicKey(tI);
  const ki = await HandshakeKeys.derive("initiator", agreementSecret(v.alice_private_keys), eI, transcript);
  const kr = await HandshakeKeys.derive("responder", agreementSecret(v.bob_private_keys), eR, transcript);
  for (const k of [ki, kr]) {
    assert.equal(toHex(k.transcript), v.transcript_hash);
    assert.equal(toHex(k.root), v.root_key);
    assert.equal(toHex(await k.acceptMac()), v.accept_mac);
    assert.equal(toHex(await k.confirmMac(TI)), v.confirm_mac);
  }
  const accept = decodeFrame(fromHex(v.accept_frame));
  const confirm = decodeFrame(fromHex(v.confirm_frame));
  assert.ok(accept.kind === "Accept" && confirm.kind === "Confirm");
  assert.equal(toHex(accept.mac), v.accept_mac);
  assert.equal(toHex(confirm.mac), v.confirm_mac);
  assert.equal(toHex(confirm.ratchetKey), toHex(TI));
  await ki.verifyAccept(accept.mac);
  await kr.verifyConfirm(TI, confirm.mac);
  await assert.rejects(kr.verifyConfirm(transcript.initiatorEphemeral, confirm.mac), isOtrError("BadConfirmation"));
});

interface RatchetVector extends HandshakeVector {
  steps: Array<
    | { send: number; from: "alice" | "bob"; frame: string; body: { text?: string; file?: string; file_name?: string; media_type?: string } }
    | { deliver: number; to: "alice" | "bob" }
  >;
}

function vectorBody(b: { text?: string; file?: string; file_name?: string; media_type?: string }): Body {
  if (b.text !== undefined) return { kind: "text", text: b.text };
  assert.ok(b.file !== undefined && b.file_name !== undefined && b.media_type !== undefined);
  return { kind: "file", name: b.file_name, mediaType: b.media_type, bytes: fromHex(b.file) };
}

test("otr_ratchet.json: every frame and every delivered body, both sides", async () => {
  const v = vector<RatchetVector>("otr_ratchet.json");
  const rng = { alice: replay(v.alice_random), bob: replay(v.bob_random) };
  const { a, b } = await vectorHandshake(v, rng.alice, rng.bob);
  const side = { alice: a, bob: b };
  const sent = new Map<number, { frame: string; body: Body }>();
  const receivedBy = new Map<number, "alice" | "bob">();
  let sends = 0;
  let delivers = 0;
  for (const step of v.steps) {
    if ("send" in step) {
      const body = vectorBody(step.body);
      const frame = await side[step.from].send(body);
      assert.equal(toHex(encodeFrame(frame)), step.frame, `frame of message ${step.send}`);
      sent.set(step.send, { frame: step.frame, body });
      sends++;
    } else {
      const m = sent.get(step.deliver);
      assert.ok(m, `message ${step.deliver} delivered before it was sent`);
      const ev = await side[step.to].receive(fromHex(m.frame), rng[step.to]);
      assert.deepEqual(message(ev), m.body, `body of message ${step.deliver}`);
      receivedBy.set(step.deliver, step.to);
      delivers++;
    }
  }
  assert.equal(sends, 7);
  assert.equal(delivers, 7);
  assert.equal(rng.alice.left(), 0);
  assert.equal(rng.bob.left(), 0);
  // Each delivered frame was used once: a replay of any is refused.
  for (const [index, to] of receivedBy) await rejects(side[to].receive(fromHex(sent.get(index)!.frame)), "KeyUnavailable");
});

// --- frames and bodies ---

test("frames round-trip and bad frames get precise decode errors", async () => {
  const session = randomBytes(16);
  const frames: Frame[] = [
    { kind: "Offer", session, room: roomId("dm"), initiator: userId("a"), responder: userId("b"), ephemeral: randomBytes(32) },
    { kind: "Refresh", session, room: roomId("dm:1"), initiator: userId("b_2"), responder: userId("a-1"), ephemeral: randomBytes(32) },
    { kind: "Accept", session, ephemeral: randomBytes(32), mac: randomBytes(32) },
    { kind: "Confirm", session, ratchetKey: randomBytes(32), mac: randomBytes(32) },
    { kind: "Decline", session },
    { kind: "Data", session, header: { ratchetKey: randomBytes(32), previousChainLen: 0xffffffff, number: 7 }, ciphertext: randomBytes(512 + 16) },
    { kind: "End", session },
  ];
  for (const f of frames) assert.deepEqual(decodeFrame(encodeFrame(f)), f);

  const end = encodeFrame({ kind: "End", session: new Uint8Array(16).fill(7) });
  throwsDecode(() => decodeFrame(Uint8Array.of(2, ...end.subarray(1))), "UnsupportedVersion");
  throwsDecode(() => decodeFrame(Uint8Array.of(1, 9, ...end.subarray(2))), "InvalidField", "InvalidField: frame kind");
  throwsDecode(() => decodeFrame(Uint8Array.of(1, 0, ...end.subarray(2))), "InvalidField", "InvalidField: frame kind");
  // The kind byte and session id are read before the kind is checked.
  throwsDecode(() => decodeFrame(Uint8Array.of(1, 9)), "Truncated");
  throwsDecode(() => decodeFrame(end.subarray(0, 17)), "Truncated");
  throwsDecode(() => decodeFrame(Uint8Array.of(...end, 0)), "TrailingBytes");
  throwsDecode(() => decodeFrame(new Uint8Array()), "Truncated");

  const data = (len: number): Frame => ({ kind: "Data", session, header: { ratchetKey: new Uint8Array(32), previousChainLen: 0, number: 0 }, ciphertext: new Uint8Array(len) });
  for (const bad of [0, 15, 16, 255 + 16, 256 + 15, 300, 256 + 17, 2 * MAX_BODY_LEN + 16]) {
    throwsDecode(() => decodeFrame(encodeFrame(data(bad))), "InvalidField", "InvalidField: ciphertext length");
  }
  for (const good of [256, 512, 1024, MAX_BODY_LEN]) assert.equal(decodeFrame(encodeFrame(data(good + 16))).kind, "Data");
  const truncatedData = encodeFrame(data(272));
  throwsDecode(() => decodeFrame(truncatedData.subarray(0, truncatedData.length - 1)), "Truncated");

  const offer = frames[0]!;
  assert.equal(offer.kind, "Offer");
  if (offer.kind !== "Offer") return;
  throwsDecode(() => decodeFrame(encodeFrame({ ...offer, responder: offer.initiator })), "InvalidField", "InvalidField: offer to oneself");
  const rawOffer = (room: string, a: string, b: string): Uint8Array =>
    Uint8Array.of(1, 1, ...session, room.length, ...utf8(room), a.length, ...utf8(a), b.length, ...utf8(b), ...new Uint8Array(32));
  throwsDecode(() => decodeFrame(rawOffer("dm", "a b", "c")), "InvalidField", "InvalidField: user id");
  throwsDecode(() => decodeFrame(rawOffer("dm", "a", "")), "InvalidField", "InvalidField: user id");
  throwsDecode(() => decodeFrame(rawOffer("", "a", "b")), "InvalidField", "InvalidField: room id");
  throwsDecode(() => decodeFrame(rawOffer("d/m", "a", "b")), "InvalidField", "InvalidField: room id");
  throwsDecode(() => decodeFrame(rawOffer("dm", "a", "b").subarray(0, 40)), "Truncated");
});

test("bodies pad to a power of two and bad bodies get precise errors", () => {
  const bodies: Body[] = [
    { kind: "text", text: "" },
    { kind: "text", text: "\u{feff}bom kept, ünïcödé, 🙂" },
    { kind: "text", text: "x".repeat(300) },
    { kind: "file", name: "cat.png", mediaType: "image/png", bytes: randomBytes(1000) },
  ];
  for (const b of bodies) {
    const padded = encodePaddedBody(b);
    assert.ok(padded.length >= 256 && (padded.length & (padded.length - 1)) === 0);
    assert.deepEqual(decodePaddedBody(padded), b);
  }
  assert.equal(encodePaddedBody({ kind: "text", text: "x".repeat(250) }).length, 256);
  assert.equal(encodePaddedBody({ kind: "text", text: "x".repeat(251) }).length, 512);

  const good = encodePaddedBody({ kind: "text", text: "hi" });
  const variant = (f: (v: Uint8Array) => Uint8Array): Uint8Array => f(good.slice());
  throwsDecode(() => decodePaddedBody(variant((v) => ((v[44] = 1), v))), "InvalidField", "InvalidField: padding");
  throwsDecode(() => decodePaddedBody(Uint8Array.of(...good, ...new Uint8Array(256))), "InvalidField", "InvalidField: padding");
  throwsDecode(() => decodePaddedBody(good.subarray(0, 255)), "InvalidField", "InvalidField: padding");
  throwsDecode(() => decodePaddedBody(variant((v) => ((v[1] = 3), v))), "InvalidField", "InvalidField: body kind");
  throwsDecode(() => decodePaddedBody(variant((v) => ((v[6] = 0xff), v))), "InvalidField", "InvalidField: text");
  throwsDecode(() => decodePaddedBody(variant((v) => ((v[0] = 2), v))), "UnsupportedVersion");
  throwsDecode(() => decodePaddedBody(variant((v) => ((v[2] = 0xff), v))), "Truncated");
  const file = encodePaddedBody({ kind: "file", name: "a", mediaType: "b/c", bytes: new Uint8Array() });
  throwsDecode(() => decodePaddedBody(Uint8Array.from(file, (x, i) => (i === 5 ? 0x20 : x))), "InvalidField", "InvalidField: media type");
  throwsDecode(() => decodePaddedBody(Uint8Array.from(file, (x, i) => (i === 3 ? 0xc0 : x))), "InvalidField", "InvalidField: file name");

  assert.throws(() => encodePaddedBody({ kind: "file", name: "a.bin", mediaType: "application/octet-stream", bytes: new Uint8Array(MAX_BODY_LEN) }), isOtrError("BodyTooLarge"));
  assert.throws(() => encodePaddedBody({ kind: "file", name: "a", mediaType: "text plain", bytes: new Uint8Array() }), isOtrError("Body", "media type"));
  assert.throws(() => encodePaddedBody({ kind: "file", name: "", mediaType: "a/b", bytes: new Uint8Array() }), isOtrError("Body", "file name"));
  assert.throws(() => encodePaddedBody({ kind: "file", name: "n".repeat(256), mediaType: "a/b", bytes: new Uint8Array() }), isOtrError("Body", "file name"));
  const fits = MAX_BODY_LEN - (2 + 1 + 1 + 1 + 3 + 4);
  assert.equal(encodePaddedBody({ kind: "file", name: "f", mediaType: "a/b", bytes: new Uint8Array(fits) }).length, MAX_BODY_LEN);
  assert.throws(() => encodePaddedBody({ kind: "file", name: "f", mediaType: "a/b", bytes: new Uint8Array(fits + 1) }), isOtrError("BodyTooLarge"));
});

// --- sessions ---

test("two peers exchange messages both ways across several DH ratchet steps", async () => {
  const { a, b } = await established();
  const seenKeys = new Set<string>();
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 3; i++) {
      const f = await a.sendText(`a${round}.${i}`);
      assert.ok(f.kind === "Data");
      seenKeys.add(toHex(f.header.ratchetKey));
      assert.equal(f.header.number, i);
      assert.equal(text(await b.handle(wire(f))), `a${round}.${i}`);
    }
    const f = await b.sendText(`b${round}`);
    assert.ok(f.kind === "Data");
    seenKeys.add(toHex(f.header.ratchetKey));
    assert.equal(text(await a.handle(wire(f))), `b${round}`);
  }
  // Every change of direction brought a fresh ratchet key.
  assert.equal(seenKeys.size, 10);
  // A file, and the responder speaking first after its reply.
  const bytes = utf8("\x89PNG small picture");
  const f = await a.sendFile("cat.png", "image/png", bytes);
  assert.ok(f.kind === "Data");
  assert.equal(f.ciphertext.length, 256 + 16, "small bodies pad to 256 bytes");
  assert.deepEqual(message(await b.handle(wire(f))), { kind: "file", name: "cat.png", mediaType: "image/png", bytes });

  const fresh = await established();
  assert.equal(text(await fresh.a.handle(await fresh.b.sendText("hi"))), "hi");
  assert.equal(text(await fresh.b.handle(await fresh.a.sendText("hello"))), "hello");
  // Concurrent sends are serialised: distinct numbers, both open.
  const [x, y] = await Promise.all([fresh.a.sendText("one"), fresh.a.sendText("two")]);
  assert.ok(x.kind === "Data" && y.kind === "Data");
  assert.deepEqual([x.header.number, y.header.number], [1, 2]);
  assert.equal(text(await fresh.b.handle(y)), "two");
  assert.equal(text(await fresh.b.handle(x)), "one");
});

test("out-of-order delivery within the skip bound, replays refused", async () => {
  const { a, b } = await established();
  const m: Frame[] = [];
  for (let i = 0; i < 5; i++) m.push(await a.sendText(`m${i}`));
  for (const i of [3, 0, 4, 2]) assert.equal(text(await b.handle(m[i]!)), `m${i}`);
  // Replays of a used key: a skipped one and an in-order one.
  await rejects(b.handle(m[0]!), "KeyUnavailable");
  await rejects(b.handle(m[4]!), "KeyUnavailable");
  assert.equal(text(await a.handle(await b.sendText("ok"))), "ok");
  assert.equal(text(await b.handle(await a.sendText("next"))), "next");
  // The dropped message arrives late, across ratchet steps, once.
  assert.equal(text(await b.handle(m[1]!)), "m1");
  await rejects(b.handle(m[1]!), "KeyUnavailable");
  // A replay from a chain already stepped past.
  await rejects(b.handle(m[2]!), "KeyUnavailable");
  await rejects(b.receive(encodeFrame(m[3]!)), "KeyUnavailable");
});

test("skipping over the bound is refused with the state unchanged; hostile counters are bounded", async () => {
  const { a, b } = await established();
  const first = await a.sendText("first");
  const chain: Frame[] = [];
  for (let i = 0; i < MAX_SKIP_PER_STEP; i++) chain.push(await a.sendText(String(i)));
  const beyond = await a.sendText("beyond");
  // 1001 keys to skip: refused.
  await rejects(b.handle(beyond), "TooManySkipped");
  // Hostile counters, in the current chain and with a new ratchet key.
  assert.ok(beyond.kind === "Data");
  for (const number of [2 ** 31, 0xffffffff, MAX_SKIP_PER_STEP + 1]) {
    await rejects(b.handle({ ...beyond, header: { ...beyond.header, number } }), "TooManySkipped");
  }
  const stranger = await publicKey(randomBytes(32));
  await rejects(b.handle({ ...beyond, header: { ratchetKey: stranger, previousChainLen: 2 ** 31, number: 0 } }), "TooManySkipped");
  await rejects(b.handle({ ...beyond, header: { ratchetKey: stranger, previousChainLen: 0, number: 2 ** 31 } }), "TooManySkipped");
  await rejects(b.handle({ ...beyond, header: { ratchetKey: new Uint8Array(32), previousChainLen: 0, number: 0 } }), "WeakKey");
  // Exactly the bound is fine: 1000 keys stored (first, 0..998).
  const last = MAX_SKIP_PER_STEP - 1;
  assert.equal(text(await b.handle(chain[last]!)), String(last));
  assert.equal(text(await b.handle(beyond)), "beyond");
  // One more skipped key in a new chain pushes out the oldest.
  assert.equal(text(await a.handle(await b.sendText("r"))), "r");
  const skipped = await a.sendText("skipped");
  assert.equal(text(await b.handle(await a.sendText("after"))), "after");
  await rejects(b.handle(first), "KeyUnavailable");
  assert.equal(text(await b.handle(chain[0]!)), "0");
  assert.equal(text(await b.handle(skipped)), "skipped");
});

test("a tampered data frame is refused with precise errors and the state unchanged", async () => {
  const { a, b } = await established();
  const good = encodeFrame(await a.sendText("hello"));
  const check = async (at: number, bit: number): Promise<unknown> => {
    const bad = good.slice();
    bad[at]! ^= bit;
    try {
      await b.receive(bad);
    } catch (e) {
      return e;
    }
    return undefined;
  };
  const expect = async (at: number, bit: number, kind: OtrErrorKind, detail?: DecodeError["kind"]): Promise<void> => {
    const e = await check(at, bit);
    assert.ok(e instanceof OtrError, `byte ${at}: ${String(e)}`);
    assert.equal(e.kind, kind, `byte ${at}`);
    if (detail) assert.equal(e.decode?.kind, detail, `byte ${at}`);
  };
  // Layout: version 0, kind 1, session 2..18, ratchet key 18..50, PN 50..54, N 54..58,
  // ciphertext length 58..62, ciphertext.
  await expect(0, 1, "Decode", "UnsupportedVersion");
  await expect(1, 0x10, "Decode", "InvalidField");
  await expect(1, 1, "Decode", "TrailingBytes");
  for (let at = 2; at < 18; at++) await expect(at, 1, "UnknownSession");
  for (let at = 18; at < 54; at++) await expect(at, 0x02, "DecryptFailed");
  for (const at of [56, 57]) await expect(at, 0x02, "DecryptFailed");
  for (const at of [54, 55]) await expect(at, 0x02, "TooManySkipped");
  await expect(58, 1, "Decode", "Truncated");
  await expect(61, 0x10, "Decode", "InvalidField");
  for (let at = 62; at < good.length; at += 7) await expect(at, 1, "DecryptFailed");
  await expect(good.length - 1, 0x80, "DecryptFailed");
  assert.equal(b.state, "Established");
  // The genuine frame still opens, and the conversation goes on.
  assert.equal(text(await b.receive(good)), "hello");
  assert.equal(text(await a.handle(await b.sendText("back"))), "back");

  // The same for a stored (skipped) key: a forgery does not consume it.
  const early = await a.sendText("early");
  assert.equal(text(await b.handle(await a.sendText("late"))), "late");
  assert.ok(early.kind === "Data");
  const forged = { ...early, ciphertext: early.ciphertext.slice() };
  forged.ciphertext[0]! ^= 1;
  await rejects(b.handle(forged), "DecryptFailed");
  assert.equal(text(await b.handle(early)), "early");
});

test("a tampered or misdirected handshake is refused and leaves the session as it was", async () => {
  const alice = await user("alice");
  const bob = await user("bob");
  const { session: a, frame: offer } = await OtrSession.offer(alice.own, bob.peer, ROOM);
  assert.ok(offer.kind === "Offer");
  const acceptWith = (o: Frame) => OtrSession.accept(o, bob.own, alice.peer, ROOM);
  await rejects(acceptWith({ ...offer, room: roomId("dm.other") }), "WrongRoom");
  await rejects(acceptWith({ ...offer, initiator: userId("carol") }), "WrongParticipants");
  await rejects(acceptWith({ ...offer, responder: userId("carol") }), "WrongParticipants");
  await rejects(acceptWith({ ...offer, ephemeral: new Uint8Array(32) }), "WeakKey");
  await rejects(acceptWith({ kind: "End", session: offer.session }), "UnexpectedFrame");
  await rejects(OtrSession.offer(alice.own, alice.peer, ROOM), "WrongParticipants");

  const { session: b, frame: accept } = await acceptWith(offer);
  const acceptBytes = encodeFrame(accept);
  for (let at = 18; at < acceptBytes.length; at++) {
    const bad = acceptBytes.slice();
    bad[at]! ^= 0x04;
    await rejects(a.receive(bad), "BadConfirmation");
    assert.equal(a.state, "AwaitingAccept");
  }
  assert.ok(accept.kind === "Accept");
  await rejects(a.handle({ ...accept, ephemeral: new Uint8Array(32) }), "WeakKey");
  const confirm = replyOf(await a.receive(acceptBytes), "Established");
  const confirmBytes = encodeFrame(confirm);
  for (let at = 18; at < confirmBytes.length; at++) {
    const bad = confirmBytes.slice();
    bad[at]! ^= 0x40;
    await rejects(b.receive(bad), "BadConfirmation");
    assert.equal(b.state, "AwaitingConfirm");
  }
  assert.deepEqual(await b.receive(confirmBytes), { kind: "Established", reply: null });
  // Handshake frames once established are out of place.
  await rejects(b.receive(confirmBytes), "UnexpectedFrame");
  await rejects(a.receive(acceptBytes), "UnexpectedFrame");
  await rejects(a.handle(offer), "UnexpectedFrame");
  await rejects(a.handle({ kind: "Decline", session: a.id }), "UnexpectedFrame");
  assert.equal(text(await b.handle(await a.sendText("fine"))), "fine");
});

test("a substituted agreement key or a swapped ephemeral fails the confirmation", async () => {
  const alice = await user("alice");
  const bob = await user("bob");
  const mallory = await user("bob");
  // Alice holds another key for "bob".
  let { session: a, frame: offer } = await OtrSession.offer(alice.own, mallory.peer, ROOM);
  let { frame: accept } = await OtrSession.accept(offer, bob.own, alice.peer, ROOM);
  await rejects(a.handle(accept), "BadConfirmation");
  // Bob holds another key for Alice.
  ({ session: a, frame: offer } = await OtrSession.offer(alice.own, bob.peer, ROOM));
  const fakeAlice = await user("alice");
  ({ frame: accept } = await OtrSession.accept(offer, bob.own, fakeAlice.peer, ROOM));
  await rejects(a.handle(accept), "BadConfirmation");
  // A man in the middle swapping the offer's ephemeral.
  assert.ok(offer.kind === "Offer");
  const mitm = await publicKey(randomBytes(32));
  const { session: b, frame: accept2 } = await OtrSession.accept({ ...offer, ephemeral: mitm }, bob.own, alice.peer, ROOM);
  await rejects(a.handle(accept2), "BadConfirmation");
  // Swapping the accept's ephemeral and keeping the MAC.
  ({ frame: accept } = await OtrSession.accept(offer, bob.own, alice.peer, ROOM));
  assert.ok(accept.kind === "Accept");
  await rejects(a.handle({ ...accept, ephemeral: mitm }), "BadConfirmation");
  // Bob, who answered the swapped offer, refuses Alice's genuine confirmation.
  const confirm = replyOf(await a.handle(accept), "Established");
  await rejects(b.handle(confirm), "BadConfirmation");
});

test("decline ends the offer", async () => {
  const alice = await user("alice");
  const bob = await user("bob");
  const { session: a, frame: offer } = await OtrSession.offer(alice.own, bob.peer, ROOM);
  assert.throws(() => OtrSession.decline({ kind: "End", session: offer.session }), isOtrError("UnexpectedFrame"));
  const decline = wire(OtrSession.decline(offer));
  assert.equal(decline.kind, "Decline");
  assert.deepEqual(await a.handle(decline), { kind: "Declined" });
  assert.equal(a.state, "Ended");
  await rejects(a.sendText("x"), "Ended");
  await rejects(a.handle(decline), "Ended");
});

test("frames for another session are rejected and change nothing", async () => {
  const { a, b } = await established();
  const other = await established();
  const stray = await other.a.sendText("elsewhere");
  await rejects(b.handle(stray), "UnknownSession");
  await rejects(b.handle({ kind: "End", session: other.a.id }), "UnknownSession");
  await rejects(b.handle({ kind: "Refresh", session: other.a.id, room: roomId(ROOM), initiator: userId("alice"), responder: userId("bob"), ephemeral: await publicKey(randomBytes(32)) }), "UnknownSession");
  assert.equal(b.state, "Established");
  assert.equal(text(await b.handle(await a.sendText("still here"))), "still here");
});

test("end wipes the state on both sides", async () => {
  const { a, b } = await established();
  const inFlight = await a.sendText("in flight");
  const end = wire(a.end());
  assert.equal(end.kind, "End");
  assert.equal(a.state, "Ended");
  assert.deepEqual(Reflect.get(a, "st"), { kind: "Ended" });
  const secret = Reflect.get(a, "ownIdentity");
  assert.ok(secret instanceof Uint8Array && secret.every((x) => x === 0), "agreement secret copy overwritten");
  await rejects(a.sendText("after end"), "Ended");
  await rejects(a.refresh(), "Ended");
  assert.deepEqual(await b.handle(end), { kind: "Ended" });
  assert.deepEqual(Reflect.get(b, "st"), { kind: "Ended" });
  await rejects(b.sendFile("a", "b/c", utf8("x")), "Ended");
  await rejects(b.handle(inFlight), "Ended");
  await rejects(b.handle(end), "Ended");
  // end() while a decryption is running: the operation fails, nothing is resurrected.
  const c = await established();
  const m = await c.a.sendText("racing");
  const pending = c.b.handle(m);
  c.b.end();
  await rejects(pending, "Ended");
  assert.equal(c.b.state, "Ended");
});

test("refresh re-keys; the old state cannot read on; a bad refresh changes nothing", async () => {
  const { a, b } = await established();
  assert.equal(text(await b.handle(await a.sendText("before"))), "before");
  const refresh = wire(await a.refresh());
  assert.equal(refresh.kind, "Refresh");
  assert.equal(a.state, "AwaitingAccept");
  await rejects(a.sendText("x"), "NotEstablished");
  await rejects(a.refresh(), "NotEstablished");
  assert.ok(refresh.kind === "Refresh");
  await rejects(b.handle({ ...refresh, room: roomId("dm.other") }), "WrongRoom");
  await rejects(b.handle({ ...refresh, initiator: userId("carol") }), "WrongParticipants");
  assert.equal(b.state, "Established");
  const accept = replyOf(await b.handle(refresh), "RefreshStarted");
  assert.equal(b.state, "AwaitingConfirm");
  const confirm = replyOf(await a.handle(wire(accept)), "Refreshed");
  assert.deepEqual(await b.handle(wire(confirm)), { kind: "Refreshed", reply: null });
  assert.equal(text(await b.handle(await a.sendText("after"))), "after");
  assert.equal(text(await a.handle(await b.sendText("back"))), "back");
});

test("a peer that lost its state rejoins through refresh", async () => {
  const { a, alice, bob } = await established();
  const refresh = await a.refresh();
  const { session: b, frame: accept } = await OtrSession.accept(refresh, bob.own, alice.peer, ROOM);
  const confirm = replyOf(await a.handle(accept), "Refreshed");
  assert.deepEqual(await b.handle(confirm), { kind: "Established", reply: null });
  assert.equal(text(await b.handle(await a.sendText("welcome back"))), "welcome back");
});

test("simultaneous refreshes settle on one", async () => {
  const { a, b } = await established();
  const ra = await a.refresh();
  const rb = await b.refresh();
  const ea = await a.handle(rb);
  const eb = await b.handle(ra);
  let winner: OtrSession;
  let loser: OtrSession;
  let accept: Frame;
  if (ea.kind === "Ignored" && eb.kind === "RefreshStarted") [winner, loser, accept] = [a, b, eb.reply];
  else if (eb.kind === "Ignored" && ea.kind === "RefreshStarted") [winner, loser, accept] = [b, a, ea.reply];
  else throw new Error(`no single winner: ${ea.kind} ${eb.kind}`);
  const confirm = replyOf(await winner.handle(accept), "Refreshed");
  assert.deepEqual(await loser.handle(confirm), { kind: "Refreshed", reply: null });
  assert.equal(text(await loser.handle(await winner.sendText("settled"))), "settled");
  assert.equal(text(await winner.handle(await loser.sendText("agreed"))), "agreed");
});

test("frames out of place are UnexpectedFrame", async () => {
  const alice = await user("alice");
  const bob = await user("bob");
  const { session: a, frame: offer } = await OtrSession.offer(alice.own, bob.peer, ROOM);
  const { session: b, frame: accept } = await OtrSession.accept(offer, bob.own, alice.peer, ROOM);
  const other = await established();
  const d = await other.a.sendText("early");
  assert.ok(d.kind === "Data" && accept.kind === "Accept");
  await rejects(b.handle({ ...d, session: b.id }), "UnexpectedFrame");
  await rejects(b.handle({ kind: "Decline", session: b.id }), "UnexpectedFrame");
  await rejects(a.handle({ ...d, session: a.id }), "UnexpectedFrame");
  await rejects(a.handle({ kind: "Confirm", session: a.id, ratchetKey: accept.ephemeral, mac: accept.mac }), "UnexpectedFrame");
  await rejects(b.handle(offer), "UnexpectedFrame");
  assert.equal(a.state, "AwaitingAccept");
  assert.equal(b.state, "AwaitingConfirm");
});

test("the ratchet refuses a forged message without changing its state", async () => {
  const session = randomBytes(16);
  const root = randomBytes(32);
  const ekB = randomBytes(32);
  const rA = randomBytes(32);
  const a = await Ratchet.initiator(session, root, rA, await publicKey(ekB));
  const b = await Ratchet.responder(session, root, ekB, await publicKey(rA), randomBytes);
  const padded = new Uint8Array(256).fill(1);
  const { header, ciphertext } = await a.encrypt(padded);
  const bad = ciphertext.slice();
  bad[0]! ^= 1;
  await rejects(b.decrypt({ ...header, ratchetKey: await publicKey(randomBytes(32)) }, bad, randomBytes), "DecryptFailed");
  await rejects(b.decrypt(header, bad, randomBytes), "DecryptFailed");
  assert.equal(b.skippedCount, 0);
  assert.deepEqual(await b.decrypt(header, ciphertext, randomBytes), padded);
  await rejects(b.decrypt(header, ciphertext, randomBytes), "KeyUnavailable");
});
