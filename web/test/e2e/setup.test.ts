// First start: the printed link creates the admin; the admin turns encryption and OTR
// on and creates a colleague; sign in (a wrong password says so), sessions, sign out.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PHONE, launchBrowser, newPerson, shot, startServer } from "./harness";
import { adminSettings, fillSignIn, openAccountMenu, setupAdmin, signIn } from "./flows";

test("first-run setup, administration, sign in and out, sessions", async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const admin = await setupAdmin(browser, server);
    await shot(admin.page, "01-home-after-setup");

    // The link works once: the page says so afterwards.
    const late = await newPerson(browser);
    await late.page.goto(server.setupLink);
    await late.page.getByRole("heading", { name: "Sotto is already set up" }).waitFor();

    await adminSettings(admin.page, ["Enable E2E encryption", "Enable Off-the-record (OTR)"]);
    await admin.page.getByRole("button", { name: "Create user" }).click();
    const dialog = admin.page.getByRole("dialog", { name: "Create user" });
    await dialog.getByLabel("Username").fill("bob");
    await dialog.getByLabel("Display name").fill("Bob Builder");
    await dialog.getByLabel("Password").fill(server.typed("bob login words 1"));
    await dialog.getByRole("button", { name: "Create user" }).click();
    await admin.page.getByRole("cell", { name: "bob", exact: true }).waitFor();
    await shot(admin.page, "02-administration");

    // Bob: a wrong password is an error, the right one signs in.
    const bob = await newPerson(browser);
    await bob.page.goto(server.url + "/");
    await bob.page.getByRole("heading", { name: "Sign in to Sotto" }).waitFor();
    await shot(bob.page, "03-sign-in");
    await fillSignIn(bob.page, "bob", "not the password");
    await bob.page.getByRole("alert").filter({ hasText: "Wrong username or password." }).waitFor();
    // The browser logs the refused request itself; that one is expected.
    assert.deepEqual(bob.takeErrors().map((e) => /401/.test(e)), [true]);
    await fillSignIn(bob.page, "bob", "bob login words 1");
    await bob.page.getByRole("heading", { name: "Welcome, Bob Builder" }).waitFor();

    // A second session of Bob's shows in his session list, and can be ended from there.
    const bobPhone = await signIn(browser, server, "bob", "bob login words 1", PHONE);
    await openAccountMenu(bob.page, "My account");
    await bob.page.getByText("This browser").waitFor();
    const others = bob.page.getByRole("button", { name: /^Log out / });
    assert.equal(await others.count(), 1, "one other session");
    await shot(bob.page, "04-my-account");
    await others.click();
    // The ended session is signed out at its next request.
    await bobPhone.page.reload();
    await bobPhone.page.getByRole("heading", { name: "Sign in to Sotto" }).waitFor();
    assert.ok(bobPhone.takeErrors().every((e) => /401/.test(e)));

    // Reloading keeps the tab signed in; signing out ends it.
    await bob.page.reload();
    await bob.page.getByRole("navigation", { name: "Rooms" }).waitFor();
    await openAccountMenu(bob.page, "Log out");
    await bob.page.getByRole("heading", { name: "Sign in to Sotto" }).waitFor();
    await bob.page.reload();
    await bob.page.getByRole("heading", { name: "Sign in to Sotto" }).waitFor();
  } finally {
    await browser.close();
    await server.stop();
  }
});
