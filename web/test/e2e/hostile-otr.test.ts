// Off the record between Ana and Bob, both of whose browsers talk through a hostile
// server: it replays Ana's offer to Bob and Bob's accept to Ana while their session runs,
// sends Bob data frames whose ratchet counters say 2^31, replays a message, and, once the
// session has ended, replays the old offer. No second session and no invitation come of
// a replay; each bad frame is refused at once, and the session goes on as it was.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { fromBase64, toBase64 } from "../../src/crypto/encoding";
import { decodeFrame, encodeFrame } from "../../src/crypto/otr";
import { shot } from "./harness";
import { createDirectMessage, inWorkspace, message, messages, openRoom, roomMenu, say } from "./flows";
import { hostilePerson, pause, roomIdOf, userIdOf } from "./hostile";

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const OFFER = 1;
const ACCEPT = 2;
const DATA = 5;

function otrStatus(page: Page) {
  return page.getByRole("complementary", { name: "OTR" }).getByRole("status");
}

function invitation(page: Page) {
  return page.getByRole("alert").filter({ hasText: "wants to start an off-the-record conversation" });
}

/** Whether a socket frame is an OTR frame of `kind`. */
const isOtr = (kind: number) => (f: Json) => f.type === "otr" && fromBase64(f.frame)[1] === kind;

test("hostile server: a replayed OTR offer or accept starts no session; a ratchet counter of 2^31 is a bounded error and the session goes on", async () => {
  await inWorkspace(["Enable E2E encryption", "Enable Off-the-record (OTR)"], async ({ server, browser }) => {
    const ana = await hostilePerson(browser, server, "ana");
    const bob = await hostilePerson(browser, server, "bob");
    await createDirectMessage(ana.page, "bob", true);
    await ana.page.getByRole("heading", { level: 1, name: "bob" }).waitFor();
    const room = roomIdOf(ana.page);
    const anaId = await userIdOf(ana.page, "ana");
    await say(ana.page, server.typed("an ordinary encrypted hello"));
    await openRoom(bob.page, /ana/);

    await roomMenu(ana.page, "OTR");
    await ana.page.getByRole("complementary", { name: "OTR" }).getByRole("button", { name: "Start OTR" }).click();
    await invitation(bob.page).getByRole("button", { name: "Accept" }).click();
    await roomMenu(bob.page, "OTR");
    const on = "On: messages are off the record";
    await otrStatus(ana.page).filter({ hasText: on }).waitFor();
    await otrStatus(bob.page).filter({ hasText: on }).waitFor();
    const offer = await bob.evil.frame(isOtr(OFFER));
    const accept = await ana.evil.frame(isOtr(ACCEPT));
    const fromAna = (frame: Uint8Array) => ({ type: "otr", room_id: room, sender_id: anaId, frame: toBase64(frame) });

    // The offer again, to Bob, and the accept again, to Ana: refused, no invitation, and
    // each session runs on.
    bob.evil.inject(offer);
    await otrStatus(bob.page).filter({ hasText: "out of step" }).waitFor();
    ana.evil.inject(accept);
    await otrStatus(ana.page).filter({ hasText: "out of step" }).waitFor();
    await pause(1_000);
    assert.equal(await invitation(bob.page).count(), 0, "a replayed offer is no invitation");
    await otrStatus(bob.page).filter({ hasText: on }).waitFor();
    await otrStatus(ana.page).filter({ hasText: on }).waitFor();

    const first = server.typed("off the record: first");
    await say(ana.page, first);
    await message(bob.page, first).getByRole("img", { name: "Off the record" }).waitFor();
    const genuine = fromBase64((await bob.evil.frame(isOtr(DATA))).frame);

    // A data frame whose counter says 2^31: refused at once (a ratchet that skipped ahead
    // that far would never finish), the session as it was.
    const huge = decodeFrame(genuine);
    assert.equal(huge.kind, "Data");
    if (huge.kind !== "Data") return;
    const started = Date.now();
    bob.evil.inject(fromAna(encodeFrame({ ...huge, header: { ...huge.header, number: 2 ** 31 } })));
    const refusal = otrStatus(bob.page).filter({ hasText: "A message from ana could not be decrypted" });
    await refusal.waitFor({ timeout: 10_000 });
    assert.ok(Date.now() - started < 10_000, "refused within a bound");
    await otrStatus(bob.page).filter({ hasText: on }).waitFor();
    await shot(bob.page, "hostile-70-otr-huge-counter");
    // The same with a new ratchet key and 2^31 messages in the previous chain, and the
    // genuine frame replayed (its key is gone).
    bob.evil.inject(fromAna(encodeFrame({ ...huge, header: { ...huge.header, number: 0, previousChainLen: 2 ** 31, ratchetKey: new Uint8Array(32).fill(9) } })));
    bob.evil.inject(fromAna(genuine));

    // Unchanged: the next genuine messages open, both ways, each once.
    const second = server.typed("off the record: second");
    await say(ana.page, second);
    await message(bob.page, second).getByRole("img", { name: "Off the record" }).waitFor({ timeout: 10_000 });
    const back = server.typed("off the record: back");
    await say(bob.page, back);
    await message(ana.page, back).getByRole("img", { name: "Off the record" }).waitFor();
    for (const text of [first, second]) assert.equal(await messages(bob.page).getByText(text, { exact: true }).count(), 1, "shown once");
    await otrStatus(bob.page).filter({ hasText: on }).waitFor();

    // Once the session has ended, the old offer is still no invitation.
    await ana.page.getByRole("complementary", { name: "OTR" }).getByRole("button", { name: "End OTR" }).click();
    await otrStatus(bob.page).filter({ hasText: "ana ended the off-the-record conversation" }).waitFor();
    bob.evil.inject(offer);
    await otrStatus(bob.page).filter({ hasText: "An old off-the-record invitation from ana was delivered again and refused" }).waitFor();
    await pause(1_000);
    assert.equal(await invitation(bob.page).count(), 0, "the old offer is no invitation");
    await otrStatus(bob.page).filter({ hasText: "Ended" }).waitFor();
    await shot(bob.page, "hostile-71-otr-replayed-offer");
    // A genuine new offer still is one.
    await ana.page.getByRole("complementary", { name: "OTR" }).getByRole("button", { name: "Start OTR" }).click();
    await invitation(bob.page).waitFor();
  });
});
