import { test } from "node:test";
import assert from "node:assert/strict";
import { chacha20 } from "@noble/ciphers/chacha.js";
import { Writer, concat, fromHex, toHex, utf8 } from "../../src/crypto/encoding";
import { type RoomId, type UserId, randomIdToHex, roomId, userId } from "../../src/crypto/ids";
import { IdentityKeys, PublicBundle } from "../../src/crypto/identity";
import { hkdfSha256, sha256 } from "../../src/crypto/primitives";
import { type Action, ChainError, type ChainErrorKind, type KeyResolver, RoomChain, type RoomKind, RoomState, Statement, decodeStatement } from "../../src/crypto/chain/index";
import { EpochKey } from "../../src/crypto/epoch";
import { RoomKeyBox, RoomKeyError, type RoomKeyErrorKind, openRoomKeyBox, roomKeyInfo } from "../../src/crypto/roomkey";
import { type Json, arr, flip, hex, loadVector, obj, str } from "./vectorfiles";

const isChain = (kind: ChainErrorKind) => (e: unknown) => e instanceof ChainError && e.kind === kind;
const isBox = (kind: RoomKeyErrorKind) => (e: unknown) => e instanceof RoomKeyError && e.kind === kind;

function stateJson(s: RoomState): unknown {
  const atEpoch: Record<string, string[]> = {};
  for (const e of s.epochList()) atEpoch[randomIdToHex(e)] = s.membersAtEpoch(e) ?? [];
  const cur = s.currentEpoch();
  return {
    members: s.memberList(),
    owners: s.ownerList(),
    encrypted: s.isEncrypted(),
    current_epoch: cur ? randomIdToHex(cur) : null,
    rotation_due: s.rotationDue(),
    members_at_epoch: atEpoch,
  };
}

async function people(users: Json[]): Promise<Map<UserId, IdentityKeys>> {
  const out = new Map<UserId, IdentityKeys>();
  for (const u of users) {
    const keys = await IdentityKeys.fromBytes(hex(u, "private_keys"));
    assert.equal(toHex(keys.identityPublic), str(u, "identity_public"));
    out.set(userId(str(u, "user_id")), keys);
  }
  return out;
}

const resolverOf =
  (table: Map<UserId, IdentityKeys>): KeyResolver =>
  (u) =>
    table.get(u)?.identityPublic;

// --- room_chain.json ---

test("room_chain.json: every statement decodes, hashes and re-signs byte for byte; the derived state matches", async () => {
  const v = loadVector("room_chain.json");
  const room = roomId(str(v, "room_id"));
  const table = await people(arr(v, "users"));
  const entries = arr(v, "statements");
  const stmts: Statement[] = [];
  for (const e of entries) {
    const bytes = hex(e, "statement");
    const s = Statement.decode(bytes);
    assert.equal(toHex(s.encode()), toHex(bytes));
    assert.equal(toHex(await s.hash()), str(e, "hash"));
    assert.equal(s.seq, BigInt(e["seq"] as number));
    assert.equal(s.actor, str(e, "actor"));
    const keys = table.get(s.actor);
    assert.ok(keys);
    const again = Statement.sign(s.roomId, s.seq, s.prev, s.action, s.actor, keys);
    assert.equal(toHex(again.encode()), toHex(bytes));
    stmts.push(s);
  }
  // Built from scratch with the public API, the chain is the same bytes.
  const [alice, bob, carol] = [userId("u.alice"), userId("u.bob"), userId("u.carol")];
  const ka = table.get(alice)!;
  const kb = table.get(bob)!;
  const e1 = (stmts[1]!.action as { epoch: Uint8Array }).epoch;
  const e2 = (stmts[5]!.action as { epoch: Uint8Array }).epoch;
  const built = [Statement.create(room, { kind: "PrivateChannel", members: [bob, alice], encrypted: true, historyShared: true }, alice, ka)];
  const steps: [Action, UserId, IdentityKeys][] = [
    [{ type: "NewEpoch", epoch: e1 }, alice, ka],
    [{ type: "Invite", user: carol }, alice, ka],
    [{ type: "AddOwner", user: bob }, alice, ka],
    [{ type: "Remove", user: carol }, bob, kb],
    [{ type: "NewEpoch", epoch: e2 }, bob, kb],
  ];
  for (const [action, actor, keys] of steps) built.push(await Statement.next(built[built.length - 1]!, action, actor, keys));
  assert.deepEqual(
    built.map((s) => toHex(s.encode())),
    entries.map((e) => str(e, "statement")),
  );

  const chain = await RoomChain.decodeAndVerify(
    room,
    entries.map((e) => hex(e, "statement")),
    resolverOf(table),
  );
  assert.equal(chain.length, 6);
  for (const e of entries) {
    const st = await chain.stateAt(BigInt(e["seq"] as number));
    assert.ok(st);
    assert.deepEqual(stateJson(st), obj(e, "state_after"));
  }
  assert.deepEqual(stateJson(chain.state), obj(entries[5]!, "state_after"));
  // Epoch holders (§5.6): carol, removed, still may hold e1 (invited while it was
  // current) but not e2, and is no longer a member.
  assert.ok(chain.state.mayHoldEpoch(e1, alice));
  assert.ok(chain.state.mayHoldEpoch(e1, carol));
  assert.ok(!chain.state.isMember(carol));
  assert.ok(!chain.state.mayHoldEpoch(e2, carol));
  assert.deepEqual(chain.state.membersAtEpoch(e1), [alice, bob, carol]);
});

test("room_chain.json: each refused statement fails with the listed error and leaves the chain unchanged", async () => {
  const v = loadVector("room_chain.json");
  const room = roomId(str(v, "room_id"));
  const table = await people(arr(v, "users"));
  const encoded = arr(v, "statements").map((e) => hex(e, "statement"));
  const chain = await RoomChain.decodeAndVerify(room, encoded, resolverOf(table));
  const before = JSON.stringify(chain.checkpoint());
  const refused = arr(v, "refused");
  assert.equal(refused.length, 3);
  for (const r of refused) {
    const s = Statement.decode(hex(r, "statement"));
    await assert.rejects(chain.append(s, resolverOf(table)), isChain(str(r, "error") as ChainErrorKind), str(r, "description"));
    assert.equal(JSON.stringify(chain.checkpoint()), before);
  }
  const skip = Statement.decode(hex(refused[2]!, "statement"));
  await assert.rejects(chain.append(skip, resolverOf(table)), (e: unknown) => e instanceof ChainError && e.expected === 6n && e.found === 5n);
});

function keyChangeStateJson(s: RoomState): unknown {
  const users = [...new Set(s.keyChangeList().map((k) => k.user))];
  const since: Record<string, Record<string, string[]>> = {};
  for (const e of s.epochList()) {
    const perUser: Record<string, string[]> = {};
    for (const u of users) perUser[u] = s.formerKeysSinceEpoch(u, e).map(toHex);
    since[randomIdToHex(e)] = perUser;
  }
  return {
    state: stateJson(s),
    key_changes: s.keyChangeList().map((k) => ({ seq: Number(k.seq), user_id: k.user, former: toHex(k.former) })),
    former_keys_since_epoch: since,
  };
}

test("room_chain.json key_change: a verifier that pinned only bob's new key checks his older statements under the declared key; refusals", async () => {
  const v = obj(loadVector("room_chain.json"), "key_change");
  const room = roomId(str(loadVector("room_chain.json"), "room_id"));
  const pinned = new Map(Object.entries(obj(v, "pinned")).map(([u, k]) => [u, fromHex(k as string)]));
  const keys: KeyResolver = (u) => pinned.get(u);
  const bobNew = await IdentityKeys.fromBytes(hex(obj(v, "bob_after_reset"), "private_keys"));
  const entries = arr(v, "statements");
  const stmts: Statement[] = [];
  for (const e of entries) {
    const bytes = hex(e, "statement");
    const s = Statement.decode(bytes);
    assert.equal(toHex(s.encode()), toHex(bytes));
    assert.equal(toHex(await s.hash()), str(e, "hash"));
    if (s.action.type === "KeyChange") {
      const again = Statement.sign(s.roomId, s.seq, s.prev, s.action, s.actor, bobNew);
      assert.equal(toHex(again.encode()), toHex(bytes));
    }
    stmts.push(s);
  }
  // Without the key change, bob's statement under his first key does not verify.
  await assert.rejects(RoomChain.verify(room, stmts.slice(0, 3), keys), isChain("BadSignature"));
  const chain = await RoomChain.verify(room, stmts, keys);
  for (const e of entries) {
    const st = await chain.stateAt(BigInt(e["seq"] as number));
    assert.ok(st);
    assert.deepEqual(keyChangeStateJson(st), obj(e, "state_after"));
  }
  // Verified in two parts, the key change in the second decides the first part's keys.
  const part = await RoomChain.verify(room, stmts.slice(0, 2), keys);
  await part.extend(stmts.slice(2), keys);
  assert.deepEqual(keyChangeStateJson(part.state), keyChangeStateJson(chain.state));
  const refused = arr(v, "refused");
  assert.equal(refused.length, 3);
  for (const r of refused) {
    const s = Statement.decode(hex(r, "statement"));
    await assert.rejects(chain.append(s, keys), isChain(str(r, "error") as ChainErrorKind), str(r, "description"));
  }
  const refusedChains = arr(v, "refused_chains");
  assert.equal(refusedChains.length, 2);
  for (const r of refusedChains) {
    const list = arr(r, "statements").map((h) => Statement.decode(fromHex(h as unknown as string)));
    const former = obj(r, "former_keys");
    const formerKeys = (u: UserId) => ((former[u] as string[] | undefined) ?? []).map(fromHex);
    await assert.rejects(RoomChain.verify(room, list, keys, { formerKeys }), isChain(str(r, "error") as ChainErrorKind), str(r, "description"));
  }
  // Reset again, not declared yet: pinned to the third key, both former ones kept.
  const acceptedChains = arr(v, "accepted_chains");
  assert.equal(acceptedChains.length, 1);
  for (const a of acceptedChains) {
    const pinnedHere = obj(a, "pinned");
    const former = obj(a, "former_keys");
    const resolve: KeyResolver = (u) => (pinnedHere[u] ? fromHex(pinnedHere[u] as string) : keys(u));
    const formerKeys = (u: UserId) => ((former[u] as string[] | undefined) ?? []).map(fromHex);
    const accepted = await RoomChain.verify(room, stmts, resolve, { formerKeys });
    assert.equal(toHex(await accepted.head()!.hash()), str(a, "head_hash"), str(a, "description"));
  }
  // A key change under the pending key that declares the pinned one is taken alone.
  const oldBob = (stmts[3]!.action as { former: Uint8Array }).former;
  const stillOld: KeyResolver = (u) => (u === "u.bob" ? oldBob : pinned.get(u));
  const pendingKey = (u: UserId) => (u === "u.bob" ? bobNew.identityPublic : undefined);
  await assert.rejects(RoomChain.verify(room, stmts.slice(0, 4), stillOld), isChain("BadSignature"));
  const withPending = await RoomChain.verify(room, stmts.slice(0, 4), stillOld, { pendingKey });
  assert.equal(withPending.length, 4);
  await assert.rejects(RoomChain.verify(room, stmts, stillOld, { pendingKey }), isChain("BadSignature"));
});

test("room_chain.json: link checks, unknown signers, decode errors and checkpoints", async () => {
  const v = loadVector("room_chain.json");
  const room = roomId(str(v, "room_id"));
  const table = await people(arr(v, "users"));
  const encoded = arr(v, "statements").map((e) => hex(e, "statement"));
  const stmts = encoded.map((b) => Statement.decode(b));
  const keys = resolverOf(table);

  await assert.rejects(RoomChain.verify(room, [], keys), isChain("EmptyChain"));
  await assert.rejects(RoomChain.verify(roomId("r.other"), stmts, keys), isChain("WrongRoom"));
  await assert.rejects(RoomChain.verify(room, stmts.slice(1), keys), isChain("BadSequence"));
  await assert.rejects(RoomChain.verify(room, [stmts[0]!, stmts[2]!], keys), isChain("BadSequence"));
  await assert.rejects(RoomChain.verify(room, stmts, (u) => (u === "u.bob" ? undefined : keys(u))), isChain("UnknownSigner"));
  await assert.rejects(RoomChain.verify(room, stmts, (u) => table.get(userId("u.carol"))!.identityPublic ?? keys(u)), isChain("BadSignature"));
  // A statement whose prev is changed: BadPrevHash (checked before the signature).
  const forgedPrev = flip(encoded[1]!, 1 + 1 + 9 + 8);
  await assert.rejects(RoomChain.decodeAndVerify(room, [encoded[0]!, forgedPrev], keys), isChain("BadPrevHash"));
  // A flipped byte in a signature: BadSignature.
  const forgedSig = flip(encoded[1]!, encoded[1]!.length - 1);
  await assert.rejects(RoomChain.decodeAndVerify(room, [encoded[0]!, forgedSig], keys), isChain("BadSignature"));
  // Malformed bytes: Decode, carrying the decoding error.
  await assert.rejects(RoomChain.decodeAndVerify(room, [encoded[0]!.subarray(0, 40)], keys), (e: unknown) => e instanceof ChainError && e.kind === "Decode" && e.decode?.kind === "Truncated");
  await assert.rejects(RoomChain.decodeAndVerify(room, [concat(encoded[0]!, Uint8Array.of(0))], keys), (e: unknown) => e instanceof ChainError && e.decode?.kind === "TrailingBytes");
  const badVersion = Uint8Array.from(encoded[0]!);
  badVersion[0] = 2;
  assert.throws(() => decodeStatement(badVersion), (e: unknown) => e instanceof ChainError && e.decode?.kind === "UnsupportedVersion");
  const badTag = Uint8Array.from(encoded[2]!);
  badTag[1 + 1 + 9 + 8 + 32] = 10;
  assert.throws(() => decodeStatement(badTag), (e: unknown) => e instanceof ChainError && e.decode?.kind === "InvalidField");

  // A first statement that does not create: MissingCreate. A second Create: CreateNotFirst.
  const ka = table.get(userId("u.alice"))!;
  const notCreate = Statement.sign(room, 0n, new Uint8Array(32), { type: "Leave" }, userId("u.alice"), ka);
  await assert.rejects(RoomChain.verify(room, [notCreate], keys), isChain("MissingCreate"));
  const chain = await RoomChain.verify(room, stmts.slice(0, 3), keys);
  const second = await Statement.next(stmts[2]!, { type: "Create", kind: "PrivateChannel", members: [userId("u.alice")], encrypted: true, historyShared: true }, userId("u.alice"), ka);
  await assert.rejects(chain.append(second, keys), isChain("CreateNotFirst"));

  // Resuming from a checkpoint verifies only what follows it, and gives the same state.
  const cp = JSON.parse(JSON.stringify(chain.checkpoint())) as ReturnType<RoomChain["checkpoint"]>;
  const resumed = await RoomChain.resume(cp, stmts, keys);
  assert.equal(resumed.statements().length, 3);
  const full = await RoomChain.verify(room, stmts, keys);
  assert.deepEqual(resumed.checkpoint(), full.checkpoint());
  // A served chain that no longer holds the checkpoint's head is verified from scratch.
  const other = Statement.create(room, { kind: "PrivateChannel", members: [userId("u.alice")], encrypted: false, historyShared: true }, userId("u.alice"), ka);
  const rewritten = await RoomChain.resume(cp, [other], keys);
  assert.equal(rewritten.length, 1);
  assert.ok(!rewritten.state.isEncrypted());
});

// --- room rules (§5.3) ---

interface World {
  room: RoomId;
  keys: Map<UserId, IdentityKeys>;
  resolve: KeyResolver;
}

async function world(): Promise<World> {
  const keys = new Map<UserId, IdentityKeys>();
  let n = 1;
  for (const name of ["a", "b", "c", "d"]) {
    keys.set(userId(name), await IdentityKeys.fromSecrets(new Uint8Array(32).fill(n), new Uint8Array(32).fill(n + 100)));
    n++;
  }
  return { room: roomId("room-1"), keys, resolve: (u) => keys.get(u)?.identityPublic };
}

async function start(w: World, kind: RoomKind, members: string[], opts: { encrypted?: boolean; historyShared?: boolean } = {}): Promise<RoomChain> {
  const creator = userId(members[0]!);
  const first = Statement.create(w.room, { kind, members: members.map(userId), encrypted: opts.encrypted ?? true, historyShared: opts.historyShared ?? true }, creator, w.keys.get(creator)!);
  return RoomChain.verify(w.room, [first], w.resolve);
}

async function step(w: World, chain: RoomChain, actor: string, action: Action): Promise<void> {
  const stmt = Statement.sign(w.room, chain.state.headSeq() + 1n, chain.state.headHashBytes(), action, userId(actor), w.keys.get(userId(actor))!);
  await chain.append(stmt, w.resolve);
}

const epochOf = (n: number) => new Uint8Array(16).fill(n);

test("room rules: every violation has its own error, in the documented order", async () => {
  const w = await world();
  const [a, b, c, d] = ["a", "b", "c", "d"].map(userId) as [UserId, UserId, UserId, UserId];
  const first = (kind: RoomKind, members: UserId[], actor: UserId) => Statement.create(w.room, { kind, members, encrypted: true, historyShared: true }, actor, w.keys.get(actor)!);
  await assert.rejects(RoomChain.verify(w.room, [first("PrivateChannel", [b, c], a)], w.resolve), isChain("CreatorNotAMember"));
  await assert.rejects(RoomChain.verify(w.room, [first("DirectMessage", [a, b, c], a)], w.resolve), isChain("DirectMessageNeedsTwo"));

  const dm = await start(w, "DirectMessage", ["a", "b"]);
  await assert.rejects(step(w, dm, "a", { type: "Invite", user: c }), isChain("NotAllowedInDirectMessage"));
  await assert.rejects(step(w, dm, "b", { type: "Leave" }), isChain("NotAllowedInDirectMessage"));
  await assert.rejects(step(w, dm, "c", { type: "Leave" }), isChain("NotAMember"));
  await step(w, dm, "b", { type: "SetEncryption", on: false });
  await assert.rejects(step(w, dm, "a", { type: "NewEpoch", epoch: epochOf(1) }), isChain("EncryptionOff"));
  await assert.rejects(step(w, dm, "a", { type: "SetEncryption", on: false }), isChain("Unchanged"));

  const ch = await start(w, "PrivateChannel", ["a", "b"]);
  await assert.rejects(step(w, ch, "b", { type: "Invite", user: c }), isChain("NotAnOwner"));
  await assert.rejects(step(w, ch, "a", { type: "Invite", user: b }), isChain("AlreadyMember"));
  await assert.rejects(step(w, ch, "a", { type: "Remove", user: a }), isChain("RemoveSelf"));
  await assert.rejects(step(w, ch, "a", { type: "Remove", user: d }), isChain("SubjectNotAMember"));
  await assert.rejects(step(w, ch, "a", { type: "AddOwner", user: d }), isChain("SubjectNotAMember"));
  await assert.rejects(step(w, ch, "a", { type: "AddOwner", user: a }), isChain("AlreadyOwner"));
  await assert.rejects(step(w, ch, "a", { type: "RemoveOwner", user: b }), isChain("SubjectNotAnOwner"));
  await assert.rejects(step(w, ch, "a", { type: "RemoveOwner", user: a }), isChain("LastOwner"));
  await assert.rejects(step(w, ch, "a", { type: "Leave" }), isChain("LastOwner"));
  await assert.rejects(step(w, ch, "b", { type: "SetEncryption", on: false }), isChain("NotAnOwner"));
  await step(w, ch, "a", { type: "NewEpoch", epoch: epochOf(1) });
  await assert.rejects(step(w, ch, "b", { type: "NewEpoch", epoch: epochOf(1) }), isChain("DuplicateEpoch"));
  await step(w, ch, "b", { type: "Leave" });
  assert.ok(ch.state.rotationDue());
  assert.deepEqual(ch.state.memberList(), [a]);

  // Group DM: any member invites and toggles encryption; owners remove.
  const g = await start(w, "GroupDirectMessage", ["a", "b", "c"]);
  await step(w, g, "b", { type: "Invite", user: d });
  await assert.rejects(step(w, g, "b", { type: "Remove", user: d }), isChain("NotAnOwner"));
  await step(w, g, "c", { type: "SetEncryption", on: false });
  assert.ok(!g.state.isEncrypted());
});

test("history sharing decides whether newcomers may hold old epochs; rotation is due after changes", async () => {
  const w = await world();
  const [c] = [userId("c")];
  for (const shared of [true, false]) {
    const chain = await start(w, "PrivateChannel", ["a", "b"], { historyShared: shared });
    assert.ok(chain.state.rotationDue());
    await step(w, chain, "a", { type: "NewEpoch", epoch: epochOf(1) });
    assert.ok(!chain.state.rotationDue());
    await step(w, chain, "a", { type: "Invite", user: c });
    assert.equal(chain.state.mayHoldEpoch(epochOf(1), c), shared);
    assert.equal(chain.state.rotationDue(), !shared);
    assert.ok(!chain.state.mayHoldEpoch(epochOf(9), c));
    assert.equal(chain.state.membersAtEpoch(epochOf(9)), undefined);
  }
});

test("former keys verify statements made before an accepted key change, until the actor uses the new key", async () => {
  const w = await world();
  const a = userId("a");
  const b = userId("b");
  const chain = await start(w, "PrivateChannel", ["a", "b"]);
  const old = w.keys.get(b)!;
  await step(w, chain, "a", { type: "AddOwner", user: b });
  await step(w, chain, "b", { type: "NewEpoch", epoch: epochOf(1) });
  const stmts = chain.statements();
  const renewed = await IdentityKeys.fromSecrets(new Uint8Array(32).fill(42), new Uint8Array(32).fill(43));
  const pinned: KeyResolver = (u) => (u === b ? renewed.identityPublic : w.resolve(u));
  await assert.rejects(RoomChain.verify(w.room, stmts, pinned), isChain("BadSignature"));
  const formerKeys = (u: UserId) => (u === b ? [old.identityPublic] : []);
  const again = await RoomChain.verify(w.room, stmts, pinned, { formerKeys });
  // b now signs under the new key; afterwards its old key no longer counts.
  const next = Statement.sign(w.room, 3n, again.state.headHashBytes(), { type: "NewEpoch", epoch: epochOf(2) }, b, renewed);
  await again.append(next, pinned, { formerKeys });
  const stale = Statement.sign(w.room, 4n, await next.hash(), { type: "NewEpoch", epoch: epochOf(3) }, b, old);
  await assert.rejects(again.append(stale, pinned, { formerKeys }), isChain("BadSignature"));
  // propose signs on the head and checks the rules without changing the chain.
  const proposed = await again.propose({ type: "Invite", user: userId("d") }, a, w.keys.get(a)!);
  assert.equal(proposed.seq, 4n);
  assert.equal(again.length, 4);
  await assert.rejects(again.propose({ type: "Invite", user: b }, a, w.keys.get(a)!), isChain("AlreadyMember"));
});

// --- room_key_box.json ---

/** The vector generator's HPKE ephemeral key: DeriveKeyPair(ikm) (RFC 9180 §7.1.3) of
 *  the first 32 bytes of ChaCha20 keyed with SHA-256 of the generator's label. */
async function vectorEphemeral(label: string): Promise<Uint8Array> {
  const seed = await sha256(utf8(label));
  const ikm = chacha20(seed, new Uint8Array(12), new Uint8Array(32));
  const suite = concat(utf8("KEM"), Uint8Array.of(0x00, 0x20));
  const labeledIkm = concat(utf8("HPKE-v1"), suite, utf8("dkp_prk"), ikm);
  const labeledInfo = concat(Uint8Array.of(0, 32), utf8("HPKE-v1"), suite, utf8("sk"));
  return hkdfSha256(labeledIkm, new Uint8Array(0), labeledInfo, 32);
}

async function boxWorld() {
  const v = loadVector("room_key_box.json");
  const room = roomId(str(v, "room_id"));
  const dist = obj(v, "distributor");
  const rcpt = obj(v, "recipient");
  const distId = userId(str(dist, "user_id"));
  const rcptId = userId(str(rcpt, "user_id"));
  const distKeys = await IdentityKeys.fromBytes(hex(dist, "private_keys"));
  const rcptKeys = await IdentityKeys.fromBytes(hex(rcpt, "private_keys"));
  const bundle = PublicBundle.decode(hex(rcpt, "bundle"));
  const pinned: KeyResolver = (u) => (u === distId ? hex(dist, "identity_public") : u === rcptId ? bundle.identityKey : undefined);
  const chain = await RoomChain.decodeAndVerify(
    room,
    (v["chain"] as string[]).map(fromHex),
    pinned,
  );
  const epochKey = new EpochKey(hex(v, "epoch_id"), hex(v, "epoch_key"));
  return { v, room, distId, rcptId, distKeys, rcptKeys, bundle, pinned, chain, epochKey };
}

test("room_key_box.json: info, HPKE, signature and the whole box are reproduced and open", async () => {
  const { v, room, distId, rcptId, distKeys, rcptKeys, bundle, pinned, chain, epochKey } = await boxWorld();
  assert.equal(toHex(roomKeyInfo(room, epochKey.epochId, rcptId, distId)), str(v, "info"));

  const bytes = hex(v, "box");
  const box = RoomKeyBox.decode(bytes);
  assert.equal(toHex(box.encode()), str(v, "box"));
  assert.equal(toHex(box.enc), str(v, "enc"));
  assert.equal(toHex(box.sealedKey), str(v, "ciphertext"));
  assert.equal(toHex(box.signature), str(v, "signature"));
  assert.ok(box.verifySignature(distKeys.identityPublic));
  const opened = await openRoomKeyBox(bytes, rcptId, rcptKeys, chain.state, pinned);
  assert.equal(toHex(opened.keyBytes()), str(v, "epoch_key"));
  assert.equal(opened.epochHex, str(v, "epoch_id"));

  // Sealing again with the generator's ephemeral key gives the same bytes.
  const eph = await vectorEphemeral("sotto vectors: room key box");
  const again = await RoomKeyBox.seal(epochKey, room, distKeys, distId, bundle, { ephemeralSecret: eph });
  assert.equal(toHex(again.encode()), str(v, "box"));
  const viaMembers = await RoomKeyBox.sealForMembers(epochKey, chain.state, distKeys, distId, [bundle], { pinned, ephemeral: () => eph });
  assert.equal(toHex(viaMembers[0]!.encode()), str(v, "box"));

  // A fresh seal (random ephemeral) and a self-copy also open.
  const fresh = await RoomKeyBox.seal(epochKey, room, distKeys, distId, bundle);
  assert.notEqual(toHex(fresh.enc), str(v, "enc"));
  assert.equal(toHex((await fresh.open(rcptId, rcptKeys, chain.state, pinned)).keyBytes()), str(v, "epoch_key"));
  const self = await RoomKeyBox.seal(epochKey, room, distKeys, distId, distKeys.bundle(distId));
  assert.ok(self.isSelfCopy());
  assert.equal(toHex((await self.open(distId, distKeys, chain.state, pinned)).keyBytes()), str(v, "epoch_key"));
});

test("room-key box: each check of §6.3 refuses with its own error, in order", async () => {
  const { v, room, distId, rcptId, distKeys, rcptKeys, bundle, pinned, chain, epochKey } = await boxWorld();
  const bytes = hex(v, "box");
  const state = chain.state;
  // 1. decode
  await assert.rejects(openRoomKeyBox(bytes.subarray(0, bytes.length - 1), rcptId, rcptKeys, state, pinned), (e: unknown) => e instanceof RoomKeyError && e.kind === "Decode" && e.decode?.kind === "Truncated");
  await assert.rejects(openRoomKeyBox(concat(bytes, Uint8Array.of(0)), rcptId, rcptKeys, state, pinned), (e: unknown) => e instanceof RoomKeyError && e.decode?.kind === "TrailingBytes");
  // 2. not for me
  await assert.rejects(openRoomKeyBox(bytes, distId, distKeys, state, pinned), isBox("NotForMe"));
  // 3. wrong room: the same box checked against another room's chain.
  const otherRoom = roomId("r.other");
  const otherFirst = Statement.create(otherRoom, { kind: "PrivateChannel", members: [distId, rcptId], encrypted: true, historyShared: true }, distId, distKeys);
  const otherChain = await RoomChain.verify(otherRoom, [otherFirst, await Statement.next(otherFirst, { type: "NewEpoch", epoch: epochKey.epochId }, distId, distKeys)], pinned);
  await assert.rejects(openRoomKeyBox(bytes, rcptId, rcptKeys, otherChain.state, pinned), isBox("WrongRoom"));
  // 4. unknown epoch: a box for an epoch the chain never declared.
  const undeclared = EpochKey.generate();
  const stray = await RoomKeyBox.seal(undeclared, room, distKeys, distId, bundle);
  await assert.rejects(stray.open(rcptId, rcptKeys, state, pinned), isBox("UnknownEpoch"));
  await assert.rejects(RoomKeyBox.sealForMembers(undeclared, state, distKeys, distId, [bundle]), isBox("UnknownEpoch"));
  // 5./6. authorization, on a chain where the distributor was removed and the recipient is not a member.
  const carolKeys = await IdentityKeys.fromSecrets(new Uint8Array(32).fill(7), new Uint8Array(32).fill(8));
  const carol = userId("u.carol");
  const resolve: KeyResolver = (u) => (u === carol ? carolKeys.identityPublic : pinned(u));
  const stmts = chain.statements();
  const s2 = await Statement.next(stmts[1]!, { type: "Invite", user: carol }, distId, distKeys);
  const s3 = await Statement.next(s2, { type: "Remove", user: carol }, distId, distKeys);
  const removed = await RoomChain.verify(room, [...stmts, s2, s3], resolve);
  const fromCarol = await RoomKeyBox.seal(epochKey, room, carolKeys, carol, bundle);
  await assert.rejects(fromCarol.open(rcptId, rcptKeys, removed.state, resolve), isBox("DistributorNotAuthorized"));
  // ...but carol's own self-copy of an epoch it held still opens for carol.
  const carolSelf = await RoomKeyBox.seal(epochKey, room, carolKeys, carol, carolKeys.bundle(carol));
  assert.equal(toHex((await carolSelf.open(carol, carolKeys, removed.state, resolve)).keyBytes()), toHex(epochKey.keyBytes()));
  await assert.rejects(RoomKeyBox.sealForMembers(epochKey, removed.state, carolKeys, carol, [bundle]), isBox("DistributorNotAuthorized"));
  // With history not shared, a newcomer may not hold the old epoch.
  const closedFirst = Statement.create(room, { kind: "PrivateChannel", members: [distId, rcptId], encrypted: true, historyShared: false }, distId, distKeys);
  const c1 = await Statement.next(closedFirst, { type: "NewEpoch", epoch: epochKey.epochId }, distId, distKeys);
  const c2 = await Statement.next(c1, { type: "Invite", user: carol }, distId, distKeys);
  const closed = await RoomChain.verify(room, [closedFirst, c1, c2], resolve);
  const toCarol = await RoomKeyBox.seal(epochKey, room, distKeys, distId, carolKeys.bundle(carol));
  await assert.rejects(toCarol.open(carol, carolKeys, closed.state, resolve), isBox("RecipientNotAuthorized"));
  await assert.rejects(RoomKeyBox.sealForMembers(epochKey, closed.state, distKeys, distId, [carolKeys.bundle(carol)]), isBox("RecipientNotAuthorized"));
  // A recipient bundle whose identity key is not the pinned one is refused before sealing.
  await assert.rejects(RoomKeyBox.sealForMembers(epochKey, state, distKeys, distId, [bundle], { pinned: (u) => (u === rcptId ? carolKeys.identityPublic : pinned(u)) }), isBox("RecipientNotAuthorized"));
  // 7. no pinned key for the distributor
  await assert.rejects(openRoomKeyBox(bytes, rcptId, rcptKeys, state, (u) => (u === distId ? undefined : pinned(u))), isBox("UnknownDistributor"));
  // 8. bad signature: flipped signature byte, or another key pinned.
  const flipped = flip(bytes, bytes.length - 1);
  await assert.rejects(openRoomKeyBox(flipped, rcptId, rcptKeys, state, pinned), isBox("BadSignature"));
  await assert.rejects(openRoomKeyBox(bytes, rcptId, rcptKeys, state, (u) => (u === distId ? carolKeys.identityPublic : pinned(u))), isBox("BadSignature"));
  // ...unless the signing key is a former key of the distributor.
  const viaFormer = await openRoomKeyBox(bytes, rcptId, rcptKeys, state, (u) => (u === distId ? carolKeys.identityPublic : pinned(u)), { formerKeys: () => [distKeys.identityPublic] });
  assert.equal(toHex(viaFormer.keyBytes()), str(v, "epoch_key"));
  // 9. decrypt failure: a correctly signed box whose ciphertext is altered, or opened with other keys.
  const box = RoomKeyBox.decode(bytes);
  const alteredCt = flip(box.sealedKey, 0);
  const body = new Writer().raw(box.header()).raw(box.enc).raw(alteredCt).finish();
  const resigned = concat(body, distKeys.sign("sotto/v1/room-key", body));
  await assert.rejects(openRoomKeyBox(resigned, rcptId, rcptKeys, state, pinned), isBox("DecryptFailed"));
  await assert.rejects(openRoomKeyBox(bytes, rcptId, carolKeys, state, pinned), isBox("DecryptFailed"));
  // A low-order agreement key cannot be sealed to.
  await assert.rejects(RoomKeyBox.seal(epochKey, room, distKeys, distId, { user: rcptId, identityKey: bundle.identityKey, agreementKey: new Uint8Array(32) }), isBox("InvalidRecipientKey"));
});
