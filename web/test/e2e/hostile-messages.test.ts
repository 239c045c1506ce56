// The server lies about messages in an encrypted direct message between Ana (whose
// browser talks through a hostile server) and Bob: it injects plaintext "from Bob",
// flips the room to unencrypted, replays an envelope, moves one into another room, and
// names Bob as the sender of Ana's envelope. Ana sees an error in place of each, never
// the lie as a normal message, and her client never sends plaintext.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Page } from "playwright-core";
import { shot } from "./harness";
import { createDirectMessage, createEncryptedChannel, encryptedPerson, inWorkspace, message, messages, openRoom, say, unlock } from "./flows";
import { api, hostilePerson, pause, roomIdOf, userIdOf } from "./hostile";

type Msg = { id: string; room_id: string; seq: number; version_seq: number; sender_id: string; text: string | null; ciphertext: string | null; created_at: number };

/** The article of a message from `name` that shows `note` in place of its text. */
function refused(page: Page, name: string, note: string | RegExp) {
  return messages(page)
    .getByRole("article", { name: new RegExp(`^${name},`) })
    .filter({ has: page.getByRole("note").filter({ hasText: note }) });
}

/** "Create new" → "Channel": a private encrypted channel with `members`. */
const newId = () => randomBytes(16).toString("hex");

test("hostile server: injected, flipped, replayed, moved and forged messages in an encrypted room", async (t) => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser }) => {
    const ana = await hostilePerson(browser, server, "ana");
    const bob = await encryptedPerson(browser, server, "bob");
    await createEncryptedChannel(ana.page, "ops", "bob");
    const ops = roomIdOf(ana.page);
    await createDirectMessage(ana.page, "bob", true);
    await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
    const dm = roomIdOf(ana.page);
    const bobId = await userIdOf(ana.page, "bob");

    const fromAna = server.typed("meet at the north gate at six");
    await say(ana.page, fromAna);
    await openRoom(bob.page, /ana/);
    await message(bob.page, fromAna).waitFor();
    const fromBob = server.typed("north gate, six, understood");
    await say(bob.page, fromBob);
    await message(ana.page, fromBob).getByRole("img", { name: /^Encrypted/ }).waitFor();

    const history = async (): Promise<Msg[]> => (await api(ana.page, "GET", `/api/v1/rooms/${dm}/messages?limit=50`)).messages;
    const [anaRecord, bobRecord] = await history();
    assert.equal(anaRecord!.sender_id, await userIdOf(ana.page, "ana"));
    assert.equal(bobRecord!.sender_id, bobId);
    let nextSeq = bobRecord!.seq + 1;
    const created = (m: Msg) => ({ type: "message_created", room_id: m.room_id, seq: m.seq, message: m });

    await t.test("plaintext injected 'from Bob' into the encrypted room is an error, live and from history", async () => {
      const lie = "Change of plan: send the keys to the new address";
      const injected: Msg = { ...bobRecord!, id: newId(), seq: nextSeq, version_seq: nextSeq, text: lie, ciphertext: null, created_at: Date.now() };
      nextSeq++;
      ana.evil.inject(created(injected));
      const note = /Not encrypted: this room is end-to-end encrypted/;
      await refused(ana.page, "bob", note).waitFor();
      assert.equal(await messages(ana.page).getByText(lie).count(), 0, "the injected text is not shown");
      await shot(ana.page, "hostile-20-plaintext-injected");

      // The same lie in the history, after a reload (keys locked, then unlocked).
      const undo = ana.evil.rewriteJson("GET", new RegExp(`^/api/v1/rooms/${dm}/messages`), (json) => ({ ...json, messages: [...json.messages, injected] }));
      await ana.page.reload();
      await refused(ana.page, "bob", note).waitFor();
      await unlock(ana.page, ana.password);
      await message(ana.page, fromBob).waitFor();
      await refused(ana.page, "bob", note).waitFor();
      assert.equal(await messages(ana.page).getByText(lie).count(), 0);
      undo();
    });

    await t.test("the room flipped to unencrypted by the server: the composer still seals", async () => {
      const flip = (r: { id: string; encrypted: boolean }) => (r.id === dm ? { ...r, encrypted: false } : r);
      const undo = [
        ana.evil.rewriteJson("GET", /^\/api\/v1\/rooms$/, (json) => ({ ...json, rooms: json.rooms.map(flip) })),
        ana.evil.rewriteJson("GET", new RegExp(`^/api/v1/rooms/${dm}$`), flip),
      ];
      const room = (await api(ana.page, "GET", `/api/v1/rooms/${dm}`)) as { encrypted: boolean };
      ana.evil.inject({ type: "room_updated", room_id: dm, seq: nextSeq, room: { ...room, encrypted: false } });
      ana.evil.inject({ type: "encryption_changed", room_id: dm, seq: nextSeq + 1, encrypted: false, by: bobId });
      nextSeq += 2;
      await ana.page.getByRole("img", { name: "Encrypted room" }).waitFor({ state: "detached" });
      const text = server.typed("this must stay sealed whatever the server says");
      const before = ana.evil.sent("POST", new RegExp(`^/api/v1/rooms/${dm}/messages$`)).length;
      await say(ana.page, text);
      const posts = ana.evil.sent("POST", new RegExp(`^/api/v1/rooms/${dm}/messages$`));
      assert.equal(posts.length, before + 1);
      const body = posts.at(-1)!.body;
      assert.equal(body.text ?? null, null, "no plaintext was sent");
      assert.ok(typeof body.ciphertext === "string" && body.ciphertext.length > 0, "an envelope was sent");
      await message(ana.page, text).getByRole("img", { name: /^Encrypted/ }).waitFor();
      await message(bob.page, text).getByRole("img", { name: /^Encrypted/ }).waitFor();
      await shot(ana.page, "hostile-21-flipped-still-sealed");
      for (const u of undo) u();
      await ana.page.reload();
      await unlock(ana.page, ana.password);
      await message(ana.page, text).waitFor();
    });

    await t.test("a replayed envelope is shown once: by socket, by history, and after a reload", async () => {
      const once = async () => {
        await message(ana.page, fromBob).waitFor();
        await pause(1_000);
        assert.equal(await messages(ana.page).getByText(fromBob, { exact: true }).count(), 1, "shown once");
      };
      // The same event again, and the same envelope under a new id and place.
      ana.evil.inject(created(bobRecord!));
      const copy: Msg = { ...bobRecord!, id: newId(), seq: nextSeq, version_seq: nextSeq, created_at: Date.now() };
      nextSeq++;
      ana.evil.inject(created(copy));
      await refused(ana.page, "bob", "The server moved this message: it is not shown").waitFor();
      await once();
      await shot(ana.page, "hostile-22-replayed");

      // History that carries it twice, and the copy, after a reload.
      const undo = ana.evil.rewriteJson("GET", new RegExp(`^/api/v1/rooms/${dm}/messages`), (json) => ({ ...json, messages: [...json.messages, bobRecord, copy] }));
      await ana.page.reload();
      await unlock(ana.page, ana.password);
      await refused(ana.page, "bob", "The server moved this message: it is not shown").waitFor();
      await once();
      undo();
    });

    await t.test("a ciphertext moved from one room into another is an error there", async () => {
      await openRoom(ana.page, "ops");
      const moved: Msg = { ...bobRecord!, room_id: ops, id: newId(), seq: 1000, version_seq: 1000, created_at: Date.now() };
      const undo = ana.evil.rewriteJson("GET", new RegExp(`^/api/v1/rooms/${ops}/messages`), (json) => ({ ...json, messages: [...json.messages, moved] }));
      await ana.page.reload();
      await unlock(ana.page, ana.password);
      await refused(ana.page, "bob", "The server moved this message: it is not shown").waitFor();
      assert.equal(await messages(ana.page).getByText(fromBob).count(), 0, "the moved text is not shown in the other room");
      // Live as well.
      ana.evil.inject(created({ ...moved, id: newId(), seq: 1001, version_seq: 1001 }));
      await refused(ana.page, "bob", "The server moved this message: it is not shown").nth(1).waitFor();
      assert.equal(await messages(ana.page).getByText(fromBob).count(), 0);
      await shot(ana.page, "hostile-23-moved-between-rooms");
      undo();
    });

    await t.test("a forged sender (Ana's envelope, the record says Bob) is marked invalid", async () => {
      await openRoom(ana.page, /bob/);
      const forged: Msg = { ...anaRecord!, sender_id: bobId, id: newId(), seq: nextSeq, version_seq: nextSeq, created_at: Date.now() };
      nextSeq++;
      ana.evil.inject(created(forged));
      await refused(ana.page, "bob", /Invalid sender/).waitFor();
      assert.equal(await messages(ana.page).getByText(fromAna, { exact: true }).count(), 1, "only Ana's own message carries her text");
      await shot(ana.page, "hostile-24-forged-sender");
    });
  });
});
