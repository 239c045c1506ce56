// Why a statement does not extend a room's chain, or a chain is not valid
// (docs/protocol.md §5.2, §5.3). Each kind names the rule that was broken.

import type { DecodeError } from "../encoding";

export type ChainErrorKind =
  | "Decode"
  | "EmptyChain"
  | "WrongRoom"
  | "BadSequence"
  | "BadPrevHash"
  | "MissingCreate"
  | "CreateNotFirst"
  | "UnknownSigner"
  | "BadSignature"
  | "CreatorNotAMember"
  | "DirectMessageNeedsTwo"
  | "NotAMember"
  | "NotAnOwner"
  | "NotAllowedInDirectMessage"
  | "AlreadyMember"
  | "SubjectNotAMember"
  | "AlreadyOwner"
  | "SubjectNotAnOwner"
  | "LastOwner"
  | "RemoveSelf"
  | "Unchanged"
  | "EncryptionOff"
  | "DuplicateEpoch"
  | "KeyUnchanged"
  | "DuplicateKeyChange"
  | "FormerKeyMismatch";

export class ChainError extends Error {
  /** For `Decode`: the decoding error. */
  readonly decode?: DecodeError;
  /** For `BadSequence`: the sequence number that would extend the head, and the one found. */
  readonly expected?: bigint;
  readonly found?: bigint;

  constructor(
    readonly kind: ChainErrorKind,
    detail: { decode?: DecodeError; expected?: bigint; found?: bigint } = {},
  ) {
    super(
      detail.decode
        ? `${kind}: ${detail.decode.message}`
        : detail.expected !== undefined
          ? `${kind}: expected ${detail.expected}, found ${detail.found}`
          : kind,
    );
    this.name = "ChainError";
    if (detail.decode) this.decode = detail.decode;
    if (detail.expected !== undefined) this.expected = detail.expected;
    if (detail.found !== undefined) this.found = detail.found;
  }
}

/** Thrown when a creation statement would list more than 65,535 members. */
export class TooManyMembers extends Error {
  constructor() {
    super("a creation statement lists more than 65,535 members");
    this.name = "TooManyMembers";
  }
}
