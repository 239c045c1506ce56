// Off-the-record conversations in the browser (O1–O9): one OTR session per two-person
// direct message, driven over the realtime socket. The protocol itself is
// crypto/otr (`OtrSession`, sans I/O); this file relays its frames, runs the
// invitation timeouts, keeps each room's state for the UI, and keeps the messages.
//
// What is kept where:
// - ratchet keys: in this tab's memory only, so a reload loses them and the session
//   shows as broken until someone presses "Refresh keys" (O7);
// - messages (text, sender, time) and the id of the running session: in
//   `sessionStorage` only, never localStorage or IndexedDB, and wiped when the session
//   ends (O6, O8);
// - nothing else: the server relays frames and stores none of them (O4).
//
// OTR messages have ids `otr/<session>/<n>`, outside the server's id alphabet, so they
// can never be edited, resent or deleted as room messages (O8, see `isOtrMessageId`).
// Files are refused during OTR (O9, `fileRefusal`). The rules mirror
// crates/sotto-client/src/otr.rs: offers time out (30 s), a frame for a session this
// tab does not have is shown as broken, ending wipes both sides, and refreshing runs
// the handshake again under the same session id (protocol §9.4).

import { ApiError } from "../api/http";
import type { ServerFrame } from "../api/types";
import { equalBytes, fromBase64, fromHex, toBase64, toHex } from "../crypto/encoding";
import { compareBytes } from "../crypto/ids";
import { type Body, type Frame, OtrError, OtrSession, type OwnParty, type PeerParty, decodeFrame, encodeFrame } from "../crypto/otr";
import { randomBytes } from "../crypto/primitives";
import { humanSize } from "./format";
import type { MessageView, Workspace } from "./workspace";

export type OtrPhase = "off" | "offering" | "offered" | "established" | "refreshing" | "ended" | "broken" | "declined" | "timeout";

/**
 * Where OTR stands in a room. `byPeer`: the other person caused it (offered, ended,
 * declined, started the refresh, or this side answers their invitation while
 * "offering"). `reason`: what happened, in the user's words.
 */
export interface OtrState {
  phase: OtrPhase;
  byPeer?: boolean;
  reason?: string;
}

/** How long an offer, a refresh or an accepted invitation may wait for the other side. */
export const OTR_TIMEOUT_MS = 30_000;

export const FILE_REFUSAL = "Files cannot be sent off the record; end OTR to send files";

const LOST_HERE = "This tab lost its off-the-record keys (the page was reloaded or the session runs elsewhere): press Refresh keys";
const NOT_DELIVERED = "Not delivered";
/** How many sent frame ids are remembered to attribute the server's refusals. */
const SENT_REMEMBERED = 256;

/** Whether a message id is an OTR message's (never a server message id). */
export function isOtrMessageId(id: string): boolean {
  return id.startsWith("otr/");
}

/** Every edit, resend or delete path of room messages calls this first (O8). */
export function refuseOtrMessageId(id: string): void {
  if (isOtrMessageId(id)) throw new Error("An off-the-record message can never be edited, resent or deleted outside off the record.");
}

interface StoredMessage {
  id: string;
  text: string;
  sender: string;
  time: number;
  /** The room's seq when it was written, to place it among the room's messages. */
  after: number;
  /** Why it did not reach the other person, if it did not. */
  undelivered?: string;
}

interface Stored {
  /** The session this tab ran (hex); after a reload it is known to be lost here. */
  session: string | null;
  messages: StoredMessage[];
}

interface Invitation {
  frame: Frame;
  peer: string;
  hex: string;
}

interface Conversation {
  state: OtrState;
  session: OtrSession | null;
  /** The session id (hex) this tab ran but no longer has the keys of. */
  lost: string | null;
  invitation: Invitation | null;
  /** Sessions another tab of this user answered: their frames are not for this tab. */
  elsewhere: Set<string>;
  /** Sessions this tab ran or was invited to: an offer of one again is a replay. */
  past: Set<string>;
  messages: StoredMessage[];
  counter: number;
  timer: ReturnType<typeof setTimeout> | null;
  inviteTimer: ReturnType<typeof setTimeout> | null;
  /** Serialises the operations and received frames of this room. */
  queue: Promise<unknown>;
  /** The peer was online at the last look (for breaking on disconnects). */
  peerOnline: boolean;
}

interface Sent {
  roomId: string;
  hex: string;
  kind: Frame["kind"];
  message: string | null;
}

interface PeerCheck {
  at: number;
  problem: string | null;
}

export interface OtrOptions {
  /** Invitation and handshake timeout (default 30 s). */
  timeoutMs?: number;
}

export class OtrManager {
  private readonly convs = new Map<string, Conversation>();
  private readonly sent = new Map<string, Sent>();
  private readonly peers = new Map<string, PeerCheck>();
  private readonly checking = new Set<string>();
  private frameCounter = 0;
  private readonly prefix = toHex(randomBytes(4));
  private readonly timeoutMs: number;
  private socketOpen: boolean;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly ws: Workspace,
    options: OtrOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? OTR_TIMEOUT_MS;
    this.socketOpen = ws.socket === "open";
    this.unsubscribe = ws.subscribe(() => this.watch());
  }

  /** Stops watching the workspace and ends every session locally (the tab is going away). */
  dispose(): void {
    this.unsubscribe();
    for (const c of this.convs.values()) {
      this.clearTimers(c);
      c.session?.end();
      c.session = null;
    }
  }

  // --- what the UI reads ---

  state(roomId: string): OtrState {
    return { ...this.conv(roomId).state };
  }

  /**
   * Why OTR cannot be used in this room now, or null. In order: the admin switch (when
   * off, show no OTR entry at all), a DM with exactly one other person, this user's
   * unlocked keys, the other person's keys, the other person online.
   */
  unavailable(roomId: string): string | null {
    if (!this.ws.settings?.["otr.enabled"]) return "Off the record is turned off by your workspace administrator.";
    const peer = this.peerOf(roomId);
    if (!peer) return "Off the record works only in a direct message with exactly one other person.";
    const e2e = this.ws.e2e;
    if (!e2e.unlocked) {
      return e2e.status === "locked" ? "Enter your E2EE password first: off the record needs your unlocked encryption keys." : "Off the record needs your end-to-end encryption keys: set them up first (save your encryption password).";
    }
    const check = this.peerCheck(peer);
    if (check?.problem) return check.problem;
    if (!this.ws.online.has(peer)) return `${this.name(peer)} is offline.`;
    return null;
  }

  /**
   * While true, the composer must send through `send` (or refuse), never to the server:
   * a session is running, being set up, or broken and waiting for Refresh keys.
   */
  active(roomId: string): boolean {
    const c = this.conv(roomId);
    return (c.session !== null && c.session.state !== "Ended") || c.lost !== null;
  }

  /** Files are never sent during OTR (O9): the refusal to show, or null. */
  fileRefusal(roomId: string): string | null {
    return this.active(roomId) ? FILE_REFUSAL : null;
  }

  /** The OTR messages of this browser session in the room, oldest first. */
  messages(roomId: string): MessageView[] {
    const c = this.conv(roomId);
    const me = this.ws.me.id;
    return c.messages.map((m) => ({
      id: m.id,
      seq: m.after + 0.5,
      senderId: m.sender,
      time: m.time,
      edited: false,
      deleted: false,
      text: m.text,
      encrypted: true,
      verified: m.sender === me || this.ws.e2e.isVerified(m.sender),
      problem: m.undelivered ? `${NOT_DELIVERED} (${m.undelivered}): ${m.text}` : null,
      otr: true,
      file: null,
      mentionsMe: false,
    }));
  }

  // --- what the user does ---

  /** "Start OTR": checks the preconditions (O2) and sends the invitation (O3). */
  start(roomId: string): Promise<void> {
    return this.run(roomId, async (c) => {
      if (c.session && c.session.state !== "Ended" && c.state.phase !== "broken") throw new Error("An off-the-record conversation already runs here.");
      this.requireAvailable(roomId);
      if (c.invitation) {
        // The other person asked first: starting is accepting.
        await this.answer(roomId, c, c.invitation.frame);
        return;
      }
      const { own, peer } = await this.parties(roomId);
      const { session, frame } = await OtrSession.offer(own, peer, roomId).finally(() => own.agreementSecret.fill(0));
      this.install(roomId, c, session);
      this.set(c, { phase: "offering", byPeer: false });
      this.arm(roomId, c);
      this.transmit(roomId, frame, null);
    });
  }

  /** "Accept" the other person's invitation. */
  accept(roomId: string): Promise<void> {
    return this.run(roomId, async (c) => {
      const inv = c.invitation;
      if (!inv) throw new Error("No off-the-record invitation waits here.");
      // The invitation stays while the user fixes a precondition (unlocking keys).
      this.requireAvailable(roomId);
      await this.answer(roomId, c, inv.frame);
    });
  }

  /** "Decline" the other person's invitation. */
  decline(roomId: string): Promise<void> {
    return this.run(roomId, async (c) => {
      const inv = c.invitation;
      if (!inv) throw new Error("No off-the-record invitation waits here.");
      this.dropInvitation(c);
      const running = c.session !== null && c.session.state !== "Ended";
      this.set(c, running ? { phase: "broken", reason: "the other side lost its session: press Refresh keys" } : { phase: "declined", byPeer: false, reason: "You declined the invitation." });
      this.transmit(roomId, OtrSession.decline(inv.frame), null);
    });
  }

  /**
   * "Refresh keys" (O7): a new handshake under the same session id. Also how a broken
   * session is re-established, whichever side lost it: a side that lost its keys
   * starts the handshake afresh under the id it remembers.
   */
  refresh(roomId: string): Promise<void> {
    return this.run(roomId, async (c) => {
      this.requireAvailable(roomId);
      const s = c.session;
      if (s && s.state === "Established") {
        const frame = await s.refresh();
        this.set(c, { phase: "refreshing", byPeer: false });
        this.arm(roomId, c);
        this.transmit(roomId, frame, null);
        return;
      }
      const id = s && s.state !== "Ended" ? s.id.slice() : c.lost ? fromHex(c.lost) : null;
      if (!id) throw new Error("There is no off-the-record session to refresh here: press Start OTR.");
      const { own, peer } = await this.parties(roomId);
      let first = true;
      // The session id is the first draw of an offer; the rest is fresh randomness.
      const rng = (n: number): Uint8Array => {
        if (first) {
          first = false;
          return id.slice();
        }
        return randomBytes(n);
      };
      const { session, frame } = await OtrSession.offer(own, peer, roomId, rng).finally(() => own.agreementSecret.fill(0));
      if (frame.kind !== "Offer" || !equalBytes(session.id, id)) throw new Error("Could not refresh the off-the-record keys.");
      this.install(roomId, c, session);
      this.set(c, { phase: "refreshing", byPeer: false });
      this.arm(roomId, c);
      this.transmit(roomId, { ...frame, kind: "Refresh" }, null);
    });
  }

  /** "End OTR" for both sides (O8): keys and messages are wiped here at once, then the other side is told. */
  end(roomId: string): Promise<void> {
    return this.run(roomId, async (c) => {
      let frame: Frame | null = null;
      if (c.session && c.session.state !== "Ended") frame = c.session.end();
      else if (c.lost) frame = { kind: "End", session: fromHex(c.lost) };
      if (!frame) {
        if (c.invitation) {
          const inv = c.invitation;
          this.dropInvitation(c);
          this.set(c, { phase: "declined", byPeer: false, reason: "You declined the invitation." });
          this.transmit(roomId, OtrSession.decline(inv.frame), null);
          return;
        }
        throw new Error("No off-the-record conversation runs here.");
      }
      const inv = c.invitation;
      this.dropInvitation(c);
      this.finish(roomId, c, { phase: "ended", byPeer: false, reason: "You ended the off-the-record conversation." });
      try {
        this.transmit(roomId, frame, null);
        // A new invitation that was waiting is declined with it.
        if (inv) this.transmit(roomId, OtrSession.decline(inv.frame), null);
      } catch {
        // Ended here whatever happens to the frame; the other side's session breaks visibly.
      }
    });
  }

  /** Sends a text message off the record; it shows in `messages` at once. */
  send(roomId: string, text: string): Promise<void> {
    return this.run(roomId, async (c) => {
      const s = c.session;
      if (!s || s.state === "Ended") {
        throw new Error(c.lost ? "The off-the-record session is broken: press Refresh keys (nothing was sent)." : "No off-the-record conversation runs here: nothing was sent.");
      }
      if (s.state !== "Established") throw new Error("The off-the-record connection is not ready yet: wait a moment (nothing was sent).");
      let frame: Frame;
      try {
        frame = await s.sendText(text);
      } catch (e) {
        if (e instanceof OtrError && e.kind === "BodyTooLarge") throw new Error("This message is too long to send off the record.");
        throw e;
      }
      const hex = toHex(s.id);
      const m = this.push(roomId, c, hex, this.ws.me.id, text);
      try {
        this.transmit(roomId, frame, m.id);
      } catch (e) {
        m.undelivered = "not connected";
        this.save(roomId, c);
        throw e;
      }
    });
  }

  // --- what arrives ---

  /** Every `otr` and `otr_error` notice of the realtime socket; other notices are ignored. */
  onNotice(n: ServerFrame): void {
    if (n.type === "otr") {
      const { room_id: roomId, sender_id: sender, frame } = n;
      void this.run(roomId, (c) => this.incoming(roomId, c, sender, frame)).catch(() => undefined);
    } else if (n.type === "otr_error") {
      const sent = this.sent.get(n.id);
      if (!sent) return;
      this.sent.delete(n.id);
      void this.run(sent.roomId, async (c) => this.refused(sent, c, n.code, n.message, n.retry_after_secs)).catch(() => undefined);
    }
  }

  private async incoming(roomId: string, c: Conversation, sender: string, b64: string): Promise<void> {
    const peerId = this.peerOf(roomId);
    if (sender === this.ws.me.id || (peerId !== null && sender !== peerId)) return;
    let frame: Frame;
    try {
      frame = decodeFrame(fromBase64(b64));
    } catch {
      if (this.active(roomId)) this.set(c, { phase: "broken", reason: `A damaged off-the-record frame from ${this.name(sender)} was dropped: press Refresh keys if messages are missing.` });
      return;
    }
    const s = c.session;
    if (!s || s.state === "Ended" || !equalBytes(s.id, frame.session)) {
      await this.unknownSession(roomId, c, sender, frame);
      return;
    }
    let event;
    try {
      event = await s.handle(frame);
    } catch (e) {
      if (c.session !== s) return;
      // A refused frame leaves the session as it was (§9.5): a running one goes on.
      const running = s.state === "Established" && c.state.phase === "established";
      this.set(c, { phase: running ? "established" : "broken", reason: frameProblem(e, this.name(sender)) });
      return;
    }
    if (c.session !== s) return;
    switch (event.kind) {
      case "Established":
      case "Refreshed":
        this.clearTimer(c);
        this.set(c, { phase: "established" });
        this.save(roomId, c);
        if (event.reply) this.transmitQuietly(roomId, c, event.reply);
        return;
      case "RefreshStarted":
        this.set(c, { phase: "refreshing", byPeer: true });
        this.arm(roomId, c);
        this.transmitQuietly(roomId, c, event.reply);
        return;
      case "Message":
        this.push(roomId, c, toHex(s.id), sender, bodyText(event.body));
        this.ws.changed();
        return;
      case "Declined":
        this.finish(roomId, c, { phase: "declined", byPeer: true, reason: `${this.name(sender)} declined the invitation.` });
        return;
      case "Ended":
        this.finish(roomId, c, { phase: "ended", byPeer: true, reason: `${this.name(sender)} ended the off-the-record conversation.` });
        return;
      case "Ignored":
        return;
    }
  }

  /** A frame for a session this tab does not run. */
  private async unknownSession(roomId: string, c: Conversation, sender: string, frame: Frame): Promise<void> {
    const hex = toHex(frame.session);
    const name = this.name(sender);
    switch (frame.kind) {
      case "Offer": {
        if (c.past.has(hex)) {
          // Offered before (a replay, §9.2): no new invitation, the state as it was.
          if (c.invitation?.hex !== hex) this.set(c, { ...c.state, reason: `An old off-the-record invitation from ${name} was delivered again and refused.` });
          return;
        }
        const s = c.session;
        if (s && s.state === "AwaitingAccept" && c.state.phase === "offering" && !c.state.byPeer) {
          // Both pressed Start OTR: the offer with the smaller session id goes ahead,
          // and both sides reach the same decision.
          if (compareBytes(frame.session, s.id) < 0) await this.answer(roomId, c, frame);
          return;
        }
        const running = s !== null && s.state !== "Ended";
        this.invite(roomId, c, { frame, peer: sender, hex }, running ? `${name} lost the previous session and asks to start again.` : undefined);
        return;
      }
      case "Refresh":
        if (c.lost === hex) {
          // Lost state (§9.4): this tab had the session and answers like an offer.
          if (this.unavailable(roomId) === null) {
            try {
              await this.answer(roomId, c, frame, true);
              return;
            } catch {
              /* shown below */
            }
          }
          this.set(c, { phase: "broken", reason: `${name} wants to refresh the keys, but: ${this.unavailable(roomId) ?? "that did not work."} Then press Refresh keys.` });
          return;
        }
        this.invite(roomId, c, { frame, peer: sender, hex }, `${name} asks to continue an off-the-record conversation that this tab does not have.`);
        return;
      case "End":
      case "Decline":
        if (c.invitation?.hex === hex) {
          this.dropInvitation(c);
          this.set(c, { phase: "ended", byPeer: true, reason: `${name} withdrew the invitation.` });
        } else if (c.lost === hex) {
          this.finish(roomId, c, { phase: "ended", byPeer: true, reason: `${name} ended the off-the-record conversation.` });
        }
        return;
      case "Confirm":
        if (c.invitation?.hex === hex) {
          // Another tab of this user accepted the invitation.
          this.dropInvitation(c);
          c.elsewhere.add(hex);
          this.set(c, { phase: "off", reason: "The invitation was accepted in another tab or window." });
          return;
        }
        this.strayFrame(roomId, c, hex, false);
        return;
      case "Accept":
        this.strayFrame(roomId, c, hex, false);
        return;
      case "Data":
        this.strayFrame(roomId, c, hex, true);
        return;
    }
  }

  /** A handshake or data frame of a session this tab has not got. */
  private strayFrame(roomId: string, c: Conversation, hex: string, data: boolean): void {
    if (c.elsewhere.has(hex)) return;
    if (c.lost === hex) {
      this.set(c, { phase: "broken", reason: LOST_HERE });
      return;
    }
    // A message of a session this tab never had (it was closed and reopened, or the
    // session runs in another tab): shown as broken, so Refresh keys can take it over.
    if (data && (!c.session || c.session.state === "Ended")) {
      c.lost = hex;
      this.save(roomId, c);
      this.set(c, { phase: "broken", reason: LOST_HERE });
    }
  }

  /** The server did not relay a frame. */
  private refused(sent: Sent, c: Conversation, code: string, message: string, retry?: number): void {
    const reason = this.codeReason(sent.roomId, code, message, retry);
    if (sent.message) {
      const m = c.messages.find((x) => x.id === sent.message);
      if (m) m.undelivered = reason;
      this.save(sent.roomId, c);
      this.set(c, { ...c.state, reason: `${NOT_DELIVERED}: ${reason}` });
      return;
    }
    const s = c.session;
    const current = s !== null && s.state !== "Ended" && toHex(s.id) === sent.hex;
    if (!current || sent.kind === "End" || sent.kind === "Decline") {
      if (sent.kind !== "End" && sent.kind !== "Decline") return;
      this.set(c, { ...c.state, reason });
      return;
    }
    if (sent.kind === "Offer" && c.state.phase === "offering") {
      this.finish(sent.roomId, c, { phase: "off", reason: `Could not start OTR: ${reason}` });
      return;
    }
    // A refused refresh or handshake answer: the session cannot continue as it is.
    s.end();
    c.session = null;
    this.clearTimer(c);
    c.lost = sent.hex;
    this.save(sent.roomId, c);
    this.set(c, { phase: "broken", reason: `${reason}: press Refresh keys when it works again` });
  }

  private codeReason(roomId: string, code: string, message: string, retry?: number): string {
    const peer = this.peerOf(roomId);
    const name = peer ? this.name(peer) : "The other person";
    switch (code) {
      case "peer_offline":
        return `${name} is offline`;
      case "otr_disabled":
        return "off the record is turned off by your workspace administrator";
      case "not_direct":
        return "off the record works only in a direct message with exactly one other person";
      case "keys_missing":
        return `encryption keys are missing (${message})`;
      case "rate_limited":
        return `too many off-the-record messages at once: wait ${retry ?? 1} s and try again`;
      case "peer_busy":
        return `${name}'s connection is busy: try again in a moment`;
      case "room_not_found":
        return "this direct message no longer exists, or you left it";
      case "frame_too_large":
        return "too large to send off the record";
      default:
        return `the server refused it (${message || code})`;
    }
  }

  // --- the room's conversation ---

  private conv(roomId: string): Conversation {
    let c = this.convs.get(roomId);
    if (c) return c;
    const stored = this.load(roomId);
    c = {
      state: { phase: "off" },
      session: null,
      lost: stored.session,
      invitation: null,
      elsewhere: new Set(),
      past: new Set(),
      messages: stored.messages,
      counter: stored.messages.length,
      timer: null,
      inviteTimer: null,
      queue: Promise.resolve(),
      peerOnline: false,
    };
    // A session this tab ran before a reload: its keys are gone.
    if (c.lost) c.state = { phase: "broken", reason: LOST_HERE };
    const peer = this.peerOf(roomId);
    c.peerOnline = peer !== null && this.ws.online.has(peer);
    this.convs.set(roomId, c);
    return c;
  }

  /** Runs one operation of a room after the previous ones. */
  private run<T>(roomId: string, fn: (c: Conversation) => Promise<T>): Promise<T> {
    const c = this.conv(roomId);
    const next = c.queue.then(
      () => fn(c),
      () => fn(c),
    );
    c.queue = next.catch(() => undefined);
    return next.finally(() => this.ws.changed());
  }

  private set(c: Conversation, state: OtrState): void {
    c.state = state;
    this.ws.changed();
  }

  /** Makes `session` the room's session (an older one is dropped here, not ended for the peer). */
  private install(roomId: string, c: Conversation, session: OtrSession): void {
    if (c.session && c.session !== session) c.session.end();
    this.clearTimers(c);
    c.invitation = null;
    c.session = session;
    c.past.add(toHex(session.id));
    c.lost = null;
    this.save(roomId, c);
  }

  /** Answers an offer or a refresh as responder (after the same checks as Start OTR). */
  private async answer(roomId: string, c: Conversation, frame: Frame, refresh = false): Promise<void> {
    const { own, peer } = await this.parties(roomId);
    let result;
    try {
      result = await OtrSession.accept(frame, own, peer, roomId);
    } catch (e) {
      this.dropInvitation(c);
      this.set(c, { phase: "off", reason: `The invitation could not be answered: ${frameProblem(e, this.name(peer.user))}` });
      throw new Error(c.state.reason);
    } finally {
      own.agreementSecret.fill(0);
    }
    this.install(roomId, c, result.session);
    this.set(c, { phase: refresh ? "refreshing" : "offering", byPeer: true });
    this.arm(roomId, c);
    this.transmit(roomId, result.frame, null);
  }

  private invite(roomId: string, c: Conversation, inv: Invitation, reason?: string): void {
    if (c.inviteTimer) clearTimeout(c.inviteTimer);
    c.past.add(inv.hex);
    c.invitation = inv;
    this.set(c, reason ? { phase: "offered", byPeer: true, reason } : { phase: "offered", byPeer: true });
    c.inviteTimer = setTimeout(() => {
      void this.run(roomId, async (cc) => {
        if (cc.invitation !== inv) return;
        this.dropInvitation(cc);
        this.set(cc, { phase: "timeout", byPeer: true, reason: `The invitation from ${this.name(inv.peer)} expired.` });
      });
    }, this.timeoutMs);
  }

  private dropInvitation(c: Conversation): void {
    c.invitation = null;
    if (c.inviteTimer) clearTimeout(c.inviteTimer);
    c.inviteTimer = null;
  }

  /** Starts the handshake timeout of the current session. */
  private arm(roomId: string, c: Conversation): void {
    this.clearTimer(c);
    const s = c.session;
    c.timer = setTimeout(() => {
      void this.run(roomId, async (cc) => {
        if (cc.session !== s || !s || s.state === "Established" || s.state === "Ended") return;
        const peer = this.name(s.peer);
        const waited = cc.state.phase === "offering" && !cc.state.byPeer ? `${peer} did not answer within ${Math.round(this.timeoutMs / 1000)} seconds.` : `The connection with ${peer} was not completed within ${Math.round(this.timeoutMs / 1000)} seconds.`;
        const frame = s.end();
        this.finish(roomId, cc, { phase: "timeout", reason: waited });
        // Withdraws the invitation; the other side may be gone, so a failure is moot.
        this.transmitQuietly(roomId, cc, frame);
      });
    }, this.timeoutMs);
  }

  private clearTimer(c: Conversation): void {
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
  }

  private clearTimers(c: Conversation): void {
    this.clearTimer(c);
    if (c.inviteTimer) clearTimeout(c.inviteTimer);
    c.inviteTimer = null;
  }

  /** The session is over: keys and messages are wiped, and the stored copy with them. */
  private finish(roomId: string, c: Conversation, state: OtrState): void {
    if (c.session && c.session.state !== "Ended") c.session.end();
    c.session = null;
    c.lost = null;
    this.clearTimer(c);
    c.messages = [];
    c.counter = 0;
    this.save(roomId, c);
    this.set(c, state);
  }

  private push(roomId: string, c: Conversation, hex: string, sender: string, text: string): StoredMessage {
    c.counter += 1;
    const m: StoredMessage = { id: `otr/${hex}/${c.counter}`, text, sender, time: Date.now(), after: this.ws.rooms.get(roomId)?.seq ?? 0 };
    c.messages.push(m);
    this.save(roomId, c);
    return m;
  }

  // --- sending frames ---

  /** Sends a frame on the realtime socket (throws when not connected). */
  private transmit(roomId: string, frame: Frame, message: string | null): void {
    const id = `otr-${this.prefix}-${++this.frameCounter}`;
    if (this.sent.size >= SENT_REMEMBERED) {
      const oldest = this.sent.keys().next().value;
      if (oldest !== undefined) this.sent.delete(oldest);
    }
    this.sent.set(id, { roomId, hex: toHex(frame.session), kind: frame.kind, message });
    const ok = this.ws.sendFrame({ type: "otr", id, room_id: roomId, frame: toBase64(encodeFrame(frame)) });
    if (!ok) {
      this.sent.delete(id);
      throw new Error("Not connected to the server: try again when the connection is back.");
    }
  }

  /** Sends a reply of the protocol; when that fails the session is shown as broken. */
  private transmitQuietly(roomId: string, c: Conversation, frame: Frame): void {
    try {
      this.transmit(roomId, frame, null);
    } catch {
      if (frame.kind !== "End" && frame.kind !== "Decline") this.set(c, { phase: "broken", reason: "The connection to the server dropped: press Refresh keys when it is back." });
    }
  }

  // --- preconditions (O2) ---

  private requireAvailable(roomId: string): void {
    const why = this.unavailable(roomId);
    if (why) throw new Error(why);
  }

  /** The other person of a two-person DM, or null. */
  private peerOf(roomId: string): string | null {
    const room = this.ws.rooms.get(roomId);
    if (!room || room.kind !== "direct") return null;
    const members = this.ws.members.get(roomId) ?? [];
    const others = members.filter((m) => m.user_id !== this.ws.me.id);
    if (members.length !== 2 || others.length !== 1) return null;
    return others[0]!.user_id;
  }

  /** This user's agreement secret and the other person's checked, pinned bundle. */
  private async parties(roomId: string): Promise<{ own: OwnParty; peer: PeerParty }> {
    const peerId = this.peerOf(roomId);
    if (!peerId) throw new Error("Off the record works only in a direct message with exactly one other person.");
    const keys = this.ws.e2e.otrKeys();
    let bundle;
    try {
      bundle = await this.ws.e2e.trustedBundle(peerId);
      this.peers.set(peerId, { at: Date.now(), problem: null });
    } catch (e) {
      if (!(e instanceof ApiError)) this.peers.set(peerId, { at: Date.now(), problem: e instanceof Error ? e.message : String(e) });
      throw e;
    }
    return { own: { user: this.ws.me.id, agreementSecret: keys.agreementSecret() }, peer: { user: peerId, agreementPublic: bundle.agreementKey } };
  }

  /** The cached check of the other person's keys; starts one when none is recent. */
  private peerCheck(peer: string): PeerCheck | undefined {
    const known = this.peers.get(peer);
    if ((!known || Date.now() - known.at > 60_000) && !this.checking.has(peer)) {
      this.checking.add(peer);
      this.ws.e2e
        .trustedBundle(peer)
        .then(
          () => this.peers.set(peer, { at: Date.now(), problem: null }),
          (e: unknown) => {
            if (!(e instanceof ApiError)) this.peers.set(peer, { at: Date.now(), problem: e instanceof Error ? e.message : String(e) });
          },
        )
        .finally(() => {
          this.checking.delete(peer);
          this.ws.changed();
        });
    }
    return known;
  }

  /** Breaks sessions visibly when the other person or this tab goes offline (frames are lost then). */
  private watch(): void {
    const open = this.ws.socket === "open";
    const dropped = this.socketOpen && !open;
    this.socketOpen = open;
    for (const [roomId, c] of this.convs) {
      const peer = this.peerOf(roomId);
      const online = peer !== null && this.ws.online.has(peer);
      const left = c.peerOnline && !online;
      c.peerOnline = online;
      const running = c.session !== null && c.session.state !== "Ended";
      if (left && c.invitation) {
        this.dropInvitation(c);
        this.set(c, { phase: "ended", byPeer: true, reason: `${this.name(peer!)} went offline; the invitation is void.` });
      } else if (left && running && c.state.phase !== "broken") {
        this.set(c, { phase: "broken", reason: `${this.name(peer!)} went offline: the other side may have lost its session. Press Refresh keys when they are back.` });
      } else if (dropped && running && c.state.phase !== "broken") {
        this.set(c, { phase: "broken", reason: "The connection to the server dropped and messages may have been lost: press Refresh keys." });
      }
    }
  }

  private name(userId: string): string {
    return this.ws.displayName(userId);
  }

  // --- sessionStorage (O6): messages and the running session's id, nothing else ---

  private key(roomId: string): string {
    return `sotto.otr.${this.ws.me.id}.${roomId}`;
  }

  private load(roomId: string): Stored {
    try {
      const raw = sessionStorage.getItem(this.key(roomId));
      if (!raw) return { session: null, messages: [] };
      const v = JSON.parse(raw) as Partial<Stored>;
      const session = typeof v.session === "string" && /^[0-9a-f]{32}$/.test(v.session) ? v.session : null;
      const messages = Array.isArray(v.messages) ? v.messages.filter(isStoredMessage) : [];
      return { session, messages };
    } catch {
      return { session: null, messages: [] };
    }
  }

  private save(roomId: string, c: Conversation): void {
    const running = c.session && c.session.state !== "Ended" ? toHex(c.session.id) : c.lost;
    try {
      if (!running && c.messages.length === 0) sessionStorage.removeItem(this.key(roomId));
      else sessionStorage.setItem(this.key(roomId), JSON.stringify({ session: running, messages: c.messages } satisfies Stored));
    } catch {
      /* storage full or unavailable: the messages stay in memory for this page */
    }
  }
}

function isStoredMessage(m: unknown): m is StoredMessage {
  if (typeof m !== "object" || m === null) return false;
  const r = m as Record<string, unknown>;
  return typeof r.id === "string" && isOtrMessageId(r.id) && typeof r.text === "string" && typeof r.sender === "string" && typeof r.time === "number" && typeof r.after === "number";
}

function bodyText(body: Body): string {
  if (body.kind === "text") return body.text;
  return `File "${body.name}" (${humanSize(body.bytes.length)}) was sent off the record; files are not kept in the browser.`;
}

/** Why a frame was refused, in the user's words (protocol §10.8). */
function frameProblem(e: unknown, peer: string): string {
  if (!(e instanceof OtrError)) return e instanceof Error ? e.message : String(e);
  switch (e.kind) {
    case "UnknownSession":
    case "Ended":
      return LOST_HERE;
    case "BadConfirmation":
      return `The keys of ${peer} did not match: check their safety number, then press Refresh keys`;
    case "WrongParticipants":
    case "WrongRoom":
      return "A frame that was not for this conversation was refused";
    case "DecryptFailed":
    case "KeyUnavailable":
    case "TooManySkipped":
      return `A message from ${peer} could not be decrypted: press Refresh keys`;
    case "UnexpectedFrame":
      return `${peer} and this tab are out of step: press Refresh keys`;
    default:
      return `A frame from ${peer} was refused (${e.kind}): press Refresh keys`;
  }
}
