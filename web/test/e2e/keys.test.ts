// Keys and trust (B4, E10, E11, E13): two people compare safety numbers and one marks
// the other verified; an admin resets a key, the owner sets up new keys and gets the
// room keys again once the contact accepted the change, which stays announced until
// then; the account page changes the encryption password and resets one's own key.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { newPerson, shot } from "./harness";
import {
  createDirectMessage,
  fillSignIn,
  message,
  messages,
  openAccountMenu,
  openRoom,
  roomMenu,
  saveEncryptionPassword,
  inWorkspace,
  say,
  signIn,
  unlock,
} from "./flows";

const SAFETY_NUMBER = /^\d{5}( \d{5}){11}$/;

/** Opens "Verify <username>" from the room's member list; returns the safety number shown. */
async function openVerify(page: Page, username: string): Promise<string> {
  await roomMenu(page, "Members");
  await page.getByRole("button", { name: `Verify ${username}` }).click();
  const number = page.getByRole("dialog", { name: `Verify ${username}` }).getByLabel("Safety number");
  await number.waitFor({ timeout: 30_000 });
  return (await number.textContent())!.trim();
}

test("safety numbers, marking a contact verified, and a key reset by the admin", async () => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser, admin }) => {
    await server.createUser("ana", "ana login words 1");
    await server.createUser("bob", "bob login words 1");
    const ana = await signIn(browser, server, "ana", "ana login words 1");
    const anaPassword = await saveEncryptionPassword(ana.page, server);
    const bob = await signIn(browser, server, "bob", "bob login words 1");
    await saveEncryptionPassword(bob.page, server);

    await createDirectMessage(ana.page, "bob", true);
    await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
    const first = server.typed("the safe combination is 31-07-1999");
    await say(ana.page, first);
    await openRoom(bob.page, /ana/);
    await message(bob.page, first).waitFor();
    const reply = server.typed("noted, I will change it on monday");
    await say(bob.page, reply);
    await message(ana.page, reply).getByRole("img", { name: "Encrypted", exact: true }).waitFor();

    // Both see the same 60 digits, in 12 groups of five.
    const anaSees = await openVerify(ana.page, "bob");
    assert.match(anaSees, SAFETY_NUMBER);
    const bobSees = await openVerify(bob.page, "ana");
    assert.equal(bobSees, anaSees, "the same safety number on both sides");
    await shot(ana.page, "20-safety-number");
    await bob.page.getByRole("dialog", { name: "Verify ana" }).getByRole("button", { name: "Close" }).first().click();

    // Marked verified: Bob's messages carry the verified key icon for Ana.
    const verify = ana.page.getByRole("dialog", { name: "Verify bob" });
    await verify.getByRole("button", { name: "Mark as verified" }).click();
    await verify.getByText("Verified", { exact: true }).waitFor();
    assert.equal(await verify.getByRole("button", { name: "Mark as verified" }).count(), 0);
    await verify.getByRole("button", { name: "Close" }).first().click();
    await message(ana.page, reply).getByRole("img", { name: "Encrypted, verified sender" }).waitFor();
    await shot(ana.page, "21-verified-sender");

    // The admin resets Bob's key (he lost his encryption password): his sessions end.
    // (The page lists the users as they were when it opened: a reload shows Bob.)
    await admin.page.reload();
    await admin.page.getByRole("button", { name: "Actions for bob" }).click();
    await admin.page.getByRole("menuitem", { name: "Reset E2E key" }).click();
    const confirm = admin.page.getByRole("dialog", { name: "Reset E2E key for bob?" });
    await shot(admin.page, "22-admin-reset-key");
    await confirm.getByRole("button", { name: "Reset E2E key" }).click();
    await admin.page.getByRole("status").filter({ hasText: "The E2E key of bob was reset." }).waitFor();
    // His open tab finds its session ended at its next load.
    await bob.page.reload();
    await bob.page.getByRole("heading", { name: "Sign in to Sotto" }).waitFor();
    assert.ok(bob.takeErrors().every((e) => /401/.test(e)), "only the refused requests of the ended session");

    // Bob signs in again in the same browser and sets up new keys.
    await fillSignIn(bob.page, "bob", "bob login words 1");
    await bob.page.getByRole("navigation", { name: "Rooms" }).waitFor();
    await saveEncryptionPassword(bob.page, server);
    assert.equal(await bob.page.getByRole("alert").filter({ hasText: "encryption key changed" }).count(), 0, "his own new key is no change to him");
    // Ana is warned at once, loudly and until she looks at the new key.
    const warning = ana.page.getByRole("alert").filter({ hasText: "bob's encryption key changed" });
    await warning.waitFor();
    await openRoom(bob.page, /ana/);
    // Until Ana accepts his new key, no room key is sealed to it.
    await messages(bob.page).getByText("Waiting for encryption key").first().waitFor();
    await message(bob.page, first).waitFor({ state: "detached" });

    // The reset made a new epoch due: Ana's next message is under a key Bob does not get yet.
    const during = server.typed("sent while his new key was unchecked");
    await say(ana.page, during);
    await messages(bob.page).getByText("Waiting for encryption key").nth(2).waitFor();
    await message(bob.page, during).waitFor({ state: "detached" });
    await shot(bob.page, "23-waiting-for-key");

    // The warning stays across a reload, locked and unlocked.
    await ana.page.reload();
    await ana.page.getByRole("navigation", { name: "Rooms" }).waitFor();
    await warning.waitFor();
    await unlock(ana.page, anaPassword);
    await warning.waitFor();
    await shot(ana.page, "24-key-change-warning");

    // Ana reviews the change: a new safety number, the same one Bob now sees.
    await warning.getByRole("button", { name: "Review key change" }).click();
    const review = ana.page.getByRole("dialog", { name: "Verify bob" });
    await review.getByRole("alert").filter({ hasText: "bob's key is not the one you knew" }).waitFor();
    const changed = (await review.getByLabel("Safety number").textContent())!.trim();
    assert.match(changed, SAFETY_NUMBER);
    assert.notEqual(changed, anaSees, "a new key, a new safety number");
    assert.equal(await openVerify(bob.page, "ana"), changed);
    await bob.page.getByRole("dialog", { name: "Verify ana" }).getByRole("button", { name: "Close" }).first().click();
    await shot(ana.page, "25-review-key-change");
    await review.getByRole("button", { name: "Accept new key" }).click();
    await review.getByRole("button", { name: "Mark as verified" }).waitFor();
    await review.getByRole("button", { name: "Close" }).first().click();
    await warning.waitFor({ state: "detached" });

    // Bob gets the room keys from Ana without doing anything, and reads the history.
    await message(bob.page, first).waitFor();
    await message(bob.page, reply).waitFor();
    await message(bob.page, during).waitFor();
    assert.equal(await messages(bob.page).getByText("Waiting for encryption key").count(), 0);
    await shot(bob.page, "26-history-after-reset");

    // Bob's new key is no longer the verified one; his old message stays readable, not verified.
    const after = server.typed("new keys, same bob");
    await say(bob.page, after);
    await message(ana.page, after).getByRole("img", { name: "Encrypted", exact: true }).waitFor();
    await message(ana.page, reply).getByRole("img", { name: "Encrypted", exact: true }).waitFor();

    // Another browser of Ana's never saw the old key: it pins the new one without a warning.
    const ana2 = await newPerson(browser);
    await ana2.page.goto(server.url + "/login");
    await fillSignIn(ana2.page, "ana", "ana login words 1");
    await unlock(ana2.page, anaPassword);
    await openRoom(ana2.page, /bob/);
    await message(ana2.page, after).waitFor();
    assert.equal(await ana2.page.getByRole("alert").filter({ hasText: "encryption key changed" }).count(), 0);
    // It verifies the room's chain through the key change Bob's browser declared after his
    // reset, and reads what Bob signed under the old key, never as verified.
    await message(ana2.page, reply).getByRole("img", { name: "Encrypted", exact: true }).waitFor();
    assert.equal(await message(ana2.page, reply).getByRole("img", { name: "Encrypted, verified sender" }).count(), 0);
  });
});

test("account page: change the encryption password, reset one's own key", async () => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser }) => {
    await server.createUser("ana", "ana login words 1");
    await server.createUser("bob", "bob login words 1");
    const ana = await signIn(browser, server, "ana", "ana login words 1");
    const oldPassword = await saveEncryptionPassword(ana.page, server);
    const bob = await signIn(browser, server, "bob", "bob login words 1");
    await saveEncryptionPassword(bob.page, server);
    await createDirectMessage(ana.page, "bob", true);
    await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
    const before = server.typed("written before the password change");
    await say(ana.page, before);
    await openRoom(bob.page, /ana/);
    await message(bob.page, before).waitFor();

    // Change the encryption password (the keys are unlocked in this session).
    await openAccountMenu(ana.page, "My account");
    const newPassword = server.typed("a new encryption password of mine");
    await ana.page.getByLabel("New encryption password", { exact: true }).fill(newPassword);
    await ana.page.getByLabel("Confirm new encryption password").fill(newPassword);
    await ana.page.getByRole("button", { name: "Change encryption password" }).click();
    await ana.page.getByRole("status").filter({ hasText: "Your encryption password was changed." }).waitFor({ timeout: 30_000 });
    await shot(ana.page, "27-password-changed");

    // A new session: the old password is refused, the new one unlocks.
    const ana2 = await newPerson(browser);
    await ana2.page.goto(server.url + "/login");
    await fillSignIn(ana2.page, "ana", "ana login words 1");
    await ana2.page.getByRole("button", { name: "Enter E2EE password" }).click();
    const dialog = ana2.page.getByRole("dialog", { name: "Enter E2EE password" });
    await dialog.getByLabel("Encryption password").fill(oldPassword);
    await dialog.getByRole("button", { name: "Enable encryption" }).click();
    await dialog.getByRole("alert").filter({ hasText: "Wrong encryption password" }).waitFor({ timeout: 30_000 });
    await dialog.getByRole("button", { name: "Close" }).first().click();
    await unlock(ana2.page, newPassword);
    await openRoom(ana2.page, /bob/);
    await message(ana2.page, before).waitFor();

    // Reset her own key: the login password is asked for, and a wrong one refused.
    await openAccountMenu(ana2.page, "My account");
    await ana2.page.getByRole("button", { name: "Reset E2E key" }).click();
    const reset = ana2.page.getByRole("dialog", { name: "Reset E2E key" });
    await reset.getByLabel("Login password").fill("not my login password");
    await reset.getByRole("button", { name: "Reset my key" }).click();
    await reset.getByRole("alert").filter({ hasText: /wrong username or password/i }).waitFor();
    await shot(ana2.page, "28-reset-own-key-refused");
    // The browser logs the refused request itself; that one is expected.
    assert.ok(ana2.takeErrors().every((e) => /40[13]/.test(e)));
    await reset.getByLabel("Login password").fill("ana login words 1");
    await reset.getByRole("button", { name: "Reset my key" }).click();
    await reset.waitFor({ state: "detached" });
    const fresh = await saveEncryptionPassword(ana2.page, server);
    assert.notEqual(fresh, newPassword);

    // Bob is told that Ana's key changed.
    await bob.page.getByRole("alert").filter({ hasText: "ana's encryption key changed" }).waitFor();
  });
});
