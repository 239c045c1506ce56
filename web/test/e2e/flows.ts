// Steps several flows share, written as a person does them: controls found by role
// and accessible name.
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { type Person, type RunningServer, launchBrowser, newPerson, startServer } from "./harness";

export const ADMIN = { username: "admin", password: "admin login words 1" };

/**
 * Runs `body` against a fresh server and browser whose first admin is set up and has
 * turned `settings` on; afterwards closes the browser and stops the server, which fails
 * if any typed text reached its disk or log.
 */
export async function inWorkspace(settings: string[], body: (w: { server: RunningServer; browser: Browser; admin: Person }) => Promise<void>): Promise<void> {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const admin = await setupAdmin(browser, server);
    if (settings.length) await adminSettings(admin.page, settings);
    await body({ server, browser, admin });
  } finally {
    await browser.close();
    await server.stop();
  }
}

/** A new user, signed in, who saved the encryption password the browser generated. */
export async function encryptedPerson(browser: Browser, server: RunningServer, name: string, viewport?: { width: number; height: number }): Promise<Person & { login: string; password: string }> {
  const login = `${name} login words 1`;
  await server.createUser(name, login);
  const person = await signIn(browser, server, name, login, viewport);
  const password = await saveEncryptionPassword(person.page, server);
  return Object.assign(person, { login, password });
}

/** Creates the first admin through the printed setup link; returns the signed-in person. */
export async function setupAdmin(browser: Browser, server: RunningServer): Promise<Person> {
  const admin = await newPerson(browser);
  const { page } = admin;
  await page.goto(server.setupLink);
  await page.getByRole("heading", { name: "Set up Sotto" }).waitFor();
  await page.getByLabel("Username").fill(ADMIN.username);
  await page.getByLabel("Password", { exact: true }).fill(server.typed(ADMIN.password));
  await page.getByLabel("Confirm password").fill(ADMIN.password);
  await page.getByRole("button", { name: "Create administrator" }).click();
  await page.getByRole("heading", { name: /^Welcome/ }).waitFor();
  return admin;
}

/** Turns settings on in Administration (labels as the toggles show them). */
export async function adminSettings(page: Page, on: string[]): Promise<void> {
  await openAccountMenu(page, "Administration");
  await page.getByRole("heading", { name: "Administration", level: 1 }).waitFor();
  for (const label of on) {
    const toggle = page.getByRole("switch", { name: label, exact: true });
    if (!(await toggle.isChecked())) await toggle.check();
  }
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText("Settings saved").waitFor();
}

export async function openAccountMenu(page: Page, item: string): Promise<void> {
  await page.getByRole("button", { name: "Account menu" }).click();
  await page.getByRole("menuitem", { name: item }).click();
}

/** A new browser context signed in as `username`. */
export async function signIn(browser: Browser, server: RunningServer, username: string, password: string, viewport?: { width: number; height: number }): Promise<Person> {
  const person = await newPerson(browser, viewport ? { viewport } : {});
  await person.page.goto(server.url + "/login");
  await fillSignIn(person.page, username, password);
  await person.page.getByRole("navigation", { name: "Rooms" }).waitFor();
  return person;
}

export async function fillSignIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** Clicks the "Save your encryption password" banner; returns the password shown once. */
export async function saveEncryptionPassword(page: Page, server: RunningServer): Promise<string> {
  await page.getByRole("button", { name: "Save your encryption password" }).click();
  const dialog = page.getByRole("dialog", { name: "Save your encryption password" });
  const secret = dialog.getByLabel("Your encryption password");
  await secret.waitFor({ timeout: 30_000 });
  const password = (await secret.textContent())!.trim();
  assert.equal(password.split(" ").length, 12, "twelve words");
  server.typed(password);
  await dialog.getByRole("button", { name: "I saved my password" }).click();
  await dialog.waitFor({ state: "detached" });
  return password;
}

/** "Enter E2EE password" → "Enable encryption". */
export async function unlock(page: Page, password: string): Promise<void> {
  await page.getByRole("button", { name: "Enter E2EE password" }).click();
  const dialog = page.getByRole("dialog", { name: "Enter E2EE password" });
  await dialog.getByLabel("Encryption password").fill(password);
  await dialog.getByRole("button", { name: "Enable encryption" }).click();
  await dialog.waitFor({ state: "detached", timeout: 30_000 });
}

export async function openRoom(page: Page, name: string | RegExp): Promise<void> {
  await page.getByRole("navigation", { name: "Rooms" }).getByRole("link", { name }).click();
  await page.getByRole("heading", { level: 1, name }).waitFor();
}

/** Types a message and presses Enter. */
export async function say(page: Page, text: string): Promise<void> {
  const box = page.getByRole("textbox", { name: /^(Message|Off-the-record message)/ });
  await box.fill(text);
  await box.press("Enter");
  await messages(page).getByText(text, { exact: true }).waitFor();
}

export function messages(page: Page) {
  return page.getByRole("log", { name: /^Messages in/ });
}

/** The message article whose text is `text`. */
export function message(page: Page, text: string) {
  return messages(page).getByRole("article").filter({ hasText: text });
}

export async function roomMenu(page: Page, item: string): Promise<void> {
  await page.getByRole("button", { name: "Room options" }).click();
  await page.getByRole("menuitem", { name: item, exact: true }).click();
}

/** "Create new" → "Channel": a private, encrypted channel with these members (a,b), opened. */
export async function createEncryptedChannel(page: Page, name: string, members: string): Promise<void> {
  await page.getByRole("button", { name: "Create new" }).click();
  await page.getByRole("menuitem", { name: "Channel", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Create Channel" });
  await dialog.getByLabel("Name").fill(name);
  await dialog.getByLabel("Members").fill(members);
  const priv = dialog.getByRole("switch", { name: "Private" });
  if (!(await priv.isChecked())) await priv.check();
  await dialog.getByText("Advanced settings").click();
  await dialog.getByRole("switch", { name: "Encrypted" }).setChecked(true);
  await dialog.getByRole("button", { name: "Create" }).click();
  await dialog.waitFor({ state: "detached" });
  await page.getByRole("heading", { level: 1, name }).waitFor();
}

/** "Create new" → "Direct message" with the given usernames, encrypted or not. */
export async function createDirectMessage(page: Page, usernames: string, encrypted: boolean): Promise<void> {
  await page.getByRole("button", { name: "Create new" }).click();
  await page.getByRole("menuitem", { name: "Direct message" }).click();
  const dialog = page.getByRole("dialog", { name: "Direct message" });
  await dialog.getByLabel("Usernames").fill(usernames);
  const toggle = dialog.getByRole("switch", { name: "Encrypted" });
  if ((await toggle.isChecked()) !== encrypted) await toggle.setChecked(encrypted);
  await dialog.getByRole("button", { name: "Create" }).click();
  await dialog.waitFor({ state: "detached" });
}
