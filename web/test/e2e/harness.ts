// End-to-end harness: the real `sotto` binary on a loopback port with a fresh data
// directory, and Debian's Chromium driven by playwright-core.
//
//   const server = await startServer();
//   const browser = await launchBrowser();
//   try {
//     const ana = await newPerson(browser);
//     await ana.page.goto(server.setupLink);
//     await ana.page.fill("#password", server.typed("ana's secret words"));
//     await shot(ana.page, "setup");
//   } finally {
//     await browser.close();
//     await server.stop(); // fails if a typed string reached the disk or the log in clear
//   }
//
// Any console error or uncaught page error in a person's page fails the test that was
// running (an `afterEach` hook below); a test that expects one takes it with
// `person.takeErrors()`.
import { afterEach } from "node:test";
import { spawn, type ChildProcess } from "node:child_process";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

/** The `web/` directory (the bundled tests run from `web/.build/e2e-<pid>/`). */
export const webDir = findWebDir();
/** Where screenshots and server logs go (git-ignored). */
export const artifactsDir = join(webDir, "test-artifacts");

function findWebDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("harness: cannot find web/package.json above " + import.meta.url);
    dir = up;
  }
  return dir;
}

/** The `sotto` binary: `SOTTO_BIN`, else `../target/debug/sotto` relative to `web/`. */
export function sottoBin(): string {
  const bin = resolve(webDir, process.env.SOTTO_BIN ?? "../target/debug/sotto");
  if (!existsSync(bin)) {
    throw new Error(
      `harness: the sotto binary is missing at ${bin} ` +
        "(build it with `cargo build -p sotto`, or set SOTTO_BIN)",
    );
  }
  return bin;
}

export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  url: string;
  /** The printed one-time first-admin link, `<url>/setup#<token>`. */
  setupLink: string;
  /** The server's fresh data directory (SQLite database, blobs). */
  dataDir: string;
  /** The server's stdout and stderr. */
  logPath: string;
  /** Remembers `text` as something that must never reach the server in clear; returns it. */
  typed(text: string): string;
  /** `createUser(dataDir, …)` for this server; the password is remembered as typed. */
  createUser(username: string, password: string, admin?: boolean): Promise<void>;
  /**
   * Stops the server (SIGTERM, then SIGKILL after 10 s), then fails naming the file if
   * any typed string appears, as UTF-8, in any file under the data directory or in the
   * log, or if the server had exited by itself. The data directory is removed when all
   * is well.
   */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** Runs `sotto serve` on a free loopback port with a fresh temporary data directory. */
export async function startServer(options: { env?: Record<string, string> } = {}): Promise<RunningServer> {
  const bin = sottoBin();
  const dataDir = mkdtempSync(join(tmpdir(), "sotto-e2e-"));
  mkdirSync(join(artifactsDir, "logs"), { recursive: true });
  const logPath = join(artifactsDir, "logs", `server-${new Date().toISOString().replace(/[:.]/g, "-")}-${process.pid}.log`);
  const log = createWriteStream(logPath);
  // Port 0: the kernel picks a free port, and the printed link names it.
  // The serve options come from the command line only, never from a SOTTO_* variable
  // that happens to be set (a database URL or public URL would change what is tested).
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of ["SOTTO_LISTEN", "SOTTO_DATA_DIR", "SOTTO_DATABASE_URL", "SOTTO_PUBLIC_URL"]) delete env[name];
  const child = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
    cwd: dataDir,
    env: { ...env, SOTTO_LOG: process.env.SOTTO_LOG ?? "info", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
  child.on("exit", () => running.delete(child));
  child.stderr!.pipe(log, { end: false });

  const setupLink = await new Promise<string>((res, rej) => {
    let out = "";
    const timer = setTimeout(() => rej(new Error(`harness: no setup link within 30 s; see ${logPath}`)), 30_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      log.write(chunk);
      out += chunk.toString("utf8");
      const link = out.match(/^(http:\/\/127\.0\.0\.1:\d+\/setup#\S+)$/m);
      if (link) {
        clearTimeout(timer);
        res(link[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`harness: sotto serve exited (code ${code}) before printing the setup link; see ${logPath}`));
    });
  });
  const url = setupLink.slice(0, setupLink.indexOf("/setup#"));
  const secrets = new Set<string>();
  let stopped = false;

  return {
    url,
    setupLink,
    dataDir,
    logPath,
    typed(text: string) {
      if (text.length > 0) secrets.add(text);
      return text;
    },
    async createUser(username, password, admin = false) {
      secrets.add(password);
      await createUser(dataDir, username, password, admin);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const died = child.exitCode !== null || child.signalCode !== null;
      if (!died) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await new Promise<void>((res) => log.end(res));
      const found = scanForSecrets([dataDir, logPath], [...secrets]);
      if (found.length > 0) {
        throw new Error(
          "typed text reached the server in clear (data kept in " + dataDir + "):\n" +
            found.map((f) => `  ${JSON.stringify(f.text)} in ${f.file}`).join("\n"),
        );
      }
      if (died) {
        throw new Error(`sotto serve exited during the test (code ${child.exitCode}, signal ${child.signalCode}); see ${logPath}`);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every file under the given paths whose bytes contain one of `texts` as UTF-8. */
export function scanForSecrets(paths: string[], texts: string[]): { file: string; text: string }[] {
  const needles = texts.map((text) => ({ text, bytes: Buffer.from(text, "utf8") }));
  const found: { file: string; text: string }[] = [];
  const scan = (path: string) => {
    if (!existsSync(path)) return;
    if (statSync(path).isDirectory()) {
      for (const name of readdirSync(path)) scan(join(path, name));
      return;
    }
    const bytes = readFileSync(path);
    for (const n of needles) {
      if (bytes.includes(n.bytes)) found.push({ file: path, text: n.text });
    }
  };
  for (const p of paths) scan(p);
  return found;
}

/**
 * `sotto admin create-user --data-dir DIR --username NAME --password-stdin [--admin]`.
 * It writes to the data directory directly, also while the server runs (SQLite waits
 * for the server's writes). An admin created this way closes the setup link.
 */
export async function createUser(dataDir: string, username: string, password: string, admin = false): Promise<void> {
  const args = ["admin", "create-user", "--data-dir", dataDir, "--username", username, "--password-stdin"];
  if (admin) args.push("--admin");
  const child = spawn(sottoBin(), args, { stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (c: Buffer) => (output += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (output += c.toString("utf8")));
  child.stdin.end(password + "\n");
  const code = await new Promise<number | null>((res) => child.on("exit", res));
  if (code !== 0) throw new Error(`harness: sotto admin create-user ${username} failed (${code}): ${output.trim()}`);
}

const chromiumPath = process.env.SOTTO_CHROMIUM ?? "/usr/bin/chromium";

/**
 * Launches Chromium headless. Playwright gives each launch a new, empty user data
 * directory of its own and removes it on close.
 */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(chromiumPath)) {
    throw new Error(`harness: Chromium is missing at ${chromiumPath} (apt-get install chromium)`);
  }
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export interface Person {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught page errors so far, not yet taken. */
  errors: string[];
  /** Returns the errors so far and forgets them, for a test that expects some. */
  takeErrors(): string[];
}

export const DESKTOP = { width: 1440, height: 900 };
export const PHONE = { width: 390, height: 844 };

const people: Person[] = [];

/** A fresh browser context (own cookies and storage) with one page, 1440x900 by default. */
export async function newPerson(
  browser: Browser,
  options: { viewport?: { width: number; height: number } } = {},
): Promise<Person> {
  const context = await browser.newContext({ viewport: options.viewport ?? DESKTOP });
  const page = await context.newPage();
  const person: Person = {
    context,
    page,
    errors: [],
    takeErrors() {
      return person.errors.splice(0);
    },
  };
  page.on("console", (m) => {
    if (m.type() === "error") {
      const where = m.location().url ? ` (${m.location().url}:${m.location().lineNumber})` : "";
      person.errors.push(`console error: ${m.text()}${where}`);
    }
  });
  page.on("pageerror", (e) => person.errors.push(`page error: ${e.stack ?? e.message}`));
  people.push(person);
  return person;
}

// Fails the test that just ran if any page it used logged an error it did not take.
afterEach(() => {
  const errors = people.flatMap((p) => p.takeErrors());
  if (errors.length > 0) {
    throw new Error(`the browser reported ${errors.length} error(s):\n  ${errors.join("\n  ")}`);
  }
});

/** Saves a full-page PNG as web/test-artifacts/<name>.png and returns its path. */
export async function shot(page: Page, name: string): Promise<string> {
  mkdirSync(artifactsDir, { recursive: true });
  const path = join(artifactsDir, `${name.replace(/[^\w.-]+/g, "_")}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
