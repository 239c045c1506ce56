// The terminal client in browser tests: the same `sotto` binary as the server, run as
// a child process on a profile directory of its own.
//
//   const tom = newTerminal("tom");
//   await tom.ok(["login", "--server", server.url, "--username", "tom", "--password-stdin"], "tom's password\n");
//   const password = (await tom.ok(["e2e", "setup"])).trim();
//   const chat = await tom.chat("@ana");          // `sotto chat @ana --plain --json`
//   chat.say("hello");
//   await chat.next((e) => e.type === "message" && e.text === "hi");
//   await chat.quit();
//   tom.dispose();
//
// Every command gets `--profile DIR` and a HOME of its own, and none of the caller's
// SOTTO_* or XDG_CONFIG_HOME variables, so nothing outside the temporary directory is read.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sottoBin } from "./harness";

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** One event line of `sotto chat --plain --json`. */
export type ChatEvent = Record<string, unknown> & { type: string };

export interface Terminal {
  /** The profile directory (session, keys, pinned contacts). */
  profile: string;
  /** Runs `sotto ARGS --profile DIR` with `stdin` (closed at once when absent). */
  run(args: string[], stdin?: string, env?: Record<string, string>): Promise<Run>;
  /** `run`, failing with the command's standard error unless it exits 0; its stdout. */
  ok(args: string[], stdin?: string, env?: Record<string, string>): Promise<string>;
  /** `ok` with `--json`: one parsed value per output line. */
  json(args: string[]): Promise<unknown[]>;
  /** Starts `sotto chat ROOM --plain --json` and waits for `{"type":"ready"}`. */
  chat(room: string, env?: Record<string, string>): Promise<Chat>;
  /** Kills any chat still running and removes the profile directory. */
  dispose(): void;
}

export interface Chat {
  /** Every event so far, in order. */
  events: ChatEvent[];
  /** Writes one input line (a message or a slash command). */
  say(line: string): void;
  /**
   * The first event after the previous match that satisfies `want` (earlier unmatched
   * events are skipped), waiting up to `timeoutMs`; fails listing what arrived.
   */
  next(want: (e: ChatEvent) => boolean, what?: string, timeoutMs?: number): Promise<ChatEvent>;
  /** `next` for a message whose text is `text`. */
  message(text: string): Promise<ChatEvent>;
  /** `next` for the off-the-record state `state`. */
  otr(state: string): Promise<ChatEvent>;
  /** Closes standard input (end of input quits) and waits for exit code 0. */
  quit(): Promise<void>;
  /** Kills the process at once (no goodbye to anyone) and waits for it to be gone. */
  kill(): Promise<void>;
  /** Standard error so far. */
  stderr(): string;
}

const WAIT = 30_000;

export function newTerminal(name: string): Terminal {
  const home = mkdtempSync(join(tmpdir(), `sotto-term-${name}-`));
  const profile = join(home, "profile");
  const children = new Set<ChildProcess>();
  const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...process.env, HOME: home };
    for (const k of Object.keys(e)) if (k.startsWith("SOTTO_") || k === "XDG_CONFIG_HOME") delete e[k];
    return { ...e, ...extra };
  };
  const describe = (args: string[]) => `sotto ${args.join(" ")}`;

  const run = (args: string[], stdin?: string, extra?: Record<string, string>): Promise<Run> =>
    new Promise((res, rej) => {
      const child = spawn(sottoBin(), [...args, "--profile", profile], { env: env(extra), cwd: home, stdio: ["pipe", "pipe", "pipe"] });
      children.add(child);
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      child.on("error", rej);
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        children.delete(child);
        if (signal) rej(new Error(`${describe(args)}: killed by ${signal}; stderr: ${stderr.trim()}`));
        else res({ code, stdout, stderr });
      });
      child.stdin.end(stdin ?? "");
    });

  const ok = async (args: string[], stdin?: string, extra?: Record<string, string>) => {
    const r = await run(args, stdin, extra);
    if (r.code !== 0) throw new Error(`${describe(args)} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  };

  const chat = async (room: string, extra?: Record<string, string>): Promise<Chat> => {
    const args = ["chat", room, "--plain", "--json", "--profile", profile];
    const child = spawn(sottoBin(), args, { env: env(extra), cwd: home, stdio: ["pipe", "pipe", "pipe"] });
    children.add(child);
    const events: ChatEvent[] = [];
    let stderr = "";
    let cursor = 0;
    let buffered = "";
    let wake: (() => void) | null = null;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const poke = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    child.stdout.on("data", (c: Buffer) => {
      buffered += c.toString("utf8");
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.trim()) continue;
        try {
          events.push(JSON.parse(line) as ChatEvent);
        } catch {
          events.push({ type: "NOT JSON", line });
        }
      }
      poke();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString("utf8");
    });
    child.on("close", (code, signal) => {
      children.delete(child);
      exit = { code, signal };
      poke();
    });
    const seen = () => events.map((e) => "    " + JSON.stringify(e)).join("\n");

    const next = async (want: (e: ChatEvent) => boolean, what = "the expected event", timeoutMs = WAIT): Promise<ChatEvent> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        while (cursor < events.length) {
          const e = events[cursor++]!;
          if (e.type === "NOT JSON") throw new Error(`sotto chat ${room}: a line that is not JSON: ${String(e.line)}`);
          if (want(e)) return e;
        }
        if (exit) {
          throw new Error(`sotto chat ${room} exited (${exit.code ?? exit.signal}) before ${what}; events:\n${seen()}\nstderr: ${stderr.trim()}`);
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`sotto chat ${room}: no ${what} within ${timeoutMs} ms; events:\n${seen()}\nstderr: ${stderr.trim()}`);
        await new Promise<void>((res) => {
          const timer = setTimeout(res, left);
          wake = () => (clearTimeout(timer), res());
        });
      }
    };

    const handle: Chat = {
      events,
      say(line) {
        child.stdin.write(line + "\n");
      },
      next,
      message: (text) => next((e) => e.type === "message" && e.text === text, `message ${JSON.stringify(text)}`),
      otr: (state) => next((e) => e.type === "otr" && e.state === state, `otr ${state}`),
      async quit() {
        child.stdin.end();
        const deadline = Date.now() + WAIT;
        while (!exit && Date.now() < deadline) {
          await new Promise<void>((res) => {
            const timer = setTimeout(res, deadline - Date.now());
            wake = () => (clearTimeout(timer), res());
          });
        }
        if (!exit) {
          child.kill("SIGKILL");
          throw new Error(`sotto chat ${room} did not quit at end of input`);
        }
        const done = exit as { code: number | null; signal: NodeJS.Signals | null };
        if (done.code !== 0) throw new Error(`sotto chat ${room} exited ${done.code ?? done.signal}; stderr: ${stderr.trim()}`);
      },
      async kill() {
        child.kill("SIGKILL");
        while (!exit) {
          await new Promise<void>((res) => {
            const timer = setTimeout(res, 1000);
            wake = () => (clearTimeout(timer), res());
          });
        }
      },
      stderr: () => stderr,
    };
    await next((e) => e.type === "ready", "ready");
    return handle;
  };

  return {
    profile,
    run,
    ok,
    async json(args) {
      const out = await ok([...args, "--json"]);
      return out
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as unknown);
    },
    chat,
    dispose() {
      for (const child of children) child.kill("SIGKILL");
      children.clear();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
