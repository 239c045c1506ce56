// The browser client and the terminal client, two implementations of docs/protocol.md,
// in the same conversations: Ana in Chromium, Tom and Tess with the `sotto` binary.
// Encrypted direct messages opened from either side (with the safety numbers compared
// and both sides' verified flags), files both ways with their SHA-256 compared (in an
// encrypted DM and in a plain channel), an encrypted group DM, encrypted private
// channels made on either side with the other joining late, a removal, key rotations
// from both sides and an edit, and off-the-record sessions started, declined, refreshed
// (also after the terminal's process died) and ended from either side. The server
// never holds a typed text, a file name or a file's bytes in clear.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { type Person, type RunningServer, launchBrowser, shot, startServer } from "./harness";
import { adminSettings, message, messages, openRoom, roomMenu, saveEncryptionPassword, say, setupAdmin, signIn } from "./flows";
import { type Terminal, newTerminal } from "./terminal";

const ANA = { username: "ana", password: "ana login words 1" };
const TOM = { username: "tom", password: "tom login words 1" };
const TESS = { username: "tess", password: "tess login words 1" };

let server: RunningServer;
let browser: Browser;
let ana: Person;
let tom: Terminal;
let tess: Terminal;

/** `sotto login` and `sotto e2e setup` on a fresh profile; the printed password is remembered. */
async function terminalUser(name: string, password: string): Promise<Terminal> {
  const t = newTerminal(name);
  await t.ok(["login", "--server", server.url, "--username", name, "--password-stdin"], password + "\n");
  const printed = (await t.ok(["e2e", "setup"])).trim();
  assert.match(printed, /^\S+( \S+){11}$/, "e2e setup prints twelve words alone");
  server.typed(printed);
  return t;
}

interface ReadMessage {
  id: string;
  sender: string;
  text: string;
  encrypted: boolean;
  otr: boolean;
  verified: boolean;
  problem: string | null;
  attachments: { name: string; media_type: string; size: number }[];
}

/** `sotto read ROOM --json` until `want` finds a message (keys may still be on their way). */
async function readUntil(t: Terminal, room: string, want: (m: ReadMessage) => boolean, what: string): Promise<ReadMessage> {
  const deadline = Date.now() + 30_000;
  let last: ReadMessage[] = [];
  for (;;) {
    last = (await t.json(["read", room, "--limit", "50"])) as ReadMessage[];
    const found = last.find(want);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`sotto read ${room}: no ${what} within 30 s; got:\n${last.map((m) => "  " + JSON.stringify(m)).join("\n")}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Ana's encrypted direct message with `username`, created in the browser. */
async function browserDm(page: Page, username: string, title: string | RegExp = username): Promise<void> {
  await page.getByRole("button", { name: "Create new" }).click();
  await page.getByRole("menuitem", { name: "Direct message" }).click();
  const dialog = page.getByRole("dialog", { name: "Direct message" });
  await dialog.getByLabel("Usernames").fill(username);
  const encrypted = dialog.getByRole("switch", { name: "Encrypted" });
  if (!(await encrypted.isChecked())) await encrypted.check();
  await dialog.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { level: 1, name: title }).waitFor();
  await page.getByRole("img", { name: "Encrypted room" }).waitFor();
}

/** The direct message with Tom alone, in the sidebar (presence first) and as the title. */
const TOM_DM = /^(online |offline )?tom(?!,)/;
const digits = (s: string) => s.replace(/\D/g, "");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Bytes that start with a remembered marker (so a blob in clear would be found), then noise. */
function fileBytes(marker: string, size: number): Buffer {
  return Buffer.concat([Buffer.from(server.typed(marker) + "\n", "utf8"), randomBytes(size)]);
}

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const admin = await setupAdmin(browser, server);
  await adminSettings(admin.page, ["Enable E2E encryption", "Enable Off-the-record (OTR)"]);
  await admin.context.close();
  await server.createUser(ANA.username, ANA.password);
  await server.createUser(TOM.username, TOM.password);
  await server.createUser(TESS.username, TESS.password);
  ana = await signIn(browser, server, ANA.username, ANA.password);
  await saveEncryptionPassword(ana.page, server);
  tom = await terminalUser(TOM.username, TOM.password);
  tess = await terminalUser(TESS.username, TESS.password);
});

after(async () => {
  tom?.dispose();
  tess?.dispose();
  await browser?.close();
  await server?.stop();
});

test("an encrypted DM opened in the browser: the terminal reads it, answers, and both verify", async () => {
  const { page } = ana;
  await browserDm(page, "tom");

  const first = server.typed("browser to terminal: the vault code is 3141");
  await say(page, first);
  const read = await readUntil(tom, "@ana", (m) => m.text === first, "message from the browser");
  assert.equal(read.encrypted, true);
  assert.equal(read.verified, false);
  assert.equal(read.problem, null);
  assert.equal(read.sender, "ana");

  const chat = await tom.chat("@ana");
  const live = server.typed("and a live one while you watch");
  await say(page, live);
  const got = await chat.message(live);
  assert.equal(got.encrypted, true);
  assert.equal(got.otr, false);
  assert.equal(got.verified, false);
  assert.equal(got.sender, "ana");

  const reply = server.typed("terminal to browser: received, burning it");
  chat.say(reply);
  await chat.message(reply);
  await message(page, reply).getByRole("img", { name: "Encrypted", exact: true }).waitFor();
  await chat.quit();

  // The safety number is the same on both sides; each marks the other verified.
  const verify = (await tom.json(["verify", "ana"]))[0] as { safety_number: string; verified: boolean };
  assert.equal(verify.verified, false);
  await page.getByRole("button", { name: "Members", exact: true }).click();
  await page.getByRole("button", { name: "Verify tom" }).click();
  const dialog = page.getByRole("dialog", { name: "Verify tom" });
  const number = dialog.getByLabel("Safety number");
  await number.waitFor();
  assert.equal(digits((await number.textContent()) ?? ""), digits(verify.safety_number));
  assert.equal(digits(verify.safety_number).length, 60);
  await shot(page, "40-interop-safety-number");
  await dialog.getByRole("button", { name: "Mark as verified" }).click();
  await dialog.getByText("Verified", { exact: true }).waitFor();
  await dialog.getByRole("button", { name: "Close" }).last().click();
  await dialog.waitFor({ state: "detached" });
  await page.getByRole("button", { name: "Close Members" }).click();
  const confirmed = (await tom.json(["verify", "ana", "--confirm"]))[0] as { verified: boolean };
  assert.equal(confirmed.verified, true);

  const chat2 = await tom.chat("@ana");
  const checked = server.typed("now with verified keys on both ends");
  await say(page, checked);
  const got2 = await chat2.message(checked);
  assert.equal(got2.verified, true);
  const back = server.typed("verified reply from the terminal");
  chat2.say(back);
  await chat2.message(back);
  await message(page, back).getByRole("img", { name: "Encrypted, verified sender" }).waitFor();
  await chat2.quit();
  await shot(page, "41-interop-dm-verified");
});

test("an encrypted DM opened by the terminal: the browser reads it and answers", async () => {
  const { page } = ana;
  await tess.ok(["dm", "ana", "--encrypted"]);
  const hello = server.typed("terminal opened this room: hello from tess");
  await tess.ok(["send", "@ana"], hello + "\n");

  const link = page.getByRole("navigation", { name: "Rooms" }).getByRole("link", { name: /tess/ });
  await link.getByRole("img", { name: "Encrypted" }).waitFor();
  await openRoom(page, /tess/);
  await page.getByRole("img", { name: "Encrypted room" }).waitFor();
  await message(page, hello).getByRole("img", { name: "Encrypted", exact: true }).waitFor();

  const answer = server.typed("browser answers in a room the terminal made");
  await say(page, answer);
  const read = await readUntil(tess, "@ana", (m) => m.text === answer, "the browser's answer");
  assert.equal(read.encrypted, true);
  assert.equal(read.verified, false);
  assert.equal(read.problem, null);
  await shot(page, "42-interop-terminal-dm");
});

test("files both ways in the encrypted DM, byte for byte", async () => {
  const { page } = ana;
  await openRoom(page, TOM_DM);

  // Ana uploads; Tom downloads with `sotto download` and gets the same bytes.
  const upName = server.typed("ana-quarterly-figures.bin");
  const upBytes = fileBytes("the figures inside ana's upload", 150_000);
  await page.getByLabel("Choose a file to upload").setInputFiles({ name: upName, mimeType: "application/octet-stream", buffer: upBytes });
  await message(page, upName).getByRole("button", { name: `Download ${upName}` }).waitFor();
  const announced = await readUntil(tom, "@ana", (m) => m.attachments?.[0]?.name === upName, "the browser's file");
  assert.equal(announced.encrypted, true);
  assert.equal(announced.attachments[0]!.size, upBytes.length);
  const out = join(tom.profile, "..", "downloaded.bin");
  await tom.ok(["download", "@ana", announced.id, "--output", out]);
  assert.equal(sha256(readFileSync(out)), sha256(upBytes));

  // Tom sends with `sotto send --file`; Ana downloads in the browser.
  const downName = server.typed("tom-signed-contract.bin");
  const downBytes = fileBytes("the clauses inside tom's contract", 200_000);
  const path = join(tom.profile, "..", downName);
  writeFileSync(path, downBytes);
  await tom.ok(["send", "@ana", "--file", path]);
  const button = message(page, downName).getByRole("button", { name: `Download ${downName}` });
  await button.waitFor();
  await message(page, downName).getByRole("img", { name: /^Encrypted/ }).waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), button.click()]);
  assert.equal(download.suggestedFilename(), downName);
  const saved = await download.path();
  assert.equal(sha256(readFileSync(saved)), sha256(downBytes));
  await shot(page, "43-interop-files");
});

test("an encrypted private channel: the terminal joins late and reads the history", async () => {
  const { page } = ana;
  await page.getByRole("button", { name: "Create new" }).click();
  await page.getByRole("menuitem", { name: "Channel", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Create Channel" });
  await dialog.getByLabel("Name").fill("vault");
  const priv = dialog.getByRole("switch", { name: "Private" });
  if (!(await priv.isChecked())) await priv.check();
  await dialog.getByText("Advanced settings").click();
  const encrypted = dialog.getByRole("switch", { name: "Encrypted" });
  if (!(await encrypted.isChecked())) await encrypted.check();
  await dialog.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { level: 1, name: "vault" }).waitFor();
  await page.getByRole("img", { name: "Encrypted room" }).waitFor();

  const early = server.typed("written before tom was invited");
  await say(page, early);

  await page.getByRole("button", { name: "Members", exact: true }).click();
  await page.getByLabel("Add people").fill("tom");
  await page.getByRole("button", { name: "Invite" }).click();
  await page.getByRole("list", { name: "Room members" }).getByText("@tom").waitFor();
  await page.getByRole("button", { name: "Close Members" }).click();

  const read = await readUntil(tom, "vault", (m) => m.text === early, "the history written before the invitation");
  assert.equal(read.encrypted, true);
  assert.equal(read.problem, null);
  // The browser's signed invitation is in the room's state as the terminal checks it.
  const members = (await tom.json(["room", "members", "vault"])) as { username: string; owner: boolean; verified_by_room: boolean; listed_by_server: boolean }[];
  assert.deepEqual(
    members.map((m) => [m.username, m.owner, m.verified_by_room, m.listed_by_server]).sort(),
    [["ana", true, true, true], ["tom", false, true, true]],
  );

  const late = server.typed("tom's first words in the vault");
  await tom.ok(["send", "vault"], late + "\n");
  await message(page, late).getByRole("img", { name: /^Encrypted/ }).waitFor();
  await shot(page, "44-interop-private-channel");
});

test("an encrypted group DM of the browser and two terminals", async () => {
  const { page } = ana;
  await browserDm(page, "tom, tess", /tom, tess|tess, tom/);
  const roomId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop()!);
  const toAll = server.typed("to both terminals at once: 5772");
  await say(page, toAll);
  for (const t of [tom, tess]) {
    const m = await readUntil(t, roomId, (x) => x.text === toAll, "the group message");
    assert.equal(m.encrypted, true);
    assert.equal(m.problem, null);
  }
  const fromTess = server.typed("tess writes to the group");
  await tess.ok(["send", roomId], fromTess + "\n");
  await message(page, fromTess).getByRole("img", { name: /^Encrypted/ }).waitFor({ timeout: 30_000 });
  assert.equal((await readUntil(tom, roomId, (x) => x.text === fromTess, "tess's message")).problem, null);
});

test("removed from the browser's encrypted channel: the rest read on under a new key", async () => {
  const { page } = ana;
  await openRoom(page, /vault/);
  await page.getByRole("button", { name: "Members", exact: true }).click();
  await page.getByLabel("Add people").fill("tess");
  await page.getByRole("button", { name: "Invite" }).click();
  const list = page.getByRole("list", { name: "Room members" });
  await list.getByText("@tess").waitFor();
  const both = server.typed("tom and tess both read this");
  await say(page, both);
  for (const t of [tom, tess]) assert.equal((await readUntil(t, "vault", (m) => m.text === both, "the message to both")).problem, null);

  await page.getByRole("button", { name: "Remove tom" }).click();
  await list.getByText("@tom").waitFor({ state: "detached" });
  await page.getByRole("button", { name: "Close Members" }).click();
  const after = server.typed("only tess reads this one");
  await say(page, after);
  const read = await readUntil(tess, "vault", (m) => m.text === after, "the message after the removal");
  assert.equal(read.problem, null);
  const members = (await tess.json(["room", "members", "vault"])) as { username: string; verified_by_room: boolean; listed_by_server: boolean }[];
  assert.deepEqual(members.map((m) => [m.username, m.verified_by_room, m.listed_by_server]).sort(), [["ana", true, true], ["tess", true, true]]);
  const gone = await tom.run(["read", "vault", "--json"]);
  assert.notEqual(gone.code, 0, "tom no longer reads the channel");
});

test("a private channel made in the terminal: the browser joins late; keys rotate on both sides; an edit", async () => {
  const { page } = ana;
  await tom.ok(["room", "create", "plans", "--private", "--encrypted"]);
  const before = server.typed("plans drafted before ana joined");
  await tom.ok(["send", "plans"], before + "\n");
  await tom.ok(["room", "invite", "plans", "ana"]);

  await openRoom(page, /plans/);
  await page.getByRole("img", { name: "Encrypted room" }).waitFor();
  await message(page, before).getByRole("img", { name: /^Encrypted/ }).waitFor({ timeout: 30_000 });
  const mine = server.typed("ana read the plans");
  await say(page, mine);
  assert.equal((await readUntil(tom, "plans", (m) => m.text === mine, "the late joiner's message")).problem, null);

  // Tom rotates the key; the browser reads what comes under the new one.
  await tom.ok(["room", "rotate-key", "plans"]);
  const afterTom = server.typed("under the key tom rotated");
  await tom.ok(["send", "plans"], afterTom + "\n");
  await message(page, afterTom).getByRole("img", { name: /^Encrypted/ }).waitFor({ timeout: 30_000 });

  // Ana rotates in the browser; the terminal reads what comes under hers.
  await roomMenu(page, "Rotate key");
  const afterAna = server.typed("under the key ana rotated");
  await say(page, afterAna);
  const read = await readUntil(tom, "plans", (m) => m.text === afterAna, "the message under the browser's new key");
  assert.equal(read.encrypted, true);
  assert.equal(read.problem, null);

  // An edit made in the browser is what the terminal shows.
  await message(page, afterAna).getByRole("button", { name: "Message actions for ana" }).click();
  await page.getByRole("menuitem", { name: "Edit" }).click();
  const edited = server.typed("under the key ana rotated, corrected");
  await page.getByLabel("Edit message").fill(edited);
  await page.getByRole("button", { name: "Save" }).click();
  await message(page, edited).getByText("(edited)").waitFor();
  const shown = await readUntil(tom, "plans", (m) => m.id === read.id && m.text === edited, "the edited text");
  assert.equal(shown.problem, null);
  const earlier = (await tom.json(["read", "plans", "--limit", "50"])) as ReadMessage[];
  assert.deepEqual(
    earlier.filter((m) => m.problem !== null),
    [],
    "every message in the channel opens in the terminal",
  );
  await shot(page, "45-interop-terminal-channel");
});

test("files in a room without encryption, both ways", async () => {
  const { page } = ana;
  await page.getByRole("button", { name: "Create new" }).click();
  await page.getByRole("menuitem", { name: "Channel", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Create Channel" });
  await dialog.getByLabel("Name").fill("lobby");
  const priv = dialog.getByRole("switch", { name: "Private" });
  if (await priv.isChecked()) await priv.uncheck();
  await dialog.getByLabel("Members").fill("tom");
  await dialog.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { level: 1, name: "lobby" }).waitFor();

  const upBytes = randomBytes(70_000);
  await page.getByLabel("Choose a file to upload").setInputFiles({ name: "plain-upload.bin", mimeType: "application/octet-stream", buffer: upBytes });
  await message(page, "plain-upload.bin").waitFor();
  const announced = await readUntil(tom, "lobby", (m) => m.text.includes("plain-upload.bin"), "the browser's file");
  assert.equal(announced.encrypted, false);
  const out = join(tom.profile, "..", "plain-downloaded.bin");
  await tom.ok(["download", "lobby", announced.id, "--output", out]);
  assert.equal(sha256(readFileSync(out)), sha256(upBytes));

  const downBytes = randomBytes(90_000);
  const path = join(tom.profile, "..", "plain-from-tom.bin");
  writeFileSync(path, downBytes);
  await tom.ok(["send", "lobby", "--file", path]);
  const button = message(page, "plain-from-tom.bin").getByRole("button", { name: "Download plain-from-tom.bin" });
  await button.waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), button.click()]);
  assert.equal(download.suggestedFilename(), "plain-from-tom.bin");
  assert.equal(sha256(readFileSync(await download.path())), sha256(downBytes));
});

test("off the record across implementations, started from either side", async () => {
  const { page } = ana;
  await openRoom(page, TOM_DM);
  const chat = await tom.chat("@ana");

  // Ana offers in the browser; Tom accepts in the terminal.
  await roomMenu(page, "OTR");
  const panel = page.getByRole("complementary", { name: "OTR" });
  await panel.getByRole("button", { name: "Start OTR" }).click();
  const offered = await chat.otr("offered");
  assert.equal(offered.by_peer, true);
  chat.say("/otr accept");
  await chat.otr("established");
  await panel.getByRole("status").getByText("On: messages are off the record").waitFor({ timeout: 30_000 });
  await page.getByRole("heading", { level: 1 }).getByText("Off the record").waitFor();

  const fromAna = server.typed("off the record from the browser: 2718");
  await say(page, fromAna);
  const got = await chat.message(fromAna);
  assert.equal(got.otr, true);
  assert.equal(got.verified, true, "tom verified ana's key in the first test");
  const fromTom = server.typed("off the record from the terminal: 1618");
  chat.say(fromTom);
  await chat.message(fromTom);
  await message(page, fromTom).getByRole("img", { name: "Off the record" }).waitFor();
  await shot(page, "46-interop-otr-browser-started");

  await panel.getByRole("button", { name: "End OTR" }).click();
  await chat.otr("ended");
  await panel.getByRole("status").getByText("Ended", { exact: true }).waitFor();

  // Tom offers in the terminal; Ana accepts the invitation; Tom ends it.
  chat.say("/otr start");
  await chat.otr("offering");
  const invitation = page.getByRole("alert").filter({ hasText: "wants to start an off-the-record conversation" });
  await invitation.getByRole("button", { name: "Accept" }).click();
  const established = await chat.otr("established");
  assert.equal(established.type, "otr");
  await panel.getByRole("status").getByText("On: messages are off the record").waitFor({ timeout: 30_000 });

  const again = server.typed("second session, terminal first: 4669");
  chat.say(again);
  await message(page, again).getByRole("img", { name: "Off the record" }).waitFor();
  const answer = server.typed("second session, browser answers: 1414");
  await say(page, answer);
  assert.equal((await chat.message(answer)).otr, true);

  // Refreshed from either side, the session carries on.
  const settled = (e: { type: string; state?: unknown }) => e.type === "otr" && (e.state === "established" || e.state === "refreshed");
  chat.say("/otr refresh");
  await chat.next(settled, "the terminal's refresh settled");
  await panel.getByRole("status").getByText("On: messages are off the record").waitFor({ timeout: 30_000 });
  const refreshedByTom = server.typed("after the terminal refreshed: 1732");
  chat.say(refreshedByTom);
  await message(page, refreshedByTom).getByRole("img", { name: "Off the record" }).waitFor();
  await panel.getByRole("button", { name: "Refresh keys" }).click();
  await chat.next(settled, "the browser's refresh settled");
  await panel.getByRole("status").getByText("On: messages are off the record").waitFor({ timeout: 30_000 });
  const refreshedByAna = server.typed("after the browser refreshed: 2236");
  await say(page, refreshedByAna);
  assert.equal((await chat.message(refreshedByAna)).otr, true);
  const stillTom = server.typed("terminal again after both refreshes: 2646");
  chat.say(stillTom);
  await message(page, stillTom).getByRole("img", { name: "Off the record" }).waitFor();

  chat.say("/otr end");
  await chat.otr("ended");
  await panel.getByRole("status").getByText("Ended", { exact: true }).waitFor();
  await page.getByRole("heading", { level: 1 }).getByText("Off the record").waitFor({ state: "detached" });

  // Declined from either side.
  chat.say("/otr start");
  await chat.otr("offering");
  await invitation.getByRole("button", { name: "Decline" }).click();
  assert.equal((await chat.otr("declined")).by_peer, true);
  await panel.getByRole("button", { name: "Start OTR" }).click();
  await chat.otr("offered");
  chat.say("/otr decline");
  await chat.otr("declined");
  await panel.getByRole("status").getByText("tom declined", { exact: true }).waitFor();

  // Tom's process dies during a session: the browser sees it broken, and refreshes it
  // with Tom's next process.
  await panel.getByRole("button", { name: "Start OTR" }).click();
  await chat.otr("offered");
  chat.say("/otr accept");
  await chat.otr("established");
  await panel.getByRole("status").getByText("On: messages are off the record").waitFor({ timeout: 30_000 });
  await chat.kill();
  await panel.getByRole("status").getByText("Broken", { exact: true }).waitFor({ timeout: 30_000 });
  const chat2 = await tom.chat("@ana");
  await panel.getByRole("button", { name: "Refresh keys" }).click();
  await chat2.next(settled, "the session refreshed with the new process");
  await panel.getByRole("status").getByText("On: messages are off the record").waitFor({ timeout: 30_000 });
  const revived = server.typed("after tom came back: 3606");
  await say(page, revived);
  assert.equal((await chat2.message(revived)).otr, true);
  const revivedBack = server.typed("tom's new process answers: 1259");
  chat2.say(revivedBack);
  await message(page, revivedBack).getByRole("img", { name: "Off the record" }).waitFor();
  await panel.getByRole("button", { name: "End OTR" }).click();
  assert.equal((await chat2.otr("ended")).by_peer, true);
  await chat2.quit();

  // Nothing off the record is in the history on either side.
  const history = (await tom.json(["read", "@ana", "--limit", "50"])) as ReadMessage[];
  for (const text of [fromAna, fromTom, again, answer, refreshedByTom, refreshedByAna, stillTom, revived, revivedBack]) assert.ok(!history.some((m) => m.text === text), text);
  await page.getByRole("button", { name: "Close OTR" }).click();
  await page.reload();
  await page.getByRole("heading", { level: 1, name: /tom/ }).waitFor();
  await messages(page).getByText(fromAna).waitFor({ state: "detached" });
  await shot(page, "47-interop-otr-ended");
});
