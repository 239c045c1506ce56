// An encrypted direct message between two people in two browsers: each saves the
// generated encryption password; the DM is created encrypted; messages carry the key
// icon; a second session unlocks with the password (a wrong one is refused) and reads
// the history. The server never holds the text.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPerson, shot } from "./harness";
import { fillSignIn, inWorkspace, message, openRoom, saveEncryptionPassword, say, signIn, unlock } from "./flows";

test("encrypted direct message, and a second session that unlocks with the password", async () => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser }) => {
    await server.createUser("ana", "ana login words 1");
    await server.createUser("bob", "bob login words 1");

    const ana = await signIn(browser, server, "ana", "ana login words 1");
    await shot(ana.page, "10-save-password-banner");
    const anaPassword = await saveEncryptionPassword(ana.page, server);
    const bob = await signIn(browser, server, "bob", "bob login words 1");
    await saveEncryptionPassword(bob.page, server);

    // Ana opens an encrypted DM with Bob from the sidebar's Create new menu.
    await ana.page.getByRole("button", { name: "Create new" }).click();
    await ana.page.getByRole("menuitem", { name: "Direct message" }).click();
    const dialog = ana.page.getByRole("dialog", { name: "Direct message" });
    await dialog.getByLabel("Usernames").fill("bob");
    const encrypted = dialog.getByRole("switch", { name: "Encrypted" });
    if (!(await encrypted.isChecked())) await encrypted.check();
    await dialog.getByRole("button", { name: "Create" }).click();
    await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
    await ana.page.getByRole("img", { name: "Encrypted room" }).waitFor();

    const first = server.typed("the quarterly numbers are 4711 and falling");
    await say(ana.page, first);
    await message(ana.page, first).getByRole("img", { name: /^Encrypted/ }).waitFor();

    // Bob sees the DM arrive live, with the key icon in the sidebar, and reads it.
    const dm = bob.page.getByRole("navigation", { name: "Rooms" }).getByRole("link", { name: /ana/ });
    await dm.getByRole("img", { name: "Encrypted" }).waitFor();
    await openRoom(bob.page, /ana/);
    await message(bob.page, first).getByRole("img", { name: /^Encrypted/ }).waitFor();
    const reply = server.typed("got it, shredding the printout");
    await say(bob.page, reply);
    await message(ana.page, reply).waitFor();
    await shot(ana.page, "11-encrypted-dm");

    // A new browser session of Ana's: the banner asks for the password.
    const ana2 = await newPerson(browser);
    await ana2.page.goto(server.url + "/login");
    await fillSignIn(ana2.page, "ana", "ana login words 1");
    await openRoom(ana2.page, /bob/);
    await message(ana2.page, reply).waitFor({ state: "detached" });
    await ana2.page.getByText("Encrypted message: enter your E2EE password to read it").first().waitFor();
    await shot(ana2.page, "12-locked-room");

    await ana2.page.getByRole("button", { name: "Enter E2EE password" }).click();
    const unlockDialog = ana2.page.getByRole("dialog", { name: "Enter E2EE password" });
    await unlockDialog.getByLabel("Encryption password").fill("wrong words entirely");
    await unlockDialog.getByRole("button", { name: "Enable encryption" }).click();
    await unlockDialog.getByRole("alert").filter({ hasText: "Wrong encryption password" }).waitFor({ timeout: 30_000 });
    await shot(ana2.page, "13-wrong-password");
    await unlockDialog.getByRole("button", { name: "Close" }).click();
    await unlock(ana2.page, anaPassword);
    await message(ana2.page, first).waitFor();
    await message(ana2.page, reply).waitFor();
    assert.equal(await ana2.page.getByRole("button", { name: "Enter E2EE password" }).count(), 0);
  });
});
