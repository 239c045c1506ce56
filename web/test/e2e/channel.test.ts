// Encrypted channels with three people in three browsers (Ana, Bob and Cy: usernames
// ana, bob and cyd, as usernames have at least three characters): a private encrypted
// channel created under Advanced settings (E5, E8); a late joiner who reads the history
// with no manual step (E13); a removed member who loses the room and never sees what
// follows, and key rotation (B3); mentions, edits and deletions; encrypted files (E7);
// export as JSON and PDF (E9); the room on a phone. Then a discussion with its own
// Encrypted toggle, and "Enable E2E" / "Disable E2E" on a private channel made without
// encryption (E6). The server never holds the text, the file names or the file bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { deflateSync } from "node:zlib";
import type { Download, Page } from "playwright-core";
import { PHONE, shot } from "./harness";
import { encryptedPerson, inWorkspace, message, messages, openRoom, roomMenu, say, signIn, unlock } from "./flows";

const ARGON2 = { timeout: 30_000 };

/** Waits until no transition or animation runs (a screenshot shows the end state). */
async function settled(page: Page): Promise<void> {
  await page.waitForFunction(() => document.getAnimations().every((a) => a.playState !== "running"));
}

function sidebarRoom(page: Page, name: string) {
  return page.getByRole("navigation", { name: "Rooms" }).getByRole("link", { name });
}

/** "Create new" → "Channel": a private channel, encrypted or not, with members. */
async function createChannel(page: Page, name: string, members: string, encrypted: boolean, shotName?: string): Promise<void> {
  await page.getByRole("button", { name: "Create new" }).click();
  await page.getByRole("menuitem", { name: "Channel", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Create Channel" });
  await dialog.getByLabel("Name").fill(name);
  await dialog.getByLabel("Members").fill(members);
  const priv = dialog.getByRole("switch", { name: "Private" });
  if (!(await priv.isChecked())) await priv.check();
  await dialog.getByText("Advanced settings").click();
  const toggle = dialog.getByRole("switch", { name: "Encrypted" });
  await toggle.setChecked(encrypted);
  if (shotName) {
    await settled(page); // the Advanced settings chevron turns as the section opens
    await shot(page, shotName);
  }
  await dialog.getByRole("button", { name: "Create" }).click();
  await dialog.waitFor({ state: "detached" });
  await page.getByRole("heading", { level: 1, name }).waitFor();
}

/** Clicks `button` and returns the bytes the browser downloaded, with the suggested name. */
async function download(page: Page, click: () => Promise<void>): Promise<{ name: string; bytes: Buffer }> {
  const [d] = await Promise.all([page.waitForEvent("download"), click()]);
  const path = await (d as Download).path();
  return { name: (d as Download).suggestedFilename(), bytes: readFileSync(path) };
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A valid 24x16 PNG with a tEXt chunk carrying `comment` (a marker to scan for). */
function png(comment: string): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const w = 24;
  const h = 16;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) rows.set([40 + x * 8, 90 + y * 6, 200], y * (w * 3 + 1) + 1 + x * 3);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("tEXt", Buffer.from(`Comment\0${comment}`, "latin1")),
    chunk("IDAT", deflateSync(rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function requirePdftotext(): void {
  const r = spawnSync("pdftotext", ["-v"]);
  if (r.error) throw new Error("the export test needs pdftotext (install the Debian package 'poppler-utils'): " + r.error.message);
}

test("encrypted private channel: late joiner, removal and rotation, edits, files, export", async () => {
  requirePdftotext();
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser }) => {
    const ana = await encryptedPerson(browser, server, "ana");
    const bob = await encryptedPerson(browser, server, "bob");
    const cy = await encryptedPerson(browser, server, "cyd");

    // 1. Ana creates a private encrypted channel with Bob.
    await createChannel(ana.page, "launch-plans", "bob", true, "60-channel-create");
    await ana.page.getByRole("img", { name: "Encrypted room" }).waitFor();
    await sidebarRoom(ana.page, "launch-plans").getByRole("img", { name: "Encrypted" }).waitFor();

    await sidebarRoom(bob.page, "launch-plans").getByRole("img", { name: "Encrypted" }).waitFor();
    await openRoom(bob.page, "launch-plans");
    const m1 = server.typed("launch moves to the ninth, keep it quiet");
    await say(ana.page, m1);
    await message(ana.page, m1).getByRole("img", { name: /^Encrypted/ }).waitFor();
    await message(bob.page, m1).getByRole("img", { name: /^Encrypted/ }).waitFor();
    const m2 = server.typed("understood, the press kit waits until then");
    await say(bob.page, m2);
    await message(ana.page, m2).getByRole("img", { name: /^Encrypted/ }).waitFor();
    await shot(ana.page, "61-channel-encrypted");

    // 2. Ana invites Cy, who is online: the channel appears and the history opens by itself.
    await ana.page.getByRole("button", { name: "Members", exact: true }).click();
    const panel = ana.page.getByRole("complementary", { name: "Members" });
    await panel.getByLabel("Add people").fill("cyd");
    await panel.getByRole("button", { name: "Invite" }).click();
    await panel.getByRole("list", { name: "Room members" }).getByText("@cyd").waitFor();
    await shot(ana.page, "62-channel-members");
    await sidebarRoom(cy.page, "launch-plans").waitFor();
    await openRoom(cy.page, "launch-plans");
    await message(cy.page, m1).getByRole("img", { name: /^Encrypted/ }).waitFor(ARGON2);
    await message(cy.page, m2).waitFor();
    assert.equal(await messages(cy.page).getByText("Waiting for encryption key").count(), 0, "every message opened");
    await shot(cy.page, "63-channel-late-joiner");

    // 3. Ana removes Bob: the room leaves his sidebar, and what follows never reaches his page.
    await panel.getByRole("button", { name: "Remove bob" }).click();
    await panel.getByRole("list", { name: "Room members" }).getByText("@bob").waitFor({ state: "detached" });
    await sidebarRoom(bob.page, "launch-plans").waitFor({ state: "detached" });
    const m3 = server.typed("bob is off the project; the new budget is 1.2M");
    await say(ana.page, m3);
    await message(cy.page, m3).getByRole("img", { name: /^Encrypted/ }).waitFor();
    assert.equal(await bob.page.getByText(m3).count(), 0);
    assert.ok(!(await bob.page.content()).includes(m3), "the removed member's page never holds the new text");

    await ana.page.getByRole("button", { name: "Close Members" }).click();
    await roomMenu(ana.page, "Rotate key");
    const m4 = server.typed("fresh key, same plan");
    await say(ana.page, m4);
    await message(cy.page, m4).getByRole("img", { name: /^Encrypted/ }).waitFor();
    const r4 = server.typed("reading you after the rotation");
    await say(cy.page, r4);
    await message(ana.page, r4).waitFor();
    assert.ok(!(await bob.page.content()).includes(m4));

    // 4. A mention is highlighted for Cy; an edit shows "(edited)"; a deletion shows as such.
    const mention = server.typed("@cyd can you draft the announcement");
    await say(ana.page, mention);
    const mentioned = message(cy.page, "can you draft the announcement");
    await mentioned.waitFor();
    assert.match((await mentioned.getAttribute("aria-label"))!, /mentions you/);
    assert.match((await mentioned.getAttribute("class"))!, /\bmentioned\b/);
    assert.doesNotMatch((await message(ana.page, "can you draft the announcement").getAttribute("aria-label"))!, /mentions you/);

    const typo = server.typed("the venue is the old boathuose");
    await say(ana.page, typo);
    await message(cy.page, typo).waitFor();
    await message(ana.page, typo).getByRole("button", { name: "Message actions for ana" }).click();
    await ana.page.getByRole("menuitem", { name: "Edit" }).click();
    const fixed = server.typed("the venue is the old boathouse");
    await ana.page.getByRole("textbox", { name: "Edit message" }).fill(fixed);
    await ana.page.getByRole("button", { name: "Save" }).click();
    await message(cy.page, fixed).getByText("(edited)").waitFor();
    await message(cy.page, typo).waitFor({ state: "detached" });

    const oops = server.typed("wrong room, ignore this");
    await say(ana.page, oops);
    await message(cy.page, oops).waitFor();
    await message(ana.page, oops).getByRole("button", { name: "Message actions for ana" }).click();
    await ana.page.getByRole("menuitem", { name: "Delete" }).click();
    await message(cy.page, oops).waitFor({ state: "detached" });
    await messages(cy.page).getByText("Message deleted").waitFor();
    await shot(cy.page, "64-channel-mention-edit-delete");

    // 5. Files: encrypted on Ana's device, with a progress bar; Cy gets the same bytes.
    const fileMarker = server.typed("SOTTO-PLAN-FILE-MARKER-5c81e0");
    const planBytes = Buffer.concat([randomBytes(150_000), Buffer.from(fileMarker, "ascii"), randomBytes(150_000)]);
    const planName = server.typed("q3-launch-plan.bin");
    // The upload is held until the bar has been seen, so a fast machine cannot skip it.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await ana.page.route("**/api/v1/rooms/*/files*", async (route) => {
      await held;
      await route.continue();
    });
    await ana.page.getByLabel("Choose a file to upload").setInputFiles({ name: planName, mimeType: "application/octet-stream", buffer: planBytes });
    const bar = ana.page.getByRole("progressbar", { name: `Upload of ${planName}` });
    await bar.waitFor();
    await shot(ana.page, "65-channel-upload-progress");
    release();
    await bar.waitFor({ state: "detached" });
    await ana.page.unroute("**/api/v1/rooms/*/files*");
    const got = await download(cy.page, () => message(cy.page, planName).getByRole("button", { name: `Download ${planName}` }).click());
    assert.equal(got.name, planName);
    assert.equal(sha256(got.bytes), sha256(planBytes), "Cy's download has the bytes Ana uploaded");

    const imageMarker = server.typed("SOTTO-SKETCH-MARKER-93d2aa");
    const imageName = server.typed("whiteboard-sketch.png");
    await ana.page.getByLabel("Choose a file to upload").setInputFiles({ name: imageName, mimeType: "image/png", buffer: png(imageMarker) });
    const preview = cy.page.getByRole("img", { name: imageName });
    await preview.waitFor();
    await ana.page.getByRole("img", { name: imageName }).waitFor();
    assert.ok(await preview.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth === 24), "the preview decodes");
    await shot(cy.page, "66-channel-files");

    // 6. Export two messages as JSON and as PDF, decrypted on Ana's device.
    await roomMenu(ana.page, "Export messages");
    await message(ana.page, m1).getByRole("checkbox", { name: "Select message from ana" }).check();
    await message(ana.page, m2).getByRole("checkbox", { name: "Select message from bob" }).check();
    await ana.page.getByRole("button", { name: "Select 2 messages" }).click();
    const exportPanel = ana.page.getByRole("complementary", { name: "Export messages" });
    await exportPanel.getByRole("radio", { name: "JSON" }).check();
    await shot(ana.page, "67-channel-export");
    const json = await download(ana.page, () => exportPanel.getByRole("button", { name: "Download" }).click());
    assert.match(json.name, /\.json$/);
    const exported = JSON.stringify(JSON.parse(json.bytes.toString("utf8")));
    for (const text of [m1, m2]) assert.ok(exported.includes(JSON.stringify(text)), `the JSON export holds ${JSON.stringify(text)}`);
    assert.ok(!exported.includes(m3), "only the selected messages");

    await exportPanel.getByRole("radio", { name: "PDF" }).check();
    const pdf = await download(ana.page, () => exportPanel.getByRole("button", { name: "Download" }).click());
    assert.match(pdf.name, /\.pdf$/);
    assert.equal(pdf.bytes.subarray(0, 5).toString("latin1"), "%PDF-");
    const pdfText = spawnSync("pdftotext", ["-", "-"], { input: pdf.bytes });
    assert.equal(pdfText.status, 0, `pdftotext failed: ${pdfText.stderr}`);
    const plain = pdfText.stdout.toString("utf8").replace(/\s+/g, " ");
    for (const text of [m1, m2]) assert.ok(plain.includes(text), `the PDF export holds ${JSON.stringify(text)}`);
    await exportPanel.getByRole("button", { name: "Close Export messages" }).click();

    // 8. On a phone: the room with the sidebar collapsed, then open.
    const cyPhone = await signIn(browser, server, "cyd", cy.login, PHONE);
    await unlock(cyPhone.page, cy.password);
    await cyPhone.page.getByRole("button", { name: "Show rooms" }).click();
    await sidebarRoom(cyPhone.page, "launch-plans").click();
    await cyPhone.page.getByRole("heading", { level: 1, name: "launch-plans" }).waitFor();
    await message(cyPhone.page, fixed).waitFor();
    await cyPhone.page.getByRole("img", { name: imageName }).waitFor();
    // The first messages, whose key Bob may have handed to Cy before he was removed, open
    // in this new session too: Cy's own copy of that key replaced Bob's on the server.
    await messages(cyPhone.page).evaluate((el) => (el.scrollTop = 0));
    await message(cyPhone.page, m1).waitFor(ARGON2);
    await message(cyPhone.page, m2).waitFor();
    assert.equal(await messages(cyPhone.page).getByText("Waiting for encryption key").count(), 0, "the oldest messages open in a new session");
    await messages(cyPhone.page).evaluate((el) => (el.scrollTop = el.scrollHeight));
    await settled(cyPhone.page);
    await shot(cyPhone.page, "68-channel-phone-room");
    await cyPhone.page.getByRole("button", { name: "Show rooms" }).click();
    await sidebarRoom(cyPhone.page, "launch-plans").waitFor();
    await settled(cyPhone.page);
    await shot(cyPhone.page, "69-channel-phone-rooms-open");
  });
});

test("encrypted discussion, and Enable E2E / Disable E2E on a private channel", async () => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser }) => {
    const ana = await encryptedPerson(browser, server, "ana");
    const bob = await encryptedPerson(browser, server, "bob");

    // A private channel made without encryption: its first message is plain (not typed
    // as a secret: the server may keep it).
    await createChannel(ana.page, "ops", "bob", false);
    assert.equal(await ana.page.getByRole("img", { name: "Encrypted room" }).count(), 0);
    const plainText = "standup moves to 10:30";
    await say(ana.page, plainText);
    assert.equal(await message(ana.page, plainText).getByRole("img", { name: /^Encrypted/ }).count(), 0);

    // A discussion under it, with its own Encrypted toggle.
    await ana.page.getByRole("button", { name: "Create new" }).click();
    await ana.page.getByRole("menuitem", { name: "Discussion" }).click();
    const dialog = ana.page.getByRole("dialog", { name: "Create Discussion" });
    await dialog.getByLabel("Parent channel or team").selectOption({ label: "ops · private" });
    await dialog.getByLabel("Name").fill("incident-42");
    await dialog.getByLabel("Members").fill("bob");
    await dialog.getByRole("switch", { name: "Encrypted" }).check();
    await shot(ana.page, "70-discussion-create");
    await dialog.getByRole("button", { name: "Create" }).click();
    await ana.page.getByRole("heading", { level: 1, name: "incident-42" }).waitFor();
    await ana.page.getByRole("img", { name: "Encrypted room" }).waitFor();
    const d1 = server.typed("the root cause is the expired certificate");
    await say(ana.page, d1);
    await message(ana.page, d1).getByRole("img", { name: /^Encrypted/ }).waitFor();
    await sidebarRoom(bob.page, "incident-42").getByRole("img", { name: "Encrypted" }).waitFor();
    await openRoom(bob.page, "incident-42");
    await message(bob.page, d1).getByRole("img", { name: /^Encrypted/ }).waitFor(ARGON2);
    await shot(bob.page, "71-discussion-encrypted");

    // "Enable E2E" on the plain channel: the key icon appears, new messages are encrypted.
    await openRoom(ana.page, "ops");
    await openRoom(bob.page, "ops");
    await roomMenu(ana.page, "Enable E2E");
    await ana.page.getByRole("img", { name: "Encrypted room" }).waitFor();
    await bob.page.getByRole("img", { name: "Encrypted room" }).waitFor();
    const e1 = server.typed("from now on this channel is private to us");
    await say(ana.page, e1);
    await message(ana.page, e1).getByRole("img", { name: /^Encrypted/ }).waitFor();
    await message(bob.page, e1).getByRole("img", { name: /^Encrypted/ }).waitFor(ARGON2);
    const e2 = server.typed("agreed, nothing about the incident outside here");
    await say(bob.page, e2);
    await message(ana.page, e2).getByRole("img", { name: /^Encrypted/ }).waitFor();
    await message(bob.page, plainText).waitFor();
    await shot(ana.page, "72-channel-e2e-enabled");

    // "Disable E2E": new messages are plain again; the encrypted ones stay readable.
    await roomMenu(ana.page, "Disable E2E");
    await ana.page.getByRole("img", { name: "Encrypted room" }).waitFor({ state: "detached" });
    await bob.page.getByRole("img", { name: "Encrypted room" }).waitFor({ state: "detached" });
    const after = "back to plain text for the lunch order";
    await say(ana.page, after);
    await message(bob.page, after).waitFor();
    assert.equal(await message(bob.page, after).getByRole("img", { name: /^Encrypted/ }).count(), 0);
    await message(bob.page, e1).getByRole("img", { name: /^Encrypted/ }).waitFor();
    await shot(bob.page, "73-channel-e2e-disabled");
  });
});
