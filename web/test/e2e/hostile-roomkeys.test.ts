// The server lies about room keys to Bob, whose browser talks through a hostile server,
// in an encrypted channel with Ana (honest) and Cyd, then in a direct message with Ana:
// it lists a ghost member the signed chain never invited; forges room-key requests for
// the ghost and for someone outside the room; serves and pushes room-key boxes signed by
// itself, by Cyd after her removal, or with a garbage signature, and Bob's old box as the
// key of the newer epoch; moves Ana's envelope to the newer epoch; injects Cyd's message
// under the old epoch after the rotation; and hands Bob his room key as a message and as
// an off-the-record frame. Bob's client seals no key to anyone the chain does not vouch
// for, installs no key but from a valid box, and shows an error in place of each lie.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Page } from "playwright-core";
import { KeyBackup } from "../../src/crypto/backup";
import { textBody } from "../../src/crypto/body";
import { RoomChain, decodeStatement } from "../../src/crypto/chain";
import { fromBase64, toBase64, toHex } from "../../src/crypto/encoding";
import { encodeHeader, newHeader, peekEnvelope, sealEnvelope } from "../../src/crypto/envelope";
import { IdentityKeys, PublicBundle } from "../../src/crypto/identity";
import { type UserId, randomIdFromHex, randomIdToHex, roomId as toRoomId, userId as toUserId } from "../../src/crypto/ids";
import { EncryptionPassword } from "../../src/crypto/password";
import { RoomKeyBox } from "../../src/crypto/roomkey";
import { EpochKey } from "../../src/crypto/epoch";
import { shot } from "./harness";
import { createDirectMessage, createEncryptedChannel, encryptedPerson, inWorkspace, message, messages, openRoom, say, unlock } from "./flows";
import { api, hostilePerson, pause, roomIdOf, userIdOf } from "./hostile";

type Msg = { id: string; room_id: string; seq: number; version_seq: number; sender_id: string; text: string | null; ciphertext: string | null; created_at: number };
type KeyItem = { epoch_id: string; distributor_id: string; box: string };

const WAITING = "Waiting for encryption key";
const newId = () => randomBytes(16).toString("hex");
const created = (m: Msg) => ({ type: "message_created", room_id: m.room_id, seq: m.seq, message: m });

/** Articles of the message log that show `note` in place of their text. */
function refused(page: Page, note: string | RegExp) {
  return messages(page)
    .getByRole("article")
    .filter({ has: page.getByRole("note").filter({ hasText: note }) });
}

/** A user's published bundle, as the server hands it out. */
async function bundleOf(page: Page, user: string): Promise<PublicBundle> {
  const { bundles } = await api(page, "GET", `/api/v1/keys?user_ids=${user}`);
  return PublicBundle.decode(fromBase64(bundles[0].bundle));
}

/** The room's chain as served to `page`, verified here with the published keys. */
async function chainOf(page: Page, room: string): Promise<RoomChain> {
  const { statements } = await api(page, "GET", `/api/v1/rooms/${room}/statements`);
  const decoded = (statements as string[]).map((s) => decodeStatement(fromBase64(s)));
  const keys = new Map<string, Uint8Array>();
  for (const s of decoded) if (!keys.has(s.actor)) keys.set(s.actor, (await bundleOf(page, s.actor)).identityKey);
  return RoomChain.verify(toRoomId(room), decoded, (u: UserId) => keys.get(u));
}

const epochOf = (box: string) => toHex(RoomKeyBox.decode(fromBase64(box)).epochId);

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await pause(100);
  }
}

test("hostile server: ghost members, forged key requests, forged or misplaced room-key boxes, and a removed member's old-epoch message", async (t) => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser }) => {
    const ana = await encryptedPerson(browser, server, "ana");
    const bob = await hostilePerson(browser, server, "bob");
    const cyd = await encryptedPerson(browser, server, "cyd");
    // Gus (the ghost) and Otto (outside the room) only need published keys.
    for (const name of ["gus", "otto"]) await (await encryptedPerson(browser, server, name)).context.close();

    await createEncryptedChannel(ana.page, "plans", "bob, cyd");
    const room = roomIdOf(ana.page);
    const anaId = await userIdOf(ana.page, "ana");
    const bobId = await userIdOf(ana.page, "bob");
    const cydId = await userIdOf(ana.page, "cyd");
    const gusId = await userIdOf(ana.page, "gus");
    const ottoId = await userIdOf(ana.page, "otto");
    const oldText = server.typed("the old epoch: budget is 40k");
    await say(ana.page, oldText);
    await openRoom(bob.page, "plans");
    await message(bob.page, oldText).waitFor();
    await openRoom(cyd.page, "plans");
    await message(cyd.page, oldText).waitFor();
    const oldEpoch = toHex(peekEnvelope(fromBase64((await api(bob.page, "GET", `/api/v1/rooms/${room}/messages?limit=50`)).messages.at(-1).ciphertext)).epochId);

    // What a server that kept Cyd's box and her backup can have: her keys (opened here
    // with her password, as she could) and the old epoch's key.
    const cydBundle = await bundleOf(cyd.page, cydId);
    const cydBackup = KeyBackup.decode(fromBase64((await api(cyd.page, "GET", "/api/v1/me/keys/backup")).backup));
    const cydKeys = (await cydBackup.open(EncryptionPassword.fromUser(cyd.password), toUserId(cydId), cydBundle)).keys;
    const cydBox = ((await api(cyd.page, "GET", `/api/v1/rooms/${room}/keys`)).keys as KeyItem[]).map((k) => RoomKeyBox.decode(fromBase64(k.box))).find((b) => b.recipient === cydId && toHex(b.epochId) === oldEpoch)!;
    const oldKey = await cydBox.open(toUserId(cydId), cydKeys, (await chainOf(cyd.page, room)).state, (u: UserId) => (u === cydId ? cydKeys.identityPublic : undefined));
    // Bob's own box of the old epoch, as the server stores it.
    const bobOldBox = ((await api(bob.page, "GET", `/api/v1/rooms/${room}/keys`)).keys as KeyItem[]).find((k) => epochOf(k.box) === oldEpoch)!;

    const keyPath = new RegExp(`^/api/v1/rooms/${room}/keys$`);
    const keyPosts = () => bob.evil.sent("POST", keyPath);
    const boxesIn = (posts: { body: { boxes: string[] } }[]) => posts.flatMap((p) => p.body.boxes.map((b) => RoomKeyBox.decode(fromBase64(b))));
    const membersOf = async () => (await api(bob.page, "GET", `/api/v1/rooms/${room}/members`)).members as { user_id: string; username: string }[];
    const ghost = { ...(await membersOf()).find((m) => m.user_id === cydId)!, user_id: gusId, username: "gus", owner: false };

    await t.test("row 2: a ghost member the chain never invited is not verified by the room and gets no room key", async () => {
      bob.evil.rewriteJson("GET", new RegExp(`^/api/v1/rooms/${room}/members$`), (json) => ({ ...json, members: [...json.members, ghost] }));
      // The server also says the ghost (and Ana, who is owed nothing but gets a valid box) lack the key.
      const lacking = bob.evil.rewriteJson("GET", keyPath, (json) => ({ ...json, lacking: [gusId, anaId] }));
      const before = keyPosts().length;
      await bob.page.reload();
      await unlock(bob.page, bob.password);
      await message(bob.page, oldText).waitFor();
      // Unlocking answers what the server says members lack: Ana gets her box, the ghost none.
      await waitUntil(() => boxesIn(keyPosts().slice(before)).some((b) => b.recipient === anaId), "the box owed to Ana is sent");
      await bob.page.getByRole("button", { name: "Members", exact: true }).click();
      const list = bob.page.getByRole("complementary", { name: "Members" }).getByRole("list", { name: "Room members" });
      const gusItem = list.getByRole("listitem").filter({ hasText: "@gus" });
      await gusItem.getByText("Not verified by the room").waitFor();
      assert.equal(await list.getByRole("listitem").filter({ hasText: "@ana" }).getByText("Not verified by the room").count(), 0, "Ana is vouched for");
      await shot(bob.page, "hostile-60-ghost-member");
      // Bob writes, and the server asks again on the ghost's behalf: still nothing for them.
      await say(bob.page, server.typed("bob writes with a ghost listed"));
      bob.evil.inject({ type: "room_key_request", room_id: room, epoch_id: oldEpoch, user_ids: [gusId] });
      await pause(2_000);
      assert.deepEqual(boxesIn(keyPosts()).filter((b) => b.recipient === gusId), [], "no room-key box was ever sealed to the ghost");
      lacking();
    });

    await t.test("row 5: a forged room-key request for the ghost or an outsider gets no box", async () => {
      const before = keyPosts().length;
      bob.evil.inject({ type: "room_key_request", room_id: room, epoch_id: oldEpoch, user_ids: [gusId, ottoId] });
      await pause(3_000);
      assert.equal(keyPosts().length, before, "nothing was sealed for the forged request");
      // An honest request (Ana's) is answered: the forged one was handled, not ignored.
      bob.evil.inject({ type: "room_key_request", room_id: room, epoch_id: oldEpoch, user_ids: [anaId] });
      await waitUntil(() => keyPosts().length > before, "the honest request is answered");
      await pause(1_000);
      const sent = boxesIn(keyPosts().slice(before));
      assert.deepEqual([...new Set(sent.map((b) => b.recipient))], [anaId]);
      assert.equal(boxesIn(keyPosts()).filter((b) => b.recipient === gusId || b.recipient === ottoId).length, 0);
    });

    // Ana removes Cyd and writes under a new epoch. The server keeps Bob's box of the new
    // epoch to itself (from his REST answers and his socket) and serves forged ones instead.
    let forged: KeyItem[] = [];
    let withhold = true;
    bob.evil.rewriteJson("GET", keyPath, (json) => ({
      ...json,
      keys: [...(withhold ? json.keys.filter((k: KeyItem) => epochOf(k.box) === oldEpoch) : json.keys), ...forged],
    }));
    bob.evil.rewriteFrames((f) => (withhold && f.type === "room_key" && f.room_id === room ? null : f));
    await ana.page.getByRole("button", { name: "Members", exact: true }).click();
    const anaPanel = ana.page.getByRole("complementary", { name: "Members" });
    await anaPanel.getByRole("button", { name: "Remove cyd" }).click();
    await anaPanel.getByRole("list", { name: "Room members" }).getByText("@cyd").waitFor({ state: "detached" });
    const newText = server.typed("the new epoch: cyd must not read this");
    await say(ana.page, newText);
    const history = async (): Promise<Msg[]> => (await api(bob.page, "GET", `/api/v1/rooms/${room}/messages?limit=50`)).messages;
    const newRecord = (await history()).at(-1)!;
    const newEpoch = toHex(peekEnvelope(fromBase64(newRecord.ciphertext!)).epochId);
    assert.notEqual(newEpoch, oldEpoch, "removing Cyd started a new epoch");
    const waiting = refused(bob.page, WAITING);
    await waiting.first().waitFor();

    const bobBundle = await bundleOf(bob.page, bobId);
    const planted = new EpochKey(randomIdFromHex(newEpoch, "EpochId"), randomBytes(32));
    const attacker = await IdentityKeys.generate();
    const serverSigned = await RoomKeyBox.seal(planted, toRoomId(room), attacker, toUserId(anaId), bobBundle);
    const byExMember = await RoomKeyBox.seal(planted, toRoomId(room), cydKeys, toUserId(cydId), bobBundle);
    const garbage = serverSigned.encode();
    garbage.fill(0x5a, garbage.length - 64);
    const item = (box: Uint8Array, distributor: string): KeyItem => ({ epoch_id: newEpoch, distributor_id: distributor, box: toBase64(box) });

    /** Serves `items` to Bob and pushes each on his socket; the new epoch's message stays waiting. */
    const refusedBoxes = async (items: KeyItem[], shotName?: string) => {
      forged = items;
      await bob.page.reload();
      await unlock(bob.page, bob.password);
      await message(bob.page, oldText).waitFor();
      await waiting.first().waitFor();
      for (const it of items) {
        const asked = bob.evil.sent("GET", keyPath).length;
        bob.evil.inject({ type: "room_key", room_id: room, ...it });
        await waitUntil(() => bob.evil.sent("GET", keyPath).length > asked, "Bob's client looks at the pushed box");
        await pause(1_000);
        await waiting.first().waitFor();
      }
      assert.equal(await messages(bob.page).getByText(newText).count(), 0, "the new epoch's message is not shown");
      assert.equal(await refused(bob.page, /damaged/).count(), 0, "no key was installed (a planted key would make the message unreadable instead)");
      assert.equal(boxesIn(keyPosts()).filter((b) => toHex(b.epochId) === newEpoch).length, 0, "no copy of a new-epoch key was kept");
      if (shotName) await shot(bob.page, shotName);
      forged = [];
    };

    await t.test("row 3: a room-key box signed by the server, by an ex-member, or with a garbage signature is not used", async () => {
      await refusedBoxes([item(serverSigned.encode(), anaId)], "hostile-61-server-signed-box");
      await refusedBoxes([item(byExMember.encode(), cydId)]);
      await refusedBoxes([item(garbage, anaId)]);
    });

    await t.test("row 9: Bob's old box served as the key of the newer epoch leaves it waiting", async () => {
      await refusedBoxes([{ ...bobOldBox, epoch_id: newEpoch }]);
      // The old epoch still reads: the old box is taken for what its signed header says.
      await message(bob.page, oldText).waitFor();
    });

    await t.test("the genuine box is taken: the new epoch's message reads", async () => {
      withhold = false;
      bob.evil.inject({ type: "room_key", room_id: room, epoch_id: newEpoch, distributor_id: anaId, box: "" });
      await message(bob.page, newText).waitFor();
    });

    await t.test("row 7: Ana's envelope moved to the newer epoch is refused", async () => {
      const oldRecord = (await history()).find((m) => m.ciphertext && toHex(peekEnvelope(fromBase64(m.ciphertext)).epochId) === oldEpoch && m.sender_id === anaId)!;
      const bytes = fromBase64(oldRecord.ciphertext!);
      const h = peekEnvelope(bytes);
      bytes.set(encodeHeader({ ...h, epochId: randomIdFromHex(newEpoch, "EpochId") }), 0);
      const moved: Msg = { ...oldRecord, id: newId(), seq: newRecord.seq + 50, version_seq: newRecord.seq + 50, ciphertext: toBase64(bytes), created_at: Date.now() };
      bob.evil.inject(created(moved));
      await refused(bob.page, "Invalid sender: the signature does not match").waitFor();
      assert.equal(await messages(bob.page).getByText(oldText, { exact: true }).count(), 1, "the old text is shown once, where it belongs");
    });

    /** A message from Cyd sealed under the old epoch with the key she kept, placed at `seq`. */
    const fromCyd = async (lie: string, seq: number): Promise<Msg> => {
      const header = newHeader(toRoomId(room), oldKey.epochId, toUserId(cydId));
      const sealed = await sealEnvelope(textBody(toRoomId(room), toUserId(cydId), lie), header, oldKey, cydKeys);
      return { ...newRecord, id: randomIdToHex(header.messageId), sender_id: cydId, seq, version_seq: seq, text: null, ciphertext: toBase64(sealed), created_at: Date.now() };
    };
    const note = "Sent under a room key that was already replaced";

    await t.test("row 14: Cyd's message under the old epoch, injected after the rotation, is flagged live and in history", async () => {
      const lie = "cyd: meet me outside the office at nine";
      const injected = await fromCyd(lie, newRecord.seq + 100);
      bob.evil.inject(created(injected));
      await refused(bob.page, note).waitFor();
      assert.equal(await messages(bob.page).getByText(lie).count(), 0, "the old-epoch text is never shown");
      await shot(bob.page, "hostile-62-superseded-epoch");

      const undo = bob.evil.rewriteJson("GET", new RegExp(`^/api/v1/rooms/${room}/messages`), (json) => ({ ...json, messages: [...json.messages, injected] }));
      await bob.page.reload();
      await unlock(bob.page, bob.password);
      await message(bob.page, newText).waitFor();
      await refused(bob.page, note).waitFor();
      assert.equal(await messages(bob.page).getByText(lie).count(), 0);
      await message(bob.page, oldText).waitFor();
      undo();
    });

    await t.test("row 14: flagged also when the server withholds every message of the newer epoch", async () => {
      const lie = "cyd: the plan changed, ignore ana";
      const injected = await fromCyd(lie, newRecord.seq + 200);
      const newer = (m: Msg) => m.ciphertext !== null && toHex(peekEnvelope(fromBase64(m.ciphertext)).epochId) === newEpoch;
      const undo = bob.evil.rewriteJson("GET", new RegExp(`^/api/v1/rooms/${room}/messages`), (json) => ({ ...json, messages: [...json.messages.filter((m: Msg) => !newer(m)), injected] }));
      await bob.page.reload();
      await unlock(bob.page, bob.password);
      await message(bob.page, oldText).waitFor();
      await refused(bob.page, note).waitFor();
      assert.equal(await messages(bob.page).getByText(newText).count(), 0, "the newer epoch's message is withheld");
      assert.equal(await messages(bob.page).getByText(lie).count(), 0, "the old-epoch text is never shown");
      // And live, with nothing of the newer epoch in sight.
      const again = "cyd: really, meet me outside";
      bob.evil.inject(created(await fromCyd(again, newRecord.seq + 201)));
      await refused(bob.page, note).nth(1).waitFor();
      assert.equal(await messages(bob.page).getByText(again).count(), 0);
      undo();
    });

    await t.test("row 4: Bob's room-key box delivered as a message or as an off-the-record frame installs no key", async () => {
      // In a new DM the server keeps every box of Bob's to itself.
      let stash: KeyItem[] = [];
      let hold = true;
      const dmKeys = /^\/api\/v1\/rooms\/([^/]+)\/keys$/;
      bob.evil.rewriteJson("GET", dmKeys, (json, req) => {
        if (new URL(req.url()).pathname.includes(room)) return json;
        stash = json.keys;
        return hold ? { ...json, keys: [] } : json;
      });
      bob.evil.rewriteFrames((f) => (hold && f.type === "room_key" && f.room_id !== room ? null : f));
      await createDirectMessage(ana.page, "bob", true);
      await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
      const dm = roomIdOf(ana.page);
      const dmText = server.typed("only for bob, in the direct message");
      await say(ana.page, dmText);
      await openRoom(bob.page, /ana/);
      await refused(bob.page, WAITING).waitFor();
      await waitUntil(() => stash.length > 0, "the server holds Bob's box of the DM");
      const genuine = stash[0]!.box;
      const dmRecord = ((await api(bob.page, "GET", `/api/v1/rooms/${dm}/messages?limit=50`)).messages as Msg[]).at(-1)!;
      const dmPosts = () => bob.evil.sent("POST", new RegExp(`^/api/v1/rooms/${dm}/keys$`));
      const postsBefore = dmPosts().length;

      // As a message's ciphertext, and as a message's text, "from Ana".
      bob.evil.inject(created({ ...dmRecord, id: newId(), seq: dmRecord.seq + 1, version_seq: dmRecord.seq + 1, ciphertext: genuine, created_at: Date.now() }));
      await refused(bob.page, "This message is damaged and cannot be opened").waitFor();
      bob.evil.inject(created({ ...dmRecord, id: newId(), seq: dmRecord.seq + 2, version_seq: dmRecord.seq + 2, ciphertext: null, text: genuine, created_at: Date.now() }));
      await refused(bob.page, "Not encrypted: this room is end-to-end encrypted").waitFor();
      assert.equal(await messages(bob.page).getByText(genuine).count(), 0, "the box is not shown as text");
      // As an off-the-record frame from Ana: dropped, no invitation.
      bob.evil.inject({ type: "otr", room_id: dm, sender_id: anaId, frame: genuine });
      await pause(2_000);
      assert.equal(await bob.page.getByRole("alert").filter({ hasText: "off-the-record" }).count(), 0);
      // No key was installed: Ana's message still waits, and no copy of the key was kept.
      await refused(bob.page, WAITING).waitFor();
      assert.equal(await messages(bob.page).getByText(dmText).count(), 0);
      assert.equal(dmPosts().length, postsBefore, "no key copy uploaded");
      await shot(bob.page, "hostile-63-box-as-message");

      // The same box through the room-key channel is taken.
      hold = false;
      bob.evil.inject({ type: "room_key", room_id: dm, epoch_id: stash[0]!.epoch_id, distributor_id: anaId, box: genuine });
      await message(bob.page, dmText).waitFor();
    });
  });
});
