// A compromised server, played from inside a browser test: every request and socket
// frame of one person's browser context passes through here on its way to and from
// the real `sotto` binary, and a test rewrites, drops, injects or replays what that
// person's client receives. Only the client is fooled; the server stays honest.
//
//   const evil = await hostileServer(ana);          // before ana's page loads the app
//   evil.rewriteJson("GET", /\/api\/v1\/keys\?/, (json) => swapBundle(json));
//   evil.inject({ type: "keys_changed", user_id: bob });
//   assert.equal(evil.sent("POST", /\/keys$/).length, 0);
import type { Browser, Page, Request, Route, WebSocketRoute } from "playwright-core";
import { type Person, type RunningServer, newPerson } from "./harness";
import { fillSignIn, saveEncryptionPassword } from "./flows";

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface SentRequest {
  method: string;
  path: string;
  /** The request body parsed as JSON, or null. */
  body: Json;
}

interface RestRule {
  method: string;
  path: RegExp;
  rewrite: (json: Json, request: Request) => Json | Promise<Json>;
}

export interface HostileServer {
  /** Rewrites the JSON answer of matching requests (the real answer is fetched first); returns an undo. */
  rewriteJson(method: string, path: RegExp, rewrite: (json: Json, request: Request) => Json | Promise<Json>): () => void;
  /** Answers matching requests with `body` instead of the server's bytes (same status and headers); returns an undo. */
  rewriteBytes(method: string, path: RegExp, rewrite: (body: Buffer) => Buffer): () => void;
  /** Rewrites (or drops, by returning null) each frame the server sends to the page; returns an undo. */
  rewriteFrames(rewrite: (frame: Json) => Json | null): () => void;
  /** Sends a frame to the page as if the server had sent it, on every open socket. */
  inject(frame: Json): void;
  /** Every frame the real server sent to the page so far, parsed. */
  frames: Json[];
  /** The requests the page sent whose method and path (with query) match, in order. */
  sent(method: string, path: RegExp): SentRequest[];
  /** Waits until a frame from the real server matches `pred`; returns it. */
  frame(pred: (frame: Json) => boolean, timeoutMs?: number): Promise<Json>;
}

/**
 * Puts a hostile server between `person`'s browser context and the real one. Install it
 * before the page opens the app: the socket is only intercepted when it connects.
 */
export async function hostileServer(person: Person): Promise<HostileServer> {
  const rules: RestRule[] = [];
  const byteRules: { method: string; path: RegExp; rewrite: (b: Buffer) => Buffer }[] = [];
  const frameRules: ((f: Json) => Json | null)[] = [];
  const sockets = new Set<WebSocketRoute>();
  const frames: Json[] = [];
  const log: SentRequest[] = [];
  const waiters: { pred: (f: Json) => boolean; done: (f: Json) => void }[] = [];

  const pathOf = (url: string) => {
    const u = new URL(url);
    return u.pathname + u.search;
  };

  person.context.on("request", (r) => {
    if (!new URL(r.url()).pathname.startsWith("/api/")) return;
    let body: Json = null;
    try {
      body = r.postData() ? JSON.parse(r.postData()!) : null;
    } catch {
      body = null;
    }
    log.push({ method: r.method(), path: pathOf(r.url()), body });
  });

  await person.context.route(
    (url) => url.pathname.startsWith("/api/v1/") && url.pathname !== "/api/v1/ws",
    async (route: Route) => {
      const req = route.request();
      const path = pathOf(req.url());
      const rule = rules.find((r) => r.method === req.method() && r.path.test(path));
      const bytes = byteRules.find((r) => r.method === req.method() && r.path.test(path));
      if (!rule && !bytes) return route.continue();
      const res = await route.fetch();
      if (bytes) return route.fulfill({ response: res, body: bytes.rewrite(await res.body()) });
      if (!res.ok()) return route.fulfill({ response: res });
      const json = await rule!.rewrite(await res.json(), req);
      return route.fulfill({ response: res, json });
    },
  );

  await person.context.routeWebSocket(/\/api\/v1\/ws$/, (ws) => {
    const server = ws.connectToServer();
    sockets.add(ws);
    ws.onMessage((m) => server.send(m));
    ws.onClose((code, reason) => {
      sockets.delete(ws);
      server.close({ code, reason });
    });
    server.onClose((code, reason) => {
      sockets.delete(ws);
      ws.close({ code, reason });
    });
    server.onMessage((m) => {
      if (typeof m !== "string") return ws.send(m);
      let frame: Json = JSON.parse(m);
      frames.push(frame);
      for (const w of waiters.splice(0)) {
        if (w.pred(frame)) w.done(frame);
        else waiters.push(w);
      }
      for (const rewrite of frameRules) {
        frame = rewrite(frame);
        if (frame === null) return;
      }
      ws.send(JSON.stringify(frame));
    });
  });

  const remover = <T>(list: T[], item: T) => () => {
    const i = list.indexOf(item);
    if (i >= 0) list.splice(i, 1);
  };

  return {
    rewriteJson(method, path, rewrite) {
      const rule = { method, path, rewrite };
      rules.push(rule);
      return remover(rules, rule);
    },
    rewriteBytes(method, path, rewrite) {
      const rule = { method, path, rewrite };
      byteRules.push(rule);
      return remover(byteRules, rule);
    },
    rewriteFrames(rewrite) {
      frameRules.push(rewrite);
      return remover(frameRules, rewrite);
    },
    inject(frame) {
      if (sockets.size === 0) throw new Error("hostile: the page has no open socket to inject into");
      for (const ws of sockets) ws.send(JSON.stringify(frame));
    },
    frames,
    sent(method, path) {
      return log.filter((r) => r.method === method && path.test(r.path));
    },
    frame(pred, timeoutMs = 30_000) {
      const seen = frames.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("hostile: no matching frame from the server in time")), timeoutMs);
        waiters.push({
          pred,
          done: (f) => {
            clearTimeout(timer);
            resolve(f);
          },
        });
      });
    },
  };
}

/** Waits `ms` (for "nothing happened" checks, which can only watch for a while). */
export function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A new user whose browser talks to the server through a hostile one, signed in and
 * with keys set up (the generated encryption password saved).
 */
export async function hostilePerson(browser: Browser, server: RunningServer, name: string): Promise<Person & { evil: HostileServer; login: string; password: string }> {
  const login = `${name} login words 1`;
  await server.createUser(name, login);
  const person = await newPerson(browser);
  const evil = await hostileServer(person);
  await person.page.goto(server.url + "/login");
  await fillSignIn(person.page, name, login);
  await person.page.getByRole("navigation", { name: "Rooms" }).waitFor();
  const password = await saveEncryptionPassword(person.page, server);
  return Object.assign(person, { evil, login, password });
}

/** Calls the API from the page with its session (as the client would); answers the JSON. */
export async function api(page: Page, method: string, path: string, body?: unknown): Promise<Json> {
  return page.evaluate(
    async ({ method, path, body }) => {
      const token = sessionStorage.getItem("sotto.session");
      const res = await fetch(path, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status}`);
      return res.status === 204 ? null : res.json();
    },
    { method, path, body },
  );
}

/** A user's id, looked up by name. */
export async function userIdOf(page: Page, username: string): Promise<string> {
  return (await api(page, "GET", `/api/v1/users/by-name/${encodeURIComponent(username)}`)).id;
}

/** The id of the room the page shows (from its address, /rooms/<id>). */
export function roomIdOf(page: Page): string {
  const m = new URL(page.url()).pathname.match(/^\/rooms\/([^/]+)/);
  if (!m) throw new Error(`hostile: the page shows no room (${page.url()})`);
  return decodeURIComponent(m[1]!);
}
