import { test } from "node:test";
import assert from "node:assert/strict";
import { type Attachment, type MessageBody, decodeBody, encodeBody, textBody } from "../../src/crypto/body";
import { DecodeError, Writer, concat, toHex, utf8 } from "../../src/crypto/encoding";
import { EnvelopeError, type EnvelopeErrorKind, type OpenEnvelopeOptions, SealError, encodeHeader, newHeader, openEnvelope, peekEnvelope, sealEnvelope, verifyEnvelopeSignatures } from "../../src/crypto/envelope";
import { EpochKey } from "../../src/crypto/epoch";
import { roomId, userId } from "../../src/crypto/ids";
import { IdentityKeys } from "../../src/crypto/identity";
import { PaddingError, bucketLen, isBucket, pad, unpad } from "../../src/crypto/padding";
import { aesGcmSeal } from "../../src/crypto/primitives";
import { SeenMessages } from "../../src/crypto/replay";
import { flip, hex, loadVector, scripted, str } from "./vectorfiles";

const isEnv = (kind: EnvelopeErrorKind) => (e: unknown) => e instanceof EnvelopeError && e.kind === kind;

async function vectorWorld() {
  const v = loadVector("envelope.json");
  const keys = await IdentityKeys.fromBytes(hex(v, "sender_private_keys"));
  assert.equal(toHex(keys.identityPublic), str(v, "sender_identity_public"));
  const room = roomId(str(v, "room_id"));
  const sender = userId(str(v, "sender_id"));
  const epochKey = new EpochKey(hex(v, "epoch_id"), hex(v, "epoch_key"));
  const members = new Set((v["authorized_members"] as string[]).map(userId));
  const header = { roomId: room, epochId: hex(v, "epoch_id"), senderId: sender, messageId: hex(v, "message_id") };
  return { v, keys, room, sender, epochKey, members, header };
}

test("envelope.json: header, body, padding, ciphertext, signature and envelope are reproduced byte for byte", async () => {
  const { v, keys, epochKey, members, header } = await vectorWorld();
  assert.equal(toHex(encodeHeader(header)), str(v, "header"));
  const body = decodeBody(hex(v, "body"));
  assert.equal(body.text, str(v, "text"));
  assert.equal(toHex(encodeBody(body)), str(v, "body"));
  assert.equal(toHex(pad(hex(v, "body"))), str(v, "padded_plaintext"));
  const again = await sealEnvelope(body, header, epochKey, keys, scripted(hex(v, "nonce")));
  assert.equal(toHex(again), str(v, "envelope"));
  assert.equal(str(v, "envelope"), str(v, "header") + str(v, "nonce") + str(v, "ciphertext") + str(v, "signature"));
  // A header made with newHeader draws only the message id.
  const made = newHeader(header.roomId, header.epochId, header.senderId, scripted(hex(v, "message_id")));
  assert.equal(toHex(encodeHeader(made)), str(v, "header"));

  const peeked = peekEnvelope(hex(v, "envelope"));
  assert.equal(peeked.roomId, header.roomId);
  assert.equal(peeked.senderId, header.senderId);
  assert.equal(toHex(peeked.messageId), str(v, "message_id"));
  const seen = new SeenMessages();
  const opened = await openEnvelope(hex(v, "envelope"), { room: header.roomId, epochKey, senderKey: keys.identityPublic, authorized: members, seen });
  assert.equal(opened.body.text, "Draft attached — comments by Friday?");
  assert.equal(toHex(encodeBody(opened.body)), str(v, "body"));
  assert.equal(opened.underFormerKey, false);
  assert.deepEqual(opened.body.mentions, ["u.bob", "u.carol"]);
  assert.equal(opened.body.attachments.length, 1);
  const a = opened.body.attachments[0]!;
  assert.equal(a.name, "plan-v2.pdf");
  assert.equal(a.mediaType, "application/pdf");
  assert.equal(a.chunkSize, 65536);
  assert.ok(seen.contains(header.roomId, header.messageId));
  // Step 10: the same envelope again is a replay.
  await assert.rejects(openEnvelope(hex(v, "envelope"), { room: header.roomId, epochKey, senderKey: keys.identityPublic, authorized: members, seen }), isEnv("Replayed"));
});

/** An envelope over arbitrary padded plaintext, correctly encrypted and signed. */
async function craft(header: Parameters<typeof encodeHeader>[0], padded: Uint8Array, key: EpochKey, keys: IdentityKeys): Promise<Uint8Array> {
  const h = encodeHeader(header);
  const nonce = new Uint8Array(12).fill(3);
  const signed = concat(h, nonce, await aesGcmSeal(key.keyBytes(), nonce, padded, h));
  return concat(signed, keys.sign("sotto/v1/message", signed));
}

test("envelope: every check of §7.6 refuses with its own error, in order", async () => {
  const { v, keys, room, sender, epochKey, members, header } = await vectorWorld();
  const bytes = hex(v, "envelope");
  const base = { room, epochKey, senderKey: keys.identityPublic, authorized: members };
  // 1. structure
  for (const bad of [bytes.subarray(0, 200), bytes.subarray(0, bytes.length - 1), concat(bytes, Uint8Array.of(0))]) {
    await assert.rejects(openEnvelope(bad, base), (e: unknown) => e instanceof EnvelopeError && e.kind === "Decode" && e.decode?.kind === "InvalidField");
  }
  await assert.rejects(openEnvelope(bytes.subarray(0, 40), base), (e: unknown) => e instanceof EnvelopeError && e.decode?.kind === "Truncated");
  const v2 = Uint8Array.from(bytes);
  v2[0] = 2;
  await assert.rejects(openEnvelope(v2, base), (e: unknown) => e instanceof EnvelopeError && e.decode?.kind === "UnsupportedVersion");
  assert.throws(() => peekEnvelope(bytes.subarray(0, bytes.length - 64)), (e: unknown) => e instanceof DecodeError);
  // 2. room
  await assert.rejects(openEnvelope(bytes, { ...base, room: roomId("r.other") }), isEnv("WrongRoom"));
  // 3. epoch
  await assert.rejects(openEnvelope(bytes, { ...base, epochKey: new EpochKey(new Uint8Array(16), epochKey.keyBytes()) }), isEnv("WrongEpoch"));
  // 4. sender authorized for the epoch (set, list or predicate)
  await assert.rejects(openEnvelope(bytes, { ...base, authorized: new Set(["u.bob"]) }), isEnv("SenderNotAuthorized"));
  await assert.rejects(openEnvelope(bytes, { ...base, authorized: ["u.bob", "u.carol"] }), isEnv("SenderNotAuthorized"));
  await assert.rejects(openEnvelope(bytes, { ...base, authorized: () => false }), isEnv("SenderNotAuthorized"));
  // 5. signature: flipped signature, flipped ciphertext, another key
  await assert.rejects(openEnvelope(flip(bytes, bytes.length - 1), base), isEnv("BadSignature"));
  await assert.rejects(openEnvelope(flip(bytes, 100), base), isEnv("BadSignature"));
  const mallory = await IdentityKeys.fromSecrets(new Uint8Array(32).fill(9), new Uint8Array(32).fill(10));
  await assert.rejects(openEnvelope(bytes, { ...base, senderKey: mallory.identityPublic }), isEnv("BadSignature"));
  // ...a former key of the sender verifies, but is reported as such.
  const viaFormer = await openEnvelope(bytes, { ...base, senderKey: mallory.identityPublic, formerKeys: [keys.identityPublic] });
  assert.equal(viaFormer.underFormerKey, true);
  // 6. decryption: a signed envelope under another key of the same epoch
  const otherKey = new EpochKey(epochKey.epochId, new Uint8Array(32).fill(1));
  const underOther = await sealEnvelope(decodeBody(hex(v, "body")), header, otherKey, keys, scripted(hex(v, "nonce")));
  await assert.rejects(openEnvelope(underOther, base), isEnv("DecryptFailed"));
  // 7. padding: no marker
  const body = hex(v, "body");
  const noMarker = new Uint8Array(256);
  noMarker.set(body);
  await assert.rejects(openEnvelope(await craft(header, noMarker, epochKey, keys), base), isEnv("BadPadding"));
  // 8. body: well padded garbage
  await assert.rejects(openEnvelope(await craft(header, pad(Uint8Array.of(1, 0xff)), epochKey, keys), base), (e: unknown) => e instanceof EnvelopeError && e.kind === "BadBody" && e.decode?.kind === "Truncated");
  // 9. inner mismatch: the body names another sender / room
  const otherSender = encodeBody(textBody(room, userId("u.bob"), "hi"));
  await assert.rejects(openEnvelope(await craft(header, pad(otherSender), epochKey, keys), base), isEnv("InnerMismatch"));
  const otherRoom = encodeBody(textBody(roomId("r.other"), sender, "hi"));
  await assert.rejects(openEnvelope(await craft(header, pad(otherRoom), epochKey, keys), base), isEnv("InnerMismatch"));
  // 10. replay is per room: a seen id in another room does not count.
  const seen = new SeenMessages();
  seen.checkAndInsert(roomId("r.other"), header.messageId);
  await openEnvelope(bytes, { ...base, seen });
  await assert.rejects(openEnvelope(bytes, { ...base, seen }), isEnv("Replayed"));
});

test("envelope: a page's signatures verified in one batch give every envelope the outcome it gets alone", async () => {
  const { v, keys, room, sender, epochKey, members } = await vectorWorld();
  const bytes = hex(v, "envelope");
  const mallory = await IdentityKeys.fromSecrets(new Uint8Array(32).fill(9), new Uint8Array(32).fill(10));
  // The valid one, a bad signature, the same signature over another ciphertext (the
  // result must be bound to the signed bytes, not the signature), a damaged one.
  const page = [bytes, flip(bytes, bytes.length - 1), flip(bytes, 100), bytes.subarray(0, 200)];
  const outcome = (b: Uint8Array, o: OpenEnvelopeOptions) =>
    openEnvelope(b, o).then(
      (r) => `opened${r.underFormerKey ? " under a former key" : ""}`,
      (e: unknown) => (e instanceof EnvelopeError ? e.kind : "thrown"),
    );
  for (const pinned of [keys.identityPublic, mallory.identityPublic]) {
    const verify = await verifyEnvelopeSignatures(page, (u) => (u === sender ? pinned : undefined));
    for (const base of [
      { room, epochKey, senderKey: pinned, authorized: members },
      { room, epochKey, senderKey: pinned, authorized: members, formerKeys: [keys.identityPublic] },
      { room: roomId("r.other"), epochKey, senderKey: pinned, authorized: members },
    ]) {
      for (const b of page) assert.equal(await outcome(b, { ...base, verify }), await outcome(b, base));
    }
  }
  const verify = await verifyEnvelopeSignatures(page, () => keys.identityPublic);
  const base = { room, epochKey, authorized: members, verify };
  assert.equal(await outcome(bytes, { ...base, senderKey: keys.identityPublic }), "opened");
  assert.equal(await outcome(flip(bytes, 100), { ...base, senderKey: keys.identityPublic }), "BadSignature");
  assert.equal(await outcome(bytes, { ...base, senderKey: mallory.identityPublic, formerKeys: [keys.identityPublic] }), "opened under a former key");
  assert.equal(await outcome(bytes, { ...base, senderKey: mallory.identityPublic }), "BadSignature");
  // Nothing to verify: every envelope is verified when opened.
  assert.equal(await outcome(bytes, { ...base, senderKey: keys.identityPublic, verify: await verifyEnvelopeSignatures([], () => undefined) }), "opened");
});

test("sealing refuses mismatched headers and invalid bodies, and round-trips every field", async () => {
  const { keys, room, sender, epochKey, header } = await vectorWorld();
  const isSeal = (kind: SealError["kind"]) => (e: unknown) => e instanceof SealError && e.kind === kind;
  await assert.rejects(sealEnvelope(textBody(room, userId("u.bob"), "x"), header, epochKey, keys), isSeal("InnerMismatch"));
  await assert.rejects(sealEnvelope(textBody(roomId("r.x"), sender, "x"), header, epochKey, keys), isSeal("InnerMismatch"));
  await assert.rejects(sealEnvelope(textBody(room, sender, "x"), { ...header, epochId: new Uint8Array(16) }, epochKey, keys), isSeal("WrongEpoch"));
  await assert.rejects(sealEnvelope(textBody(room, sender, "x".repeat(1048576)), header, epochKey, keys), isSeal("TooLarge"));
  const attachment: Attachment = { fileId: "f.1", fileKey: new Uint8Array(32).fill(5), name: "naïve résumé.txt", mediaType: "text/plain", size: 1234n, blobSha256: new Uint8Array(32).fill(6), chunkSize: 65536 };
  await assert.rejects(sealEnvelope({ ...textBody(room, sender, "x"), attachments: [{ ...attachment, fileId: "bad id" }] }, header, epochKey, keys), (e: unknown) => e instanceof SealError && e.kind === "InvalidBody" && e.decode?.kind === "InvalidField");
  await assert.rejects(sealEnvelope({ ...textBody(room, sender, "x"), attachments: [{ ...attachment, chunkSize: 63 }] }, header, epochKey, keys), isSeal("InvalidBody"));
  await assert.rejects(sealEnvelope({ ...textBody(room, sender, "x"), attachments: [{ ...attachment, name: "" }] }, header, epochKey, keys), isSeal("InvalidBody"));
  await assert.rejects(sealEnvelope({ ...textBody(room, sender, "x"), attachments: Array(65).fill(attachment) as Attachment[] }, header, epochKey, keys), isSeal("InvalidBody"));

  const full: MessageBody = {
    roomId: room,
    senderId: sender,
    text: "",
    replyTo: new Uint8Array(16).fill(1),
    editOf: new Uint8Array(16).fill(2),
    mentions: [userId("u.zed"), userId("u.amy"), userId("u.amy")],
    attachments: [attachment, { ...attachment, size: 0xffffffffffffffffn, mediaType: "application/octet-stream" }],
  };
  const fresh = newHeader(room, epochKey.epochId, sender);
  const env = await sealEnvelope(full, fresh, epochKey, keys);
  const opened = await openEnvelope(env, { room, epochKey, senderKey: keys.identityPublic, authorized: (u) => u === sender });
  assert.deepEqual(opened.body, { ...full, mentions: ["u.amy", "u.zed"] });
  assert.equal(toHex(opened.header.messageId), toHex(fresh.messageId));
});

test("body decoding refuses every malformed field", () => {
  const room = roomId("r");
  const u = userId("u");
  const good = encodeBody(textBody(room, u, "hi"));
  const invalid = (bytes: Uint8Array, kind: DecodeError["kind"] = "InvalidField") => assert.throws(() => decodeBody(bytes), (e: unknown) => e instanceof DecodeError && e.kind === kind);
  invalid(concat(good, Uint8Array.of(0)), "TrailingBytes");
  invalid(good.subarray(0, good.length - 1), "Truncated");
  const badVersion = Uint8Array.from(good);
  badVersion[0] = 2;
  invalid(badVersion, "UnsupportedVersion");
  // text that is not UTF-8
  const w = (text: Uint8Array, tail: Uint8Array) => new Writer().u8(1).bytes8(utf8("r")).bytes8(utf8("u")).bytes32(text).raw(tail).finish();
  invalid(w(Uint8Array.of(0xff), Uint8Array.of(0, 0, 0, 0, 0)));
  // reference flag 2
  invalid(w(utf8("x"), Uint8Array.of(2, 0, 0, 0, 0)));
  // mentions out of order, or repeated
  invalid(w(utf8("x"), concat(Uint8Array.of(0, 0, 0, 2), Uint8Array.of(1, 0x62, 1, 0x61), Uint8Array.of(0))));
  invalid(w(utf8("x"), concat(Uint8Array.of(0, 0, 0, 2), Uint8Array.of(1, 0x61, 1, 0x61), Uint8Array.of(0))));
  // more than 64 attachments
  invalid(w(utf8("x"), Uint8Array.of(0, 0, 0, 0, 65)));
  // an attachment with an invalid media type (a control byte)
  const att = new Writer().bytes8(utf8("f")).raw(new Uint8Array(32)).bytes16(utf8("n")).bytes8(Uint8Array.of(0x09)).u64(1n).raw(new Uint8Array(32)).u32(64).finish();
  invalid(w(utf8("x"), concat(Uint8Array.of(0, 0, 0, 0, 1), att)));
});

test("padding: bucket sizes, round trips and malformed padding", () => {
  assert.equal(bucketLen(0), 256);
  assert.equal(bucketLen(255), 256);
  assert.equal(bucketLen(256), 512);
  assert.equal(bucketLen(1000), 1024);
  assert.equal(bucketLen(65535), 65536);
  assert.equal(bucketLen(65536), 131072);
  assert.equal(bucketLen(131072), 196608);
  assert.equal(bucketLen(1048575), 1048576);
  assert.throws(() => bucketLen(1048576), (e: unknown) => e instanceof PaddingError && e.kind === "TooLong");
  assert.ok(!isBucket(128) && !isBucket(300) && isBucket(196608) && !isBucket(1048576 + 65536));
  for (const n of [0, 1, 255, 256, 70000]) {
    const data = new Uint8Array(n).fill(7);
    const p = pad(data);
    assert.equal(p.length, bucketLen(n));
    assert.deepEqual(unpad(p), data);
  }
  const p = pad(utf8("hello"));
  const malformed = (b: Uint8Array) => assert.throws(() => unpad(b), (e: unknown) => e instanceof PaddingError && e.kind === "Malformed");
  const noMarker = Uint8Array.from(p);
  noMarker[5] = 0;
  malformed(noMarker);
  const junk = Uint8Array.from(p);
  junk[200] = 1;
  malformed(junk);
  malformed(p.subarray(0, 255));
  malformed(new Uint8Array(256));
  malformed(new Uint8Array(0));
});
