// The room rules (docs/protocol.md §5.3): who may make which change, checked after the
// link checks and before a statement is applied (§5.6).

import type { UserId } from "../ids";
import { randomIdToHex } from "../ids";
import { equalBytes } from "../encoding";
import { ChainError } from "./errors";
import type { RoomState } from "./state";
import type { Create, Statement } from "./statement";
import { isDirect } from "./statement";

/** Checks a creation statement's content. */
export function checkCreate(actor: UserId, c: Create): void {
  if (!c.members.includes(actor)) throw new ChainError("CreatorNotAMember");
  if (c.kind === "DirectMessage" && new Set(c.members).size !== 2) throw new ChainError("DirectMessageNeedsTwo");
}

/** Checks that `stmt`'s actor may make its change in `state`. */
export function checkRules(state: RoomState, stmt: Statement): void {
  const actor = stmt.actor;
  if (!state.isMember(actor)) throw new ChainError("NotAMember");
  const dm = state.kind === "DirectMessage";
  const owner = state.isOwner(actor);
  const needOwner = (okForAnyMember: boolean) => {
    if (!okForAnyMember && !owner) throw new ChainError("NotAnOwner");
  };
  const a = stmt.action;
  switch (a.type) {
    case "Create":
      throw new ChainError("CreateNotFirst");
    case "Invite":
      if (dm) throw new ChainError("NotAllowedInDirectMessage");
      needOwner(state.kind === "GroupDirectMessage");
      if (state.isMember(a.user)) throw new ChainError("AlreadyMember");
      return;
    case "Remove":
      if (dm) throw new ChainError("NotAllowedInDirectMessage");
      needOwner(false);
      if (a.user === actor) throw new ChainError("RemoveSelf");
      if (!state.isMember(a.user)) throw new ChainError("SubjectNotAMember");
      return;
    case "Leave":
      if (dm) throw new ChainError("NotAllowedInDirectMessage");
      if (owner && state.owners.size === 1 && state.members.size > 1) throw new ChainError("LastOwner");
      return;
    case "AddOwner":
      if (dm) throw new ChainError("NotAllowedInDirectMessage");
      needOwner(false);
      if (!state.isMember(a.user)) throw new ChainError("SubjectNotAMember");
      if (state.isOwner(a.user)) throw new ChainError("AlreadyOwner");
      return;
    case "RemoveOwner":
      if (dm) throw new ChainError("NotAllowedInDirectMessage");
      needOwner(false);
      if (!state.isOwner(a.user)) throw new ChainError("SubjectNotAnOwner");
      if (state.owners.size === 1) throw new ChainError("LastOwner");
      return;
    case "SetEncryption":
      needOwner(isDirect(state.kind));
      if (a.on === state.encrypted) throw new ChainError("Unchanged");
      return;
    case "NewEpoch":
      if (!state.encrypted) throw new ChainError("EncryptionOff");
      if (state.declares(a.epoch)) throw new ChainError("DuplicateEpoch");
      return;
    case "KeyChange":
      // That the declared key is not the signing one is checked with the signature.
      if (state.keyChanges.some((k) => k.user === stmt.actor && equalBytes(k.former, a.former))) throw new ChainError("DuplicateKeyChange");
      return;
  }
}

function removeMember(state: RoomState, u: UserId): void {
  state.members.delete(u);
  state.owners.delete(u);
  state.rotationPending = true;
}

/** Applies a statement that passed the checks; `hash` is the statement's hash. */
export function applyStatement(state: RoomState, stmt: Statement, hash: Uint8Array): void {
  const a = stmt.action;
  switch (a.type) {
    case "Create":
      break;
    case "Invite": {
      state.members.add(a.user);
      if (!state.historyShared) {
        // The newcomer must not read what was sent before it joined.
        state.rotationPending = true;
      } else {
        const current = state.epochs[state.epochs.length - 1];
        if (current) state.epochMembers.get(randomIdToHex(current))?.add(a.user);
      }
      break;
    }
    case "Remove":
      removeMember(state, a.user);
      break;
    case "Leave":
      removeMember(state, stmt.actor);
      break;
    case "AddOwner":
      state.owners.add(a.user);
      break;
    case "RemoveOwner":
      state.owners.delete(a.user);
      break;
    case "SetEncryption":
      state.encrypted = a.on;
      break;
    case "NewEpoch":
      state.epochs.push(Uint8Array.from(a.epoch));
      state.epochMembers.set(randomIdToHex(a.epoch), new Set(state.members));
      state.epochSeqs.set(randomIdToHex(a.epoch), stmt.seq);
      state.rotationPending = false;
      break;
    case "KeyChange":
      state.keyChanges.push({ seq: stmt.seq, user: stmt.actor, former: Uint8Array.from(a.former) });
      break;
  }
  state.seq = stmt.seq;
  state.headHash = Uint8Array.from(hash);
}
