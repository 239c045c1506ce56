// Ordinary team chat: a public channel found in the directory and joined, live
// messages with unread counts in the sidebar, a plaintext file, and search.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, shot, startServer } from "./harness";
import { message, messages, openRoom, say, setupAdmin, signIn } from "./flows";

test("public channel: directory, join, unread counts, search", async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const admin = await setupAdmin(browser, server);
    await server.createUser("bob", "bob login words 1");
    const { page } = admin;

    await page.getByRole("button", { name: "Create new" }).click();
    await page.getByRole("menuitem", { name: "Channel", exact: true }).click();
    const create = page.getByRole("dialog", { name: "Create Channel" });
    await create.getByLabel("Name").fill("general");
    await create.getByLabel("Topic").fill("Everything and nothing");
    await create.getByRole("switch", { name: "Private", exact: true }).uncheck();
    await create.getByRole("button", { name: "Create" }).click();
    await page.getByRole("heading", { level: 1, name: "general" }).waitFor();
    await say(page, "Welcome to the general channel");

    // Bob finds it in the directory and joins.
    const bob = await signIn(browser, server, "bob", "bob login words 1");
    await bob.page.getByRole("button", { name: "Create new" }).click();
    await bob.page.getByRole("menuitem", { name: "Browse channels" }).click();
    const directory = bob.page.getByRole("dialog", { name: "Directory" });
    await directory.getByRole("button", { name: "Join general" }).click();
    await bob.page.getByRole("heading", { level: 1, name: "general" }).waitFor();
    await message(bob.page, "Welcome to the general channel").waitFor();

    // Bob leaves the room's page; the admin's messages count as unread in his sidebar.
    await bob.page.getByRole("link", { name: "Sotto" }).click();
    await say(page, "Lunch at noon, budget meeting after");
    await say(page, "Bring the budget figures please");
    const link = bob.page.getByRole("navigation", { name: "Rooms" }).getByRole("link", { name: /general/ });
    await link.getByLabel("2 unread").waitFor();
    await shot(bob.page, "20-unread");
    await openRoom(bob.page, "general");
    await link.getByLabel(/unread/).waitFor({ state: "detached" });

    // Search finds plaintext messages by their words, highlighted.
    await bob.page.getByRole("button", { name: "Search messages" }).first().click();
    const panel = bob.page.getByRole("complementary", { name: "Search messages" });
    await panel.getByRole("searchbox", { name: "Search messages" }).fill("budget");
    await panel.getByRole("searchbox", { name: "Search messages" }).press("Enter");
    await panel.getByText("Bring the budget figures please").waitFor();
    await panel.getByText("Lunch at noon, budget meeting after").waitFor();
    assert.equal(await panel.getByText("Welcome to the general channel").count(), 0);
    assert.ok((await panel.locator("mark").count()) >= 2, "matched words are highlighted");
    await shot(bob.page, "21-search");

    // Keyboard only: the composer sends with Enter and keeps Shift+Enter as a new line.
    const box = bob.page.getByRole("textbox", { name: /^Message/ });
    await box.focus();
    await bob.page.keyboard.type("first line");
    await bob.page.keyboard.press("Shift+Enter");
    await bob.page.keyboard.type("second line");
    await bob.page.keyboard.press("Enter");
    await messages(page).getByText("first line\nsecond line").waitFor();
  } finally {
    await browser.close();
    await server.stop();
  }
});
