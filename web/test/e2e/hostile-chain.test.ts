// The server serves Bob an older prefix of an encrypted channel's signed chain, one
// that leaves out Ana's removal of Cyd, and lists Cyd as a member again. Bob's client
// keeps the newer state it verified, warns, and seals nothing under a key Cyd holds;
// after a reload (no state in memory) it refuses the room rather than use the old state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fromBase64, toHex } from "../../src/crypto/encoding";
import { peekEnvelope } from "../../src/crypto/envelope";
import { RoomKeyBox } from "../../src/crypto/roomkey";
import { shot } from "./harness";
import { createEncryptedChannel, encryptedPerson, inWorkspace, message, messages, openRoom, say, unlock } from "./flows";
import { api, hostilePerson, roomIdOf, userIdOf } from "./hostile";

test("hostile server: an older prefix of the chain that omits a removal is refused, with a warning", async () => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser }) => {
    const ana = await encryptedPerson(browser, server, "ana");
    const bob = await hostilePerson(browser, server, "bob");
    await encryptedPerson(browser, server, "cyd");

    await createEncryptedChannel(ana.page, "plans", "bob, cyd");
    const room = roomIdOf(ana.page);
    const cydId = await userIdOf(ana.page, "cyd");

    const before = server.typed("cyd still reads this one");
    await say(ana.page, before);
    await openRoom(bob.page, "plans");
    await message(bob.page, before).waitFor();
    const epochOf = (ciphertext: string) => toHex(peekEnvelope(fromBase64(ciphertext)).epochId);
    const history = await api(bob.page, "GET", `/api/v1/rooms/${room}/messages?limit=50`);
    const oldEpoch = epochOf(history.messages.at(-1).ciphertext);
    const cydMember = (await api(bob.page, "GET", `/api/v1/rooms/${room}/members`)).members.find((m: { user_id: string }) => m.user_id === cydId);
    const statementsBefore: string[] = (await api(bob.page, "GET", `/api/v1/rooms/${room}/statements`)).statements;

    // Ana removes Cyd; Bob's client sees the signed removal.
    await ana.page.getByRole("button", { name: "Members", exact: true }).click();
    const panel = ana.page.getByRole("complementary", { name: "Members" });
    await panel.getByRole("button", { name: "Remove cyd" }).click();
    await panel.getByRole("list", { name: "Room members" }).getByText("@cyd").waitFor({ state: "detached" });
    const removal = await bob.evil.frame((f) => f.type === "statement_added" && f.room_id === room);

    // From now on Bob is served the chain as it was before, and Cyd as a member.
    bob.evil.rewriteJson("GET", new RegExp(`^/api/v1/rooms/${room}/statements$`), () => ({ statements: statementsBefore }));
    bob.evil.rewriteJson("GET", new RegExp(`^/api/v1/rooms/${room}/members$`), (json) => ({ ...json, members: [...json.members.filter((m: { user_id: string }) => m.user_id !== cydId), cydMember] }));
    bob.evil.inject(removal);
    const warning = bob.page.getByRole("alert").filter({ hasText: "The server showed an older state of plans" });
    await warning.waitFor();
    await shot(bob.page, "hostile-40-chain-rolled-back");

    // And says no new epoch is due. Bob writes: his client refuses to send on a state
    // the server is rolling back, so nothing goes out under the key Cyd holds, and no
    // room key box is sealed to her. What he read before stays readable.
    bob.evil.rewriteJson("GET", new RegExp(`^/api/v1/rooms/${room}/keys$`), (json) => ({ ...json, rotation_due: false }));
    const messagePosts = () => bob.evil.sent("POST", new RegExp(`^/api/v1/rooms/${room}/messages$`));
    const posted = messagePosts().length;
    const attempt = "meant for bob and ana only";
    const box = bob.page.getByRole("textbox", { name: /^Message/ });
    await box.fill(attempt);
    await box.press("Enter");
    await bob.page.getByRole("alert").filter({ hasText: "older state of this room" }).waitFor();
    await shot(bob.page, "hostile-41-chain-rolled-back-send");
    assert.equal(messagePosts().length, posted, "nothing was sent");
    assert.equal(await messages(bob.page).getByText(attempt).count(), 0);
    await message(bob.page, before).waitFor();
    for (const post of bob.evil.sent("POST", new RegExp(`^/api/v1/rooms/${room}/keys$`))) {
      for (const b of post.body.boxes as string[]) assert.notEqual(RoomKeyBox.decode(fromBase64(b)).recipient, cydId, "no room key for the removed member");
    }

    // After a reload nothing newer is in memory: the room is refused, not read or written
    // under the old state, and the warning is shown again.
    await bob.page.reload();
    await unlock(bob.page, bob.password);
    await warning.waitFor();
    await message(bob.page, before).waitFor({ state: "detached" });
    await messages(bob.page).getByRole("note").filter({ hasText: "The server served an older state of this room" }).waitFor();
    await box.fill("this should not go out");
    await box.press("Enter");
    await bob.page.getByRole("alert").filter({ hasText: "older state of this room" }).waitFor();
    assert.equal(await messages(bob.page).getByText("this should not go out").count(), 0);
    await shot(bob.page, "hostile-42-chain-rolled-back-after-reload");
  });
});
