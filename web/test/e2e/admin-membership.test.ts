// An administrator adds Cyd to, and removes Bob from, Ana's encrypted private channel in
// Administration, without the room's say. Ana's Members panel shows Cyd as added by an
// administrator and not verified by the room, and Bob as removed by an administrator yet
// still in the room's signed state; Cyd sees the room but never gets its key, while Bob's
// and Ana's messages stay readable to the members the room signed in.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { shot } from "./harness";
import { createEncryptedChannel, encryptedPerson, inWorkspace, message, openAccountMenu, openRoom, say } from "./flows";

/** The caller's own API answer, with the page's session (as the client itself calls it). */
async function ownApi(page: Page, path: string): Promise<{ status: number; body: unknown }> {
  return page.evaluate(async (path) => {
    const token = sessionStorage.getItem("sotto.session");
    const res = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json() };
  }, path);
}

test("an administrator forces membership of an encrypted channel, and its members see it for what it is", async () => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser, admin }) => {
    const ana = await encryptedPerson(browser, server, "ana");
    const bob = await encryptedPerson(browser, server, "bob");
    const cyd = await encryptedPerson(browser, server, "cyd");

    await createEncryptedChannel(ana.page, "plans", "bob");
    const room = new URL(ana.page.url()).pathname.split("/")[2]!;
    const before = server.typed("signed members only read this");
    await say(ana.page, before);

    // Administration → Rooms: Cyd added to the room, which the admin is not in.
    await openAccountMenu(admin.page, "Administration");
    const page = admin.page;
    await page.getByRole("heading", { name: "Rooms", level: 2 }).waitFor();
    // The page has been open since the workspace was set up, before the room existed.
    await page.getByRole("button", { name: "Refresh list" }).click();
    await page.getByLabel("Room", { exact: true }).selectOption({ label: "plans (channel, private, encrypted)" });
    const list = page.getByRole("list", { name: "Members of plans" });
    await list.getByText("@bob").waitFor();
    await page.getByLabel("Add to this room").fill("cyd");
    await page.getByRole("button", { name: "Add", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "cyd was added" }).waitFor();
    await list.getByRole("listitem").filter({ hasText: "@cyd" }).getByText("Added by an administrator").waitFor();
    await shot(page, "admin-membership-10-added");

    // Ana sees Cyd as added by an administrator, not verified by the room.
    await ana.page.getByRole("button", { name: "Members", exact: true }).click();
    const panel = ana.page.getByRole("complementary", { name: "Members" });
    const cydRow = panel.getByRole("list", { name: "Room members" }).getByRole("listitem").filter({ hasText: "@cyd" });
    await cydRow.getByText("Added by an administrator — not verified by the room").waitFor();
    assert.equal(await panel.getByRole("listitem").filter({ hasText: "@bob" }).getByText(/not verified/).count(), 0);
    await shot(ana.page, "admin-membership-20-not-verified");

    // Ana writes again; Bob reads both, Cyd neither, and no key was ever sealed to Cyd.
    const after = server.typed("still only for signed members");
    await say(ana.page, after);
    await openRoom(bob.page, "plans");
    await message(bob.page, after).waitFor();
    await message(bob.page, before).waitFor();
    await openRoom(cyd.page, "plans");
    await cyd.page.getByText("Waiting for encryption key").first().waitFor();
    assert.equal(await cyd.page.getByText(before).count(), 0);
    assert.equal(await cyd.page.getByText(after).count(), 0);
    const keys = await ownApi(cyd.page, `/api/v1/rooms/${room}/keys`);
    assert.equal(keys.status, 200);
    assert.deepEqual((keys.body as { keys: unknown[] }).keys, []);

    // Bob removed by the administrator: gone from the server's list, still signed in.
    await page.getByRole("button", { name: "Remove bob from plans" }).click();
    await page.getByRole("status").filter({ hasText: "bob was removed" }).waitFor();
    await list.getByText("@bob").waitFor({ state: "detached" });
    const removed = panel.getByRole("list", { name: "Removed by an administrator" });
    await removed.getByText("Removed by an administrator — still in the room's signed state").waitFor();
    await removed.getByText("bob").first().waitFor();
    await panel.getByRole("list", { name: "Room members" }).getByText("@bob").waitFor({ state: "detached" });
    await shot(ana.page, "admin-membership-30-removed-but-signed");
    assert.equal((await ownApi(bob.page, `/api/v1/rooms/${room}`)).status, 404);

    // Not for anyone else: Ana's account menu has no Administration (and the server
    // refuses her the endpoints, as the server's tests show).
    await ana.page.getByRole("button", { name: "Account menu" }).click();
    await ana.page.getByRole("menuitem").first().waitFor();
    assert.equal(await ana.page.getByRole("menuitem", { name: "Administration" }).count(), 0);
    assert.equal((await ownApi(ana.page, `/api/v1/admin/rooms/${room}/members`)).status, 403);
    // The browser logs the two refusals asked for above; nothing else may be logged.
    const asked = [`/api/v1/rooms/${room}:`, `/api/v1/admin/rooms/${room}/members:`];
    for (const person of [ana, bob]) {
      person.errors.push(...person.takeErrors().filter((e) => !asked.some((url) => e.includes(url))));
    }
  });
});
