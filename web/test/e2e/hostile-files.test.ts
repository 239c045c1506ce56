// The server swaps or truncates the encrypted blob of an image sent in an encrypted
// direct message: the reader's client reports the file as corrupted and never renders
// the image; the honest blob before it previews.
import { test } from "node:test";
import assert from "node:assert/strict";
import { shot } from "./harness";
import { createDirectMessage, encryptedPerson, inWorkspace, message, openRoom, say } from "./flows";
import { hostilePerson } from "./hostile";

/** A valid 1x1 PNG. */
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==", "base64");
const CONTENT = /^\/api\/v1\/files\/[^/]+\/content$/;

test("hostile server: a swapped or truncated attachment blob is reported corrupted and never rendered", async () => {
  await inWorkspace(["Enable E2E encryption"], async ({ server, browser }) => {
    const ana = await hostilePerson(browser, server, "ana");
    const bob = await encryptedPerson(browser, server, "bob");
    await createDirectMessage(ana.page, "bob", true);
    await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
    await say(ana.page, server.typed("send me the site photos"));
    await openRoom(bob.page, /ana/);

    // Honest: the first photo previews on Ana's side. Its blob is kept for the swap.
    let honestBlob: Buffer | null = null;
    const keep = ana.evil.rewriteBytes("GET", CONTENT, (body) => ((honestBlob = body), body));
    const send = async (name: string) => {
      await bob.page.getByLabel("Choose a file to upload").setInputFiles({ name, mimeType: "image/png", buffer: PNG });
      await message(bob.page, name).getByRole("img", { name }).waitFor();
    };
    await send("photo-1.png");
    const first = ana.page.getByRole("img", { name: "photo-1.png" });
    await first.waitFor();
    assert.ok(await first.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth === 1), "the honest preview decodes");
    keep();
    assert.ok(honestBlob, "the honest blob passed through");

    // Truncated: the last chunk's end is cut off.
    const truncate = ana.evil.rewriteBytes("GET", CONTENT, (body) => body.subarray(0, body.length - 7));
    await send("photo-2.png");
    const corrupted = "This file is corrupted: it is not the file that was sent.";
    await message(ana.page, "photo-2.png").getByRole("alert").filter({ hasText: corrupted }).waitFor();
    assert.equal(await ana.page.getByRole("img", { name: "photo-2.png" }).count(), 0, "the truncated image is never rendered");
    truncate();

    // Swapped: another file's whole, valid blob (same size) in place of this one.
    ana.evil.rewriteBytes("GET", CONTENT, () => honestBlob!);
    await send("photo-3.png");
    await message(ana.page, "photo-3.png").getByRole("alert").filter({ hasText: corrupted }).waitFor();
    assert.equal(await ana.page.getByRole("img", { name: "photo-3.png" }).count(), 0, "the swapped image is never rendered");
    // Asked to save it, Ana gets the same refusal, not a file.
    let downloaded = false;
    ana.page.on("download", () => (downloaded = true));
    await message(ana.page, "photo-3.png").getByRole("button", { name: "Download photo-3.png" }).click();
    await message(ana.page, "photo-3.png").getByRole("alert").filter({ hasText: corrupted }).waitFor();
    assert.equal(downloaded, false, "nothing was saved");
    await shot(ana.page, "hostile-30-corrupted-attachments");
  });
});
