// Off the record (O1–O8) in two browsers: the admin turns OTR on; Ana starts it from the
// DM's menu, Bob accepts; messages both ways carry the bold key icon and never reach the
// server; a reload loses Bob's session, which shows as broken until Refresh keys; End OTR
// ends it for both and wipes the messages; a declined offer is reported. Then where OTR
// is not offered, or cannot start, and why; and an offer nobody answers times out.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { type Person, shot } from "./harness";
import {
  adminSettings,
  createDirectMessage,
  message,
  messages,
  openRoom,
  roomMenu,
  saveEncryptionPassword,
  inWorkspace,
  say,
  signIn,
  unlock,
} from "./flows";

function otrPanel(page: Page) {
  return page.getByRole("complementary", { name: "OTR" });
}

function otrStatus(page: Page) {
  return otrPanel(page).getByRole("status");
}

/** The room menu's entries, read with the menu open, then closed again. */
async function roomMenuItems(page: Page): Promise<string[]> {
  await page.getByRole("button", { name: "Room options" }).click();
  const menu = page.getByRole("menu", { name: "Room options" });
  await menu.waitFor();
  const items = (await menu.getByRole("menuitem").allTextContents()).map((t) => t.trim());
  await page.keyboard.press("Escape");
  await menu.waitFor({ state: "detached" });
  return items;
}

/** Whether any of `texts` is in the page's localStorage or sessionStorage. */
async function stored(person: Person, texts: string[]): Promise<{ local: boolean; session: boolean }> {
  const [local, session] = await person.page.evaluate(() => [JSON.stringify({ ...localStorage }), JSON.stringify({ ...sessionStorage })]);
  return { local: texts.some((t) => local.includes(t)), session: texts.some((t) => session.includes(t)) };
}

test("off the record: start and accept, messages, a lost session refreshed, end, decline", async () => {
  await inWorkspace(["Enable E2E encryption", "Enable Off-the-record (OTR)"], async ({ server, browser }) => {
    await server.createUser("ana", "ana login words 1");
    await server.createUser("bob", "bob login words 1");
    const ana = await signIn(browser, server, "ana", "ana login words 1");
    await saveEncryptionPassword(ana.page, server);
    const bob = await signIn(browser, server, "bob", "bob login words 1");
    const bobPassword = await saveEncryptionPassword(bob.page, server);

    await createDirectMessage(ana.page, "bob", true);
    await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
    const stored1 = server.typed("an ordinary encrypted hello");
    await say(ana.page, stored1);
    await openRoom(bob.page, /ana/);
    await message(bob.page, stored1).waitFor();

    // Ana: the DM's menu → OTR → Start OTR. Bob gets the invitation above his composer.
    await roomMenu(ana.page, "OTR");
    await otrStatus(ana.page).filter({ hasText: "Not started" }).waitFor();
    // Nothing stands in the way (a reason would show as a note).
    await otrPanel(ana.page).getByRole("note").waitFor({ state: "detached" });
    await otrPanel(ana.page).getByRole("button", { name: "Start OTR" }).click();
    await otrStatus(ana.page).filter({ hasText: "Waiting for bob to accept" }).waitFor();
    const invitation = bob.page.getByRole("alert").filter({ hasText: "ana wants to start an off-the-record conversation" });
    await invitation.waitFor();
    await shot(bob.page, "50-otr-invitation");
    await invitation.getByRole("button", { name: "Accept" }).click();

    // Both: established, and the room is tagged off the record.
    await otrStatus(ana.page).filter({ hasText: "On: messages are off the record" }).waitFor();
    await ana.page.getByRole("heading", { level: 1 }).getByText("Off the record").waitFor();
    await bob.page.getByRole("heading", { level: 1 }).getByText("Off the record").waitFor();
    await roomMenu(bob.page, "OTR");
    await otrStatus(bob.page).filter({ hasText: "On: messages are off the record" }).waitFor();

    // Messages both ways carry the bold key; they are typed, so the server must never hold them.
    const secret1 = server.typed("off the record: the merger closes friday");
    await say(ana.page, secret1);
    await message(ana.page, secret1).getByRole("img", { name: "Off the record" }).waitFor();
    await message(bob.page, secret1).getByRole("img", { name: "Off the record" }).waitFor();
    const secret2 = server.typed("off the record: understood, not a word");
    await say(bob.page, secret2);
    await message(ana.page, secret2).getByRole("img", { name: "Off the record" }).waitFor();
    await message(bob.page, secret2).getByRole("img", { name: "Off the record" }).waitFor();
    await shot(ana.page, "51-otr-established");
    // Kept in this browser session only: sessionStorage, never localStorage.
    assert.deepEqual(await stored(ana, [secret1, secret2]), { local: false, session: true });

    // Bob reloads: his tab keeps its sign-in and the OTR messages of this session, but has
    // lost the session's keys, and shows OTR as broken.
    await bob.page.reload();
    await bob.page.getByRole("heading", { level: 1, name: /ana/ }).waitFor();
    await message(bob.page, secret2).getByRole("img", { name: "Off the record" }).waitFor();
    await roomMenu(bob.page, "OTR");
    await otrStatus(bob.page).filter({ hasText: "Broken" }).waitFor();
    await otrStatus(bob.page).filter({ hasText: "press Refresh keys" }).waitFor();
    // Refresh keys needs his keys unlocked first.
    const refresh = otrPanel(bob.page).getByRole("button", { name: "Refresh keys" });
    assert.ok(await refresh.isDisabled());
    await otrPanel(bob.page).getByRole("note").filter({ hasText: "Enter your E2EE password first" }).waitFor();
    await shot(bob.page, "52-otr-broken-after-reload");
    await unlock(bob.page, bobPassword);
    await refresh.click();
    await otrStatus(bob.page).filter({ hasText: "On: messages are off the record" }).waitFor();
    await otrStatus(ana.page).filter({ hasText: "On: messages are off the record" }).waitFor();
    const secret3 = server.typed("off the record again after the reload");
    await say(bob.page, secret3);
    await message(ana.page, secret3).getByRole("img", { name: "Off the record" }).waitFor();
    const secret4 = server.typed("off the record: received you loud and clear");
    await say(ana.page, secret4);
    await message(bob.page, secret4).getByRole("img", { name: "Off the record" }).waitFor();

    // End OTR: ended for both, the messages are gone, later messages are stored (encrypted).
    await otrPanel(ana.page).getByRole("button", { name: "End OTR" }).click();
    await otrStatus(ana.page).filter({ hasText: "Ended" }).waitFor();
    await otrStatus(bob.page).filter({ hasText: "ana ended the off-the-record conversation" }).waitFor();
    for (const page of [ana.page, bob.page]) {
      await page.getByRole("heading", { level: 1 }).getByText("Off the record").waitFor({ state: "detached" });
      for (const text of [secret1, secret2, secret3, secret4]) await message(page, text).waitFor({ state: "detached" });
    }
    assert.deepEqual(await stored(bob, [secret1, secret2, secret3, secret4]), { local: false, session: false });
    const after = server.typed("back on the record, encrypted and stored");
    await say(bob.page, after);
    await message(bob.page, after).getByRole("img", { name: /^Encrypted/ }).waitFor();
    await message(ana.page, after).getByRole("img", { name: /^Encrypted/ }).waitFor();
    assert.equal(await message(ana.page, after).getByRole("img", { name: "Off the record" }).count(), 0);
    await shot(ana.page, "53-otr-ended");
    await bob.page.reload();
    await unlock(bob.page, bobPassword);
    await message(bob.page, after).waitFor();
    await message(bob.page, stored1).waitFor();
    assert.equal(await messages(bob.page).getByRole("img", { name: "Off the record" }).count(), 0);

    // A second offer, declined: Ana is told.
    await otrPanel(ana.page).getByRole("button", { name: "Start OTR" }).click();
    await invitation.getByRole("button", { name: "Decline" }).click();
    await otrStatus(ana.page).filter({ hasText: "bob declined" }).waitFor();
    await invitation.waitFor({ state: "detached" });
    await shot(ana.page, "54-otr-declined");
  });
});

test("off the record: where it is not offered, why it cannot start, and an unanswered offer", async () => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser, admin }) => {
    await server.createUser("ana", "ana login words 1");
    await server.createUser("bob", "bob login words 1");
    await server.createUser("carol", "carol login words 1");
    const ana = await signIn(browser, server, "ana", "ana login words 1");
    const anaPassword = await saveEncryptionPassword(ana.page, server);
    const bob = await signIn(browser, server, "bob", "bob login words 1");
    const bobPassword = await saveEncryptionPassword(bob.page, server);

    // OTR turned off: no OTR entry at all.
    await createDirectMessage(ana.page, "bob", true);
    await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
    assert.ok(!(await roomMenuItems(ana.page)).includes("OTR"), "no OTR entry while OTR is off");

    // Turned on: the two-person DM offers it (the page reads the settings when it loads).
    await adminSettings(admin.page, ["Enable Off-the-record (OTR)"]);
    await ana.page.reload();
    await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
    assert.ok((await roomMenuItems(ana.page)).includes("OTR"));
    // Locked keys: the reason, and no Start OTR.
    await roomMenu(ana.page, "OTR");
    await otrPanel(ana.page).getByRole("note").filter({ hasText: "Enter your E2EE password first" }).waitFor();
    assert.ok(await otrPanel(ana.page).getByRole("button", { name: "Start OTR" }).isDisabled());
    await unlock(ana.page, anaPassword);
    const start = otrPanel(ana.page).getByRole("button", { name: "Start OTR" });
    await otrPanel(ana.page).getByRole("note").waitFor({ state: "detached" });
    assert.ok(await start.isEnabled());

    // A group DM and a channel: no OTR entry.
    await createDirectMessage(ana.page, "bob, carol", false);
    await ana.page.getByRole("heading", { level: 1, name: /carol/ }).waitFor();
    assert.ok(!(await roomMenuItems(ana.page)).includes("OTR"), "no OTR entry in a group DM");
    await ana.page.getByRole("button", { name: "Create new" }).click();
    await ana.page.getByRole("menuitem", { name: "Channel", exact: true }).click();
    const create = ana.page.getByRole("dialog", { name: "Create Channel" });
    await create.getByLabel("Name").fill("plans");
    await create.getByRole("button", { name: "Create" }).click();
    await ana.page.getByRole("heading", { level: 1, name: "plans" }).waitFor();
    assert.ok(!(await roomMenuItems(ana.page)).includes("OTR"), "no OTR entry in a channel");

    // An offer Bob never answers times out on both sides (after the product's 30 s).
    const dm = /^[^,]*\bbob\b[^,]*$/;
    await openRoom(ana.page, dm);
    await bob.page.reload();
    await unlock(bob.page, bobPassword);
    await openRoom(bob.page, /^[^,]*\bana\b[^,]*$/);
    await roomMenu(ana.page, "OTR");
    await start.click();
    await otrStatus(ana.page).filter({ hasText: "Waiting for bob to accept" }).waitFor();
    const invitation = bob.page.getByRole("alert").filter({ hasText: "ana wants to start an off-the-record conversation" });
    await invitation.waitFor();
    await otrStatus(ana.page).filter({ hasText: "bob did not answer within 30 seconds" }).waitFor({ timeout: 45_000 });
    await otrStatus(ana.page).filter({ hasText: "No answer" }).waitFor();
    await invitation.waitFor({ state: "detached", timeout: 15_000 });
    await shot(ana.page, "55-otr-timeout");

    // Bob offline (his browser closed): the reason, and Start OTR cannot be pressed.
    await bob.context.close();
    await otrPanel(ana.page).getByRole("note").filter({ hasText: "bob is offline" }).waitFor();
    assert.ok(await start.isDisabled());
    await shot(ana.page, "56-otr-peer-offline");
  });
});
