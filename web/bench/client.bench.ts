// The browser client's benchmark (docs/benchmarks.md, "Browser client"): bundle size,
// first paint of a room, unlocking at the default Argon2id parameters, opening pages of
// 50 encrypted messages, scrolling back through a long encrypted room, and what verifying
// a page's signatures costs a message. A real server and Chromium on loopback; the room
// is filled by the terminal client, so every message is a real envelope the browser must
// verify and decrypt.
//
//   node scripts/bench.mjs              10,000 messages
//   BENCH_MESSAGES=2000 node scripts/bench.mjs
import { build } from "esbuild";
import type { Page } from "playwright-core";
import type { pippenger } from "@noble/curves/abstract/curve.js";
import type { ed25519 } from "@noble/curves/ed25519.js";
import type * as Primitives from "../src/crypto/primitives";
import type * as Cases from "../test/unit/ed25519cases";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { launchBrowser, newPerson, sottoBin, startServer, webDir } from "../test/e2e/harness";
import { adminSettings, saveEncryptionPassword, setupAdmin, signIn } from "../test/e2e/flows";

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10_000);

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

function bundleSizes(): { file: string; bytes: number; gzip: number }[] {
  const dir = join(webDir, "dist", "assets");
  return readdirSync(dir).map((file) => {
    const bytes = readFileSync(join(dir, file));
    return { file, bytes: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
  });
}

/** Runs the terminal client with a profile; fails on a non-zero exit. */
function cli(profile: string, args: string[], input = ""): string {
  const r = spawnSync(sottoBin(), [...args, "--profile", profile], { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sotto ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/**
 * Sends `count` messages through one `sotto chat --plain` session, within the server's
 * send limit (a burst of 300, then one per 50 ms; `SEND_BURST`, `SEND_EVERY`).
 */
async function fill(profile: string, room: string, count: number): Promise<number> {
  const start = Date.now();
  const chat = spawn(sottoBin(), ["chat", room, "--plain", "--json", "--profile", profile], { stdio: ["pipe", "pipe", "inherit"] });
  let seen = 0;
  let buffered = "";
  const done = new Promise<void>((res, rej) => {
    chat.stdout.on("data", (c: Buffer) => {
      buffered += c.toString("utf8");
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.includes('"type":"message"') && ++seen === count) res();
        if (line.includes('"type":"error"')) rej(new Error(line));
      }
    });
    chat.on("exit", (code) => (seen < count ? rej(new Error(`chat exited (${code}) after ${seen}`)) : res()));
  });
  for (let i = 0; i < count; i++) {
    const due = start + Math.max(0, i - 250) * 52;
    if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
    if (!chat.stdin.write(`message ${i} of the long encrypted room, padded a little so it reads like chat\n`)) {
      await new Promise((r) => chat.stdin.once("drain", r));
    }
  }
  await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error("fill timed out")), 30 * 60_000))]);
  chat.stdin.end("/quit\n");
  return (Date.now() - start) / 1000;
}

/** What the signature measurement loads into the page (its own copy, not the app's modules). */
type SigBench = typeof Primitives & typeof Cases & { ed25519: typeof ed25519; pippenger: typeof pippenger };

/**
 * Per-message cost of verifying a page of 50 signatures in Chromium: the former path (one
 * `ed25519VerifyAsync` per message, as it was before the batch), the batch, the
 * pure-script reference, and the multi-scalar multiplication a batch equation would need.
 * First checks that, in Chromium, the batch answers every crafted case as the reference.
 */
async function signatureCosts(page: Page) {
  const bundle = await build({
    stdin: {
      contents: [
        'export * from "../src/crypto/primitives";',
        'export * from "../test/unit/ed25519cases";',
        'export { ed25519 } from "@noble/curves/ed25519.js";',
        'export { pippenger } from "@noble/curves/abstract/curve.js";',
      ].join("\n"),
      resolveDir: join(webDir, "bench"),
      loader: "ts",
    },
    bundle: true,
    format: "iife",
    globalName: "sottoSigBench",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "warning",
  });
  await page.evaluate(`${bundle.outputFiles[0]!.text}; globalThis.sottoSigBench = sottoSigBench;`);
  return page.evaluate(async () => {
    const S = (globalThis as unknown as { sottoSigBench: SigBench }).sottoSigBench;
    const { Point } = S.ed25519;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const time = async (f: () => unknown) => {
      const t0 = performance.now();
      await f();
      return performance.now() - t0;
    };

    const cases = [...S.ed25519Cases(), ...S.pageOf50(23)];
    const got = await S.ed25519VerifyBatch(cases);
    const disagree = cases.filter((c, i) => got[i] !== S.ed25519Verify(c.publicKey, c.message, c.signature) || (c.expect !== undefined && got[i] !== c.expect)).map((c) => c.name);

    // The former per-message path, kept here only for the comparison: A and R decoded in
    // script, the key imported each time, then WebCrypto's verify.
    const formerVerifyAsync = async (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => {
      if (signature.length !== 64 || !S.ed25519IsValidPublicKey(publicKey)) return false;
      try {
        const rBytes = signature.subarray(0, 32);
        const r = Point.fromBytes(rBytes, false);
        if (r.isSmallOrder() || !r.toBytes().every((b, i) => b === rBytes[i])) return false;
        if (S.le(signature.subarray(32, 64)) >= Point.Fn.ORDER) return false;
        const key = await crypto.subtle.importKey("raw", Uint8Array.from(publicKey), { name: "Ed25519" }, false, ["verify"]);
        return await crypto.subtle.verify({ name: "Ed25519" }, key, Uint8Array.from(signature), Uint8Array.from(message));
      } catch {
        return false;
      }
    };

    // Pages of 50 envelope-sized signing inputs (400 bytes) by one sender, a new sender
    // each round so the batch meets its key first cold, then warm (cached).
    const rounds = 12;
    const former: number[] = [];
    const cold: number[] = [];
    const warm: number[] = [];
    for (let round = 0; round <= rounds; round++) {
      const seed = crypto.getRandomValues(new Uint8Array(32));
      const publicKey = S.ed25519PublicKey(seed);
      const items = Array.from({ length: 50 }, () => {
        const message = crypto.getRandomValues(new Uint8Array(400));
        return { publicKey, message, signature: S.ed25519Sign(seed, message) };
      });
      const f = await time(() => Promise.all(items.map((x) => formerVerifyAsync(x.publicKey, x.message, x.signature))));
      const c = await time(() => S.ed25519VerifyBatch(items));
      const w = await time(() => S.ed25519VerifyBatch(items));
      if (round === 0) continue; // warm-up
      former.push(f / 50);
      cold.push(c / 50);
      warm.push(w / 50);
    }

    const one = S.pageOf50(-1)[0]!;
    const pure: number[] = [];
    for (let i = 0; i < 20; i++) pure.push(await time(() => S.ed25519Verify(one.publicKey, one.message, one.signature)));

    // What one batch equation over 50 signatures by 50 senders needs at least: decoding
    // the 50 R, and one MSM over 101 points (B, 50 A, 50 R) with 128-bit z_i on the R.
    const rand = (bytes: number) => S.le(crypto.getRandomValues(new Uint8Array(bytes)));
    const decode: number[] = [];
    const msm: number[] = [];
    for (let i = 0; i < 5; i++) {
      const sigs = Array.from({ length: 50 }, (_, j) => S.ed25519Sign(crypto.getRandomValues(new Uint8Array(32)), Uint8Array.of(i, j)));
      let rs: InstanceType<typeof Point>[] = [];
      decode.push(await time(() => (rs = sigs.map((s) => Point.fromBytes(s.subarray(0, 32))))));
      const as = Array.from({ length: 50 }, () => Point.BASE.multiply((rand(32) % (Point.Fn.ORDER - 1n)) + 1n));
      const points = [Point.BASE, ...as, ...rs];
      const scalars = [rand(32) % Point.Fn.ORDER, ...as.map(() => rand(32) % Point.Fn.ORDER), ...rs.map(() => rand(16))];
      msm.push(await time(() => S.pippenger(Point, points, scalars)));
    }

    return {
      chromiumAgreement: { cases: cases.length, disagree },
      perMessageMsPageOf50: { formerPath: +median(former).toFixed(3), batchKeyCold: +median(cold).toFixed(3), batchKeyCached: +median(warm).toFixed(3), rounds },
      pureScriptOneSignatureMs: +median(pure).toFixed(2),
      batchEquationOf50: { decode50RMs: +median(decode).toFixed(1), msm101PointsMs: +median(msm).toFixed(1) },
    };
  });
}

async function main(): Promise<void> {
  const sizes = bundleSizes();
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const admin = await setupAdmin(browser, server);
    await adminSettings(admin.page, ["Enable E2E encryption"]);
    await admin.context.close();
    await server.createUser("ana", "ana login words 1");
    await server.createUser("tom", "tom login words 1");

    const ana = await signIn(browser, server, "ana", "ana login words 1");
    const password = await saveEncryptionPassword(ana.page, server);

    const tom = mkdtempSync(join(tmpdir(), "sotto-bench-tom-"));
    cli(tom, ["login", "--server", server.url, "--username", "tom", "--password-stdin"], "tom login words 1\n");
    cli(tom, ["e2e", "setup"]);
    cli(tom, ["dm", "ana", "--encrypted"]);
    const fillSeconds = await fill(tom, "@ana", MESSAGES);
    const roomId = (JSON.parse(cli(tom, ["room", "list", "--json"]).trim().split("\n")[0]!) as { id: string }).id;

    // First paint of the room: a fresh page load straight into the room, until its
    // newest messages are on screen (locked: the keys are not unlocked yet).
    const paints: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      await ana.page.goto(`${server.url}/rooms/${encodeURIComponent(roomId)}`);
      await ana.page.getByRole("log", { name: /^Messages in/ }).getByRole("article").first().waitFor();
      paints.push(Date.now() - t0);
    }

    // Unlock at the default parameters: the click to the dialog closing, and the
    // client's own measure of the key derivation and opening.
    await ana.page.getByRole("button", { name: "Enter E2EE password" }).click();
    const dialog = ana.page.getByRole("dialog", { name: "Enter E2EE password" });
    await dialog.getByLabel("Encryption password").fill(password);
    const u0 = Date.now();
    await dialog.getByRole("button", { name: "Enable encryption" }).click();
    await dialog.waitFor({ state: "detached", timeout: 60_000 });
    const unlockClick = Date.now() - u0;
    await ana.page.getByText(`message ${MESSAGES - 1} of the long`).waitFor({ timeout: 60_000 });

    // Scroll back to the start: every page of 50 is fetched, verified and decrypted; the
    // frames and the DOM are watched while it scrolls.
    const scroll = await ana.page.evaluate(async (total) => {
      const log = document.querySelector<HTMLElement>("[role=log]")!;
      const frames: number[] = [];
      let maxItems = 0;
      let longTasks = 0;
      const obs = new PerformanceObserver((l) => (longTasks += l.getEntries().length));
      obs.observe({ type: "longtask", buffered: false });
      const startAt = performance.now();
      let last = performance.now();
      const deadline = startAt + 20 * 60_000;
      while (!document.body.textContent!.includes("This is the start of the conversation.") && performance.now() < deadline) {
        log.scrollTop = Math.max(0, log.scrollTop - 400);
        await new Promise((r) => requestAnimationFrame(r));
        const now = performance.now();
        frames.push(now - last);
        last = now;
        maxItems = Math.max(maxItems, log.querySelectorAll("article").length);
      }
      obs.disconnect();
      const pages = performance.getEntriesByName("sotto:open-page").map((e) => e.duration);
      const unlock = performance.getEntriesByName("sotto:unlock").map((e) => e.duration);
      return { seconds: (performance.now() - startAt) / 1000, frames, maxItems, longTasks, pages, unlock, reachedStart: document.body.textContent!.includes("This is the start"), total };
    }, MESSAGES);

    const signatures = await signatureCosts(ana.page);

    const gz = sizes.reduce((n, s) => n + s.gzip, 0);
    const result = {
      messages: MESSAGES,
      fillSeconds,
      bundle: { files: sizes, gzipTotalKiB: +(gz / 1024).toFixed(1) },
      firstPaintMs: { runs: paints, median: pct(paints, 50) },
      unlock: { clickToDoneMs: unlockClick, kdfAndOpenMs: scroll.unlock.map((x) => +x.toFixed(0)) },
      openPageOf50Ms: { pages: scroll.pages.length, p50: +pct(scroll.pages, 50).toFixed(1), p95: +pct(scroll.pages, 95).toFixed(1), max: +Math.max(...scroll.pages).toFixed(1) },
      scrollBack: {
        reachedStart: scroll.reachedStart,
        seconds: +scroll.seconds.toFixed(1),
        frameMs: { p50: +pct(scroll.frames, 50).toFixed(1), p95: +pct(scroll.frames, 95).toFixed(1), p99: +pct(scroll.frames, 99).toFixed(1) },
        longTasks: scroll.longTasks,
        maxMessagesInDom: scroll.maxItems,
      },
      signatures,
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await browser.close();
    await server.stop();
  }
}

await main();
