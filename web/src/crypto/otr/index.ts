// Off-the-record one-to-one sessions (protocol §9, §10): a deniable triple
// Diffie-Hellman handshake between two users' agreement keys, then a Double Ratchet.
// Mirrors crates/sotto-crypto/src/otr/mod.rs. Nothing here is signed; the server
// relays frames by session id and never sees keys or content. `OtrSession` is one
// side's state: it does no I/O and keeps no clock, so timeouts are the caller's.

export { OtrError, type OtrErrorKind } from "./error";
export {
  type Accept,
  type Body,
  type Confirm,
  type Data,
  type Frame,
  type FrameKind,
  type Header,
  type Offer,
  MAX_BODY_LEN,
  MAX_FILE_NAME_LEN,
  decodeFrame,
  encodeFrame,
} from "./frame";
export { type Rng } from "./handshake";
export { MAX_SKIPPED_KEYS, MAX_SKIP_PER_STEP } from "./ratchet";
export { type OtrEvent, OtrSession, type OwnParty, type PeerParty, type SessionState } from "./session";
