// One side of an OTR session (protocol §9.3–9.5, §10.4, §10.6): the handshake states,
// then the ratchet, then the end. Mirrors crates/sotto-crypto/src/otr/session.rs.
//
// Sans I/O: every operation returns the frame to send (or an event with an optional
// reply frame) and the caller relays it; the caller also runs the invitation timeout.
// Randomness comes from an `Rng` argument (production: randomBytes), so tests can
// replay the vectors' draws. Every secret lives only in this object's memory and is
// overwritten when the session ends, refreshes, or a key is used.

import { equalBytes } from "../encoding";
import { type RoomId, type UserId, compareBytes, newRandomId, roomId, userId } from "../ids";
import { randomBytes } from "../primitives";
import { OtrError, asBodyError, asFrameError } from "./error";
import { type Body, type Frame, type Offer, decodeFrame, decodePaddedBody, encodePaddedBody } from "./frame";
import { HandshakeKeys, type Rng, type Role, type Transcript, drawSecret, publicKey } from "./handshake";
import { Ratchet, Serial } from "./ratchet";

/** Where a session stands, for the caller's interface and timeouts. */
export type SessionState = "AwaitingAccept" | "AwaitingConfirm" | "Established" | "Ended";

/** What handling a frame produced. Send `reply` to the peer when there is one. */
export type OtrEvent =
  /** The first handshake completed; the initiator gets its Confirm to send. */
  | { kind: "Established"; reply: Frame | null }
  /** The peer asked for fresh keys: the old keys are wiped; send the Accept. */
  | { kind: "RefreshStarted"; reply: Frame }
  /** A refresh completed with fresh keys; the initiator gets its Confirm to send. */
  | { kind: "Refreshed"; reply: Frame | null }
  /** A message arrived. */
  | { kind: "Message"; body: Body }
  /** The peer declined the offer; the session has ended. */
  | { kind: "Declined" }
  /** The peer ended the session; its keys are wiped. */
  | { kind: "Ended" }
  /** The peer's refresh lost a simultaneous-refresh tie-break; nothing to do. */
  | { kind: "Ignored" };

/** This side: its user id and X25519 agreement secret `ask` (protocol §2). */
export interface OwnParty {
  user: string;
  agreementSecret: Uint8Array;
}

/** The DM peer: its user id and agreement public key `apk`, from its checked, pinned bundle. */
export interface PeerParty {
  user: string;
  agreementPublic: Uint8Array;
}

type State =
  | { kind: "AwaitingAccept"; ephemeral: Uint8Array; ephemeralPublic: Uint8Array; refresh: boolean }
  | { kind: "AwaitingConfirm"; keys: HandshakeKeys; ephemeral: Uint8Array; refresh: boolean }
  | { kind: "Established"; ratchet: Ratchet }
  | { kind: "Ended" };

function wipeState(s: State): void {
  switch (s.kind) {
    case "AwaitingAccept":
      s.ephemeral.fill(0);
      break;
    case "AwaitingConfirm":
      s.keys.wipe();
      s.ephemeral.fill(0);
      break;
    case "Established":
      s.ratchet.wipe();
      break;
    case "Ended":
      break;
  }
}

const ENDED: State = { kind: "Ended" };

/**
 * The state of one side of an OTR session. Operations on one session run one at a
 * time in call order; `end()` takes effect at once, and an operation still running
 * then fails with `Ended`. Errors are `OtrError` (kind only, no secret).
 */
export class OtrSession {
  private st: State = ENDED;
  private readonly serial = new Serial();

  private constructor(
    readonly id: Uint8Array,
    readonly room: RoomId,
    readonly ownUser: UserId,
    private readonly ownIdentity: Uint8Array,
    private readonly ownIdentityPublic: Uint8Array,
    readonly peer: UserId,
    private readonly peerIdentity: Uint8Array,
  ) {}

  private static async create(id: Uint8Array, own: OwnParty, peer: PeerParty, room: string): Promise<OtrSession> {
    if (own.agreementSecret.length !== 32 || peer.agreementPublic.length !== 32) throw new RangeError("agreement keys must be 32 bytes");
    const secret = Uint8Array.from(own.agreementSecret);
    return new OtrSession(id.slice(), roomId(room), userId(own.user), secret, await publicKey(secret), userId(peer.user), peer.agreementPublic.slice());
  }

  /**
   * Starts a session with `peer` in the direct-message `room`: draws the session id
   * and the ephemeral key `e_I`, and returns the session (AwaitingAccept) and the
   * Offer to send. An offer to oneself is `WrongParticipants`.
   */
  static async offer(own: OwnParty, peer: PeerParty, room: string, rng: Rng = randomBytes): Promise<{ session: OtrSession; frame: Frame }> {
    if (own.user === peer.user) throw new OtrError("WrongParticipants");
    const session = await OtrSession.create(newRandomId(rng), own, peer, room);
    const frame = await session.start(rng, false);
    return { session, frame };
  }

  /**
   * Answers an Offer from `peer` in `room` (a Refresh for a session this side no longer
   * knows is answered the same way). Checks, in order: the frame kind
   * (`UnexpectedFrame`), the participants (`WrongParticipants`), the room (`WrongRoom`),
   * then the key agreement (`WeakKey`). Returns the session (AwaitingConfirm) and the
   * Accept to send.
   */
  static async accept(offer: Frame, own: OwnParty, peer: PeerParty, room: string, rng: Rng = randomBytes): Promise<{ session: OtrSession; frame: Frame }> {
    if (offer.kind !== "Offer" && offer.kind !== "Refresh") throw new OtrError("UnexpectedFrame");
    const session = await OtrSession.create(offer.session, own, peer, room);
    try {
      const { state, frame } = await session.respond(offer, false, rng);
      session.st = state;
      return { session, frame };
    } catch (e) {
      session.ownIdentity.fill(0);
      throw e;
    }
  }

  /** The Decline answering an Offer or Refresh (`UnexpectedFrame` for any other frame). */
  static decline(offer: Frame): Frame {
    if (offer.kind !== "Offer" && offer.kind !== "Refresh") throw new OtrError("UnexpectedFrame");
    return { kind: "Decline", session: offer.session.slice() };
  }

  /** Where the session stands. */
  get state(): SessionState {
    return this.st.kind;
  }

  /** Decodes a frame's bytes (`Decode` error) and handles it. */
  receive(bytes: Uint8Array, rng: Rng = randomBytes): Promise<OtrEvent> {
    let frame: Frame;
    try {
      frame = decodeFrame(bytes);
    } catch (e) {
      return Promise.reject(asFrameError(e));
    }
    return this.handle(frame, rng);
  }

  /**
   * Handles a frame from the peer (§9.5). A frame that fails any check leaves the
   * session exactly as it was.
   */
  handle(frame: Frame, rng: Rng = randomBytes): Promise<OtrEvent> {
    return this.serial.run(() => this.handleNow(frame, rng));
  }

  private async handleNow(frame: Frame, rng: Rng): Promise<OtrEvent> {
    if (!equalBytes(frame.session, this.id)) throw new OtrError("UnknownSession");
    const st = this.st;
    if (frame.kind === "Data" && st.kind === "Established") {
      const padded = await st.ratchet.decrypt(frame.header, frame.ciphertext, rng);
      try {
        if (this.st !== st) throw new OtrError("Ended");
        return { kind: "Message", body: decodePaddedBody(padded) };
      } catch (e) {
        throw asBodyError(e);
      } finally {
        padded.fill(0);
      }
    }
    if (st.kind === "Ended") throw new OtrError("Ended");
    if (frame.kind === "End") {
      this.end();
      return { kind: "Ended" };
    }
    if (frame.kind === "Accept" && st.kind === "AwaitingAccept") {
      const t = this.transcript("initiator", st.ephemeralPublic, frame.ephemeral);
      const keys = await HandshakeKeys.derive("initiator", this.ownIdentity, st.ephemeral, t);
      try {
        await keys.verifyAccept(frame.mac);
        const first = drawSecret(rng);
        let ratchet: Ratchet;
        let ratchetKey: Uint8Array;
        try {
          ratchetKey = await publicKey(first);
          ratchet = await Ratchet.initiator(this.id, keys.root, first, frame.ephemeral);
        } finally {
          first.fill(0);
        }
        const mac = await keys.confirmMac(ratchetKey);
        this.commit(st, { kind: "Established", ratchet });
        const reply: Frame = { kind: "Confirm", session: this.id.slice(), ratchetKey, mac };
        return { kind: st.refresh ? "Refreshed" : "Established", reply };
      } finally {
        keys.wipe();
      }
    }
    if (frame.kind === "Confirm" && st.kind === "AwaitingConfirm") {
      await st.keys.verifyConfirm(frame.ratchetKey, frame.mac);
      const ratchet = await Ratchet.responder(this.id, st.keys.root, st.ephemeral, frame.ratchetKey, rng);
      this.commit(st, { kind: "Established", ratchet });
      return { kind: st.refresh ? "Refreshed" : "Established", reply: null };
    }
    if (frame.kind === "Decline" && st.kind === "AwaitingAccept") {
      this.end();
      return { kind: "Declined" };
    }
    if (frame.kind === "Refresh") {
      // Both sides asked at once: the refresh with the smaller ephemeral key goes
      // ahead, and the other side answers it.
      if (st.kind === "AwaitingAccept" && compareBytes(st.ephemeralPublic, frame.ephemeral) < 0) {
        this.checkOffer(frame);
        return { kind: "Ignored" };
      }
      const { state, frame: reply } = await this.respond(frame, true, rng);
      this.commit(st, state);
      return { kind: "RefreshStarted", reply };
    }
    throw new OtrError("UnexpectedFrame");
  }

  /** Encrypts a message body (`NotEstablished`, `Ended`, `BodyTooLarge`, `ChainExhausted`). */
  send(body: Body): Promise<Frame> {
    return this.serial.run(async () => {
      const st = this.st;
      if (st.kind === "Ended") throw new OtrError("Ended");
      if (st.kind !== "Established") throw new OtrError("NotEstablished");
      const padded = encodePaddedBody(body);
      try {
        const { header, ciphertext } = await st.ratchet.encrypt(padded);
        return { kind: "Data", session: this.id.slice(), header, ciphertext };
      } finally {
        padded.fill(0);
      }
    });
  }

  /** Encrypts a text message. */
  sendText(text: string): Promise<Frame> {
    return this.send({ kind: "text", text });
  }

  /** Encrypts a small file (encoded body at most 4 MiB). */
  sendFile(name: string, mediaType: string, bytes: Uint8Array): Promise<Frame> {
    return this.send({ kind: "file", name, mediaType, bytes });
  }

  /**
   * Starts a new handshake under the same session id (§9.4): the ratchet is wiped at
   * once, so nothing can be sent until the peer accepts. Returns the Refresh to send.
   */
  refresh(rng: Rng = randomBytes): Promise<Frame> {
    return this.serial.run(async () => {
      const st = this.st;
      if (st.kind === "Ended") throw new OtrError("Ended");
      if (st.kind !== "Established") throw new OtrError("NotEstablished");
      return this.start(rng, true);
    });
  }

  /** Ends the session at once: wipes every key and returns the End frame for the peer. */
  end(): Frame {
    if (this.st.kind !== "Ended") {
      wipeState(this.st);
      this.ownIdentity.fill(0);
      this.st = ENDED;
    }
    return { kind: "End", session: this.id.slice() };
  }

  /** Replaces the state `from` (wiping it) by `to`, unless the session ended meanwhile. */
  private commit(from: State, to: State): void {
    if (this.st !== from) {
      wipeState(to);
      throw new OtrError("Ended");
    }
    wipeState(from);
    this.st = to;
  }

  /** A fresh ephemeral key and the Offer or Refresh carrying it; this side initiates. */
  private async start(rng: Rng, refresh: boolean): Promise<Frame> {
    const ephemeral = drawSecret(rng);
    const ephemeralPublic = await publicKey(ephemeral);
    const offer: Offer = {
      session: this.id.slice(),
      room: this.room,
      initiator: this.ownUser,
      responder: this.peer,
      ephemeral: ephemeralPublic.slice(),
    };
    wipeState(this.st);
    this.st = { kind: "AwaitingAccept", ephemeral, ephemeralPublic, refresh };
    return { kind: refresh ? "Refresh" : "Offer", ...offer };
  }

  /** Checks that an offer is from the peer to this side (`WrongParticipants`) in this room (`WrongRoom`). */
  private checkOffer(o: Offer): void {
    if (o.initiator !== this.peer || o.responder !== this.ownUser) throw new OtrError("WrongParticipants");
    if (o.room !== this.room) throw new OtrError("WrongRoom");
  }

  /** Answers an offer or refresh as responder; the caller commits the new state. */
  private async respond(o: Offer, refresh: boolean, rng: Rng): Promise<{ state: State; frame: Frame }> {
    this.checkOffer(o);
    const ephemeral = drawSecret(rng);
    try {
      const ownEphemeral = await publicKey(ephemeral);
      const keys = await HandshakeKeys.derive("responder", this.ownIdentity, ephemeral, this.transcript("responder", ownEphemeral, o.ephemeral));
      const mac = await keys.acceptMac();
      return {
        state: { kind: "AwaitingConfirm", keys, ephemeral, refresh },
        frame: { kind: "Accept", session: this.id.slice(), ephemeral: ownEphemeral, mac },
      };
    } catch (e) {
      ephemeral.fill(0);
      throw e;
    }
  }

  private transcript(role: Role, ownEphemeral: Uint8Array, peerEphemeral: Uint8Array): Transcript {
    const mine = role === "initiator";
    return {
      session: this.id,
      room: this.room,
      initiator: mine ? this.ownUser : this.peer,
      responder: mine ? this.peer : this.ownUser,
      initiatorIdentity: mine ? this.ownIdentityPublic : this.peerIdentity,
      responderIdentity: mine ? this.peerIdentity : this.ownIdentityPublic,
      initiatorEphemeral: mine ? ownEphemeral : peerEphemeral,
      responderEphemeral: mine ? peerEphemeral : ownEphemeral,
    };
  }
}

