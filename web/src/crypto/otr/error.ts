// Why an OTR frame was refused or an OTR operation could not run (protocol §10.8).
// Mirrors the `OtrError` enum of crates/sotto-crypto/src/otr/mod.rs. Messages name the
// kind only: never a key, a key-derived value or any plaintext.

import { DecodeError } from "../encoding";

export type OtrErrorKind =
  | "Decode"
  | "UnknownSession"
  | "Ended"
  | "UnexpectedFrame"
  | "NotEstablished"
  | "WrongParticipants"
  | "WrongRoom"
  | "WeakKey"
  | "BadConfirmation"
  | "TooManySkipped"
  | "KeyUnavailable"
  | "DecryptFailed"
  | "Body"
  | "BodyTooLarge"
  | "ChainExhausted";

export class OtrError extends Error {
  /** For `Decode` (malformed frame) and `Body` (malformed decrypted body): why. */
  readonly decode: DecodeError | undefined;

  constructor(
    readonly kind: OtrErrorKind,
    decode?: DecodeError,
  ) {
    super(decode ? `${kind}(${decode.message})` : kind);
    this.name = "OtrError";
    this.decode = decode;
  }
}

/** `Decode(…)` for a malformed frame; other errors pass through unchanged. */
export function asFrameError(e: unknown): unknown {
  return e instanceof DecodeError ? new OtrError("Decode", e) : e;
}

/** `Body(…)` for a malformed decrypted body; other errors pass through unchanged. */
export function asBodyError(e: unknown): unknown {
  return e instanceof DecodeError ? new OtrError("Body", e) : e;
}
