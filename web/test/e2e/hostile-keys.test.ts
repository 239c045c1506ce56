// The server lies about keys. A contact's bundle is swapped for an attacker's (a real
// bundle made here with the client's own crypto): the reader is warned that the key
// changed and no room key is sealed to the new key while the change is unaccepted. The
// key backup is served with weak Argon2id parameters, or sealing someone else's keys:
// unlocking is refused with a clear message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KeyBackup } from "../../src/crypto/backup";
import { fromBase64, toBase64 } from "../../src/crypto/encoding";
import { IdentityKeys } from "../../src/crypto/identity";
import { userId } from "../../src/crypto/ids";
import { EncryptionPassword } from "../../src/crypto/password";
import { RoomKeyBox } from "../../src/crypto/roomkey";
import { newPerson, shot } from "./harness";
import { createDirectMessage, encryptedPerson, fillSignIn, inWorkspace, message, openRoom, say } from "./flows";
import { api, hostilePerson, hostileServer, pause, roomIdOf, userIdOf } from "./hostile";

test("hostile server: a contact's key bundle swapped for an attacker's is flagged, and no room key is sealed to it", async () => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser }) => {
    const ana = await hostilePerson(browser, server, "ana");
    const bob = await encryptedPerson(browser, server, "bob");
    await createDirectMessage(ana.page, "bob", true);
    await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
    const first = server.typed("the vault code is 2291");
    await say(ana.page, first);
    await openRoom(bob.page, /ana/);
    await message(bob.page, first).waitFor();

    const room = roomIdOf(ana.page);
    const bobId = await userIdOf(ana.page, "bob");
    const keyState = await api(ana.page, "GET", `/api/v1/rooms/${room}/keys`);
    const epoch = Buffer.from(RoomKeyBox.decode(fromBase64(keyState.keys[0].box)).epochId).toString("hex");
    const keyPosts = () => ana.evil.sent("POST", new RegExp(`^/api/v1/rooms/${room}/keys$`));

    // Honest first: asked for the room key on Bob's behalf, Ana's client seals it to him.
    const request = { type: "room_key_request", room_id: room, epoch_id: epoch, user_ids: [bobId] };
    const before = keyPosts().length;
    ana.evil.inject(request);
    await waitUntil(() => keyPosts().length === before + 1, "the honest key request is answered");
    const boxes = keyPosts()[before]!.body.boxes.map((b: string) => RoomKeyBox.decode(fromBase64(b)));
    assert.deepEqual(boxes.map((b: RoomKeyBox) => b.recipient), [bobId]);

    // The server now hands out an attacker's bundle for Bob and says his keys changed.
    const attacker = await IdentityKeys.generate();
    const forged = toBase64(attacker.bundle(userId(bobId)).encode());
    ana.evil.rewriteJson("GET", /^\/api\/v1\/keys\?/, (json) => ({
      bundles: json.bundles.map((b: { user_id: string }) => (b.user_id === bobId ? { ...b, bundle: forged } : b)),
    }));
    ana.evil.inject({ type: "keys_changed", user_id: bobId });
    const warning = ana.page.getByRole("alert").filter({ hasText: "bob's encryption key changed" });
    await warning.waitFor();
    await shot(ana.page, "hostile-10-key-swapped");

    // Asked again, Ana's client seals nothing: the new key is not accepted.
    ana.evil.inject(request);
    await pause(3_000);
    assert.equal(keyPosts().length, before + 1, "no room key box was uploaded for the attacker's key");

    // What Bob (with his real key) writes still reads; Ana is shown the change to review.
    const reply = server.typed("the real bob, still here");
    await say(bob.page, reply);
    await message(ana.page, reply).waitFor();
    await warning.getByRole("button", { name: "Review key change" }).click();
    const review = ana.page.getByRole("dialog", { name: "Verify bob" });
    await review.getByRole("alert").filter({ hasText: "bob's key is not the one you knew" }).waitFor();
    await review.getByRole("button", { name: "Accept new key" }).waitFor();
    await shot(ana.page, "hostile-11-key-swapped-review");
    await review.getByRole("button", { name: "Close" }).first().click();
    assert.equal(keyPosts().length, before + 1, "still nothing sealed while the change waits");
  });
});

test("hostile server: a key backup with weak Argon2id parameters, or sealing another identity's keys, is refused", async () => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser }) => {
    const ana = await encryptedPerson(browser, server, "ana");
    const anaId = await userIdOf(ana.page, "ana");

    // A second browser of Ana's, behind the hostile server.
    const second = await newPerson(browser);
    const evil = await hostileServer(second);
    await second.page.goto(server.url + "/login");
    await fillSignIn(second.page, "ana", ana.login);
    await second.page.getByRole("navigation", { name: "Rooms" }).waitFor();

    const unlockWith = async (password: string) => {
      const dialog = second.page.getByRole("dialog", { name: "Enter E2EE password" });
      if (!(await dialog.isVisible())) await second.page.getByRole("button", { name: "Enter E2EE password" }).click();
      await dialog.getByLabel("Encryption password").fill(password);
      await dialog.getByRole("button", { name: "Enable encryption" }).click();
      return dialog;
    };

    // m = 8 KiB, t = 1: far below the floor, refused before any key is derived.
    const weak = evil.rewriteJson("GET", /^\/api\/v1\/me\/keys\/backup$/, (json) => {
      const bytes = fromBase64(json.backup);
      const view = new DataView(bytes.buffer, bytes.byteOffset);
      view.setUint32(1, 8);
      view.setUint32(5, 1);
      return { ...json, backup: toBase64(bytes) };
    });
    let dialog = await unlockWith(ana.password);
    const weakAlert = dialog.getByRole("alert").filter({ hasText: /key backup was refused/i });
    await weakAlert.waitFor({ timeout: 30_000 });
    assert.match((await weakAlert.textContent())!, /too weak/i);
    await shot(second.page, "hostile-12-weak-backup");
    weak();

    // A backup that opens with Ana's password but holds other keys than her published
    // bundle's (the server replaced her keys): refused, never used.
    const other = await IdentityKeys.generate();
    const forged = await KeyBackup.create(other, userId(anaId), EncryptionPassword.fromUser(ana.password));
    evil.rewriteJson("GET", /^\/api\/v1\/me\/keys\/backup$/, (json) => ({ ...json, backup: toBase64(forged.encode()) }));
    dialog = await unlockWith(ana.password);
    const mismatch = dialog.getByRole("alert").filter({ hasText: /does not match your identity/i });
    await mismatch.waitFor({ timeout: 60_000 });
    await shot(second.page, "hostile-13-backup-other-identity");
    await dialog.getByRole("button", { name: "Close" }).first().click();
    // Still locked: the page still asks for the password.
    await second.page.getByRole("button", { name: "Enter E2EE password" }).waitFor();
  });
});

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await pause(100);
  }
}
