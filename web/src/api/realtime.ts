// The realtime socket: one per signed-in tab. A browser cannot set Authorization on a
// WebSocket, so the token travels as the second subprotocol (never in the URL). After
// each (re)connect the caller's `resume` rooms are sent, so nothing is missed or doubled.

import type { ServerFrame } from "./types";

export type SocketState = "connecting" | "open" | "closed";

export interface RealtimeHandlers {
  frame(frame: ServerFrame): void;
  state(state: SocketState): void;
  /** The rooms to resume and the last seq seen in each, read at every connect. */
  resumeFrom(): Record<string, number>;
}

const MAX_BACKOFF_MS = 15_000;

export class Realtime {
  private ws: WebSocket | null = null;
  private stopped = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly token: string,
    private readonly handlers: RealtimeHandlers,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = null;
  }

  /** Sends a client frame; false when the socket is not open. */
  send(frame: object): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  private connect(): void {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/ws`;
    this.handlers.state("connecting");
    const ws = new WebSocket(url, ["sotto.v1", `sotto.bearer.${this.token}`]);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      const rooms = Object.entries(this.handlers.resumeFrom());
      for (let i = 0; i < rooms.length; i += 1000) {
        ws.send(JSON.stringify({ type: "resume", rooms: Object.fromEntries(rooms.slice(i, i + 1000)) }));
      }
      this.handlers.state("open");
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(e.data) as ServerFrame;
      } catch {
        return;
      }
      this.handlers.frame(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.handlers.state("closed");
      if (this.stopped) return;
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }
}
