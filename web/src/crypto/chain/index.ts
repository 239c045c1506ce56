// The signed room state chain (docs/protocol.md §5): who may hold a room's keys and
// whether the room is encrypted is decided by members' signed statements, not by the
// server. A client verifies a room's chain from the creator's first statement (§5.5),
// or continues from a checkpoint it verified and stored itself, and derives the
// room's state (§5.6).

import { DecodeError, equalBytes } from "../encoding";
import type { IdentityKeys } from "../identity";
import type { RoomId, UserId } from "../ids";
import { ChainError } from "./errors";
import { applyStatement, checkCreate, checkRules } from "./rules";
import { RoomState, type RoomStateSnapshot } from "./state";
import { type Action, GENESIS_PREV, Statement } from "./statement";

export { ChainError, type ChainErrorKind, TooManyMembers } from "./errors";
export { type MemberComparison, RoomState, type RoomStateSnapshot } from "./state";
export { type Action, type Create, GENESIS_PREV, MAX_CREATE_MEMBERS, type RoomKind, STATEMENT_LABEL, Statement, isDirect, sortedMembers } from "./statement";

/** The identity key pinned for a user (§4.2), or undefined when none is pinned. */
export type KeyResolver = (user: UserId) => Uint8Array | undefined;

export interface ChainVerifyOptions {
  /**
   * Identity keys a user had before an accepted key change (§4.2), oldest first. They
   * are checked against the chain's KeyChanges (`FormerKeyMismatch`), and a statement
   * that no KeyChange covers and whose signature fails under the pinned key is tried
   * under these, unless the actor has already signed an earlier statement of this chain
   * under the pinned key.
   */
  formerKeys?: (user: UserId) => readonly Uint8Array[];
  /** A user's changed key not accepted yet (§4.2): it may sign a KeyChange declaring the pinned key (§5.5). */
  pendingKey?: (user: UserId) => Uint8Array | undefined;
}

/** The key a statement must verify under: declared by its actor's next KeyChange, or the pinned one. */
interface Signer {
  declared: boolean;
  key: Uint8Array | undefined;
}

/**
 * The key in effect for each statement (§5.5): walking from the last, the former key of
 * the actor's next KeyChange, else the pinned key. Then, for each actor whose last
 * KeyChange is signed by the pinned key, the newest kept former key must be one the
 * chain declares (`FormerKeyMismatch`).
 */
function signers(statements: readonly Statement[], keys: KeyResolver, opts: ChainVerifyOptions): Signer[] {
  const inEffect = new Map<UserId, Signer>();
  const declared = new Map<UserId, Uint8Array[]>();
  const lastByPinned = new Set<UserId>();
  const out: Signer[] = [];
  for (let i = statements.length - 1; i >= 0; i--) {
    const stmt = statements[i]!;
    let signer = inEffect.get(stmt.actor);
    if (!signer) {
      signer = { declared: false, key: keys(stmt.actor) };
      inEffect.set(stmt.actor, signer);
    }
    out.push(signer);
    const a = stmt.action;
    if (a.type === "KeyChange") {
      // Only a last KeyChange signed by the pinned key: one signed by another key comes
      // before the actor's current change, not in the chain yet (checked like the rest).
      if (!declared.has(stmt.actor) && !signer.declared && signer.key && stmt.verifySignature(signer.key)) lastByPinned.add(stmt.actor);
      declared.set(stmt.actor, [...(declared.get(stmt.actor) ?? []), a.former]);
      inEffect.set(stmt.actor, { declared: true, key: a.former });
    }
  }
  out.reverse();
  for (const actor of lastByPinned) {
    const kept = opts.formerKeys?.(actor) ?? [];
    const newest = kept[kept.length - 1];
    if (newest && !(declared.get(actor) ?? []).some((k) => equalBytes(k, newest))) throw new ChainError("FormerKeyMismatch");
  }
  return out;
}

/** What a client stores to resume verification later without re-reading the chain. */
export interface ChainCheckpoint {
  state: RoomStateSnapshot;
  /** Actors seen signing under their pinned key (no former key counts for them any more). */
  currentKeySigners: string[];
}

/** Link checks of §5.2 steps 1–4 against the head `(seq, hash)`, or the start of a chain. */
function checkLink(room: RoomId, head: { seq: bigint; hash: Uint8Array } | undefined, stmt: Statement): void {
  if (stmt.roomId !== room) throw new ChainError("WrongRoom");
  const expected = head ? head.seq + 1n : 0n;
  const prev = head ? head.hash : GENESIS_PREV;
  if (stmt.seq !== expected) throw new ChainError("BadSequence", { expected, found: stmt.seq });
  if (!equalBytes(stmt.prev, prev)) throw new ChainError("BadPrevHash");
  const isCreate = stmt.action.type === "Create";
  if (!head && !isCreate) throw new ChainError("MissingCreate");
  if (head && isCreate) throw new ChainError("CreateNotFirst");
}

/** Whether `key` verifies `stmt` and, for a KeyChange, is not the key it declares (§5.2 steps 6–7). */
function signedBy(stmt: Statement, key: Uint8Array): "ok" | "BadSignature" | "KeyUnchanged" {
  if (!stmt.verifySignature(key)) return "BadSignature";
  const a = stmt.action;
  return a.type === "KeyChange" && equalBytes(a.former, key) ? "KeyUnchanged" : "ok";
}

/**
 * §5.2 steps 5–7 under the key in effect. Returns true when the pinned key verified,
 * false when another did (then the actor's later statements may still use a former key).
 */
function checkSignature(stmt: Statement, signer: Signer, opts: ChainVerifyOptions, onCurrentKey: ReadonlySet<UserId>): boolean {
  const key = signer.key;
  if (!key) throw new ChainError("UnknownSigner");
  const outcome = signedBy(stmt, key);
  if (signer.declared || outcome !== "BadSignature") {
    if (outcome !== "ok") throw new ChainError(outcome);
    return !signer.declared;
  }
  // A KeyChange under the pending key that declares the pinned one gives it nothing.
  const a = stmt.action;
  const pending = opts.pendingKey?.(stmt.actor);
  if (a.type === "KeyChange" && equalBytes(a.former, key) && pending && stmt.verifySignature(pending)) return false;
  if (!onCurrentKey.has(stmt.actor)) {
    const kept = opts.formerKeys?.(stmt.actor) ?? [];
    for (let i = kept.length - 1; i >= 0; i--) {
      if (signedBy(stmt, kept[i]!) === "ok") return false;
    }
  }
  throw new ChainError("BadSignature");
}

/** A room's chain, verified link by link, and the state it derives. */
export class RoomChain {
  private constructor(
    /** The state at `baseSeq` (after the creation statement, or a checkpoint). */
    private readonly base: RoomState,
    /** The creation statement when verified from the start. */
    private readonly first: Statement | undefined,
    /** Statements verified after the base, in order. */
    private readonly rest: Statement[],
    private current: RoomState,
    private readonly onCurrentKey: Set<UserId>,
  ) {}

  /**
   * Verifies a whole chain for `room`, creation statement first (§5.5): for each
   * statement the link checks, the signature under the actor's pinned key, then the
   * room rules. Throws ChainError; `EmptyChain` for no statements.
   */
  static async verify(room: RoomId, statements: Iterable<Statement>, keys: KeyResolver, opts: ChainVerifyOptions = {}): Promise<RoomChain> {
    const list = [...statements];
    const first = list[0];
    if (!first) throw new ChainError("EmptyChain");
    const effect = signers(list, keys, opts);
    checkLink(room, undefined, first);
    const onCurrentKey = new Set<UserId>();
    const current = checkSignature(first, effect[0]!, opts, onCurrentKey);
    if (first.action.type !== "Create") throw new ChainError("MissingCreate");
    const create = first.action;
    checkCreate(first.actor, create);
    if (current) onCurrentKey.add(first.actor);
    const base = RoomState.genesis(room, first.actor, create, await first.hash());
    const chain = new RoomChain(base, first, [], base.clone(), onCurrentKey);
    for (let i = 1; i < list.length; i++) await chain.appendAs(list[i]!, effect[i]!, opts);
    return chain;
  }

  /** Decodes (`Decode` on malformed bytes) and verifies a chain given as encoded statements. */
  static async decodeAndVerify(room: RoomId, encoded: readonly Uint8Array[], keys: KeyResolver, opts: ChainVerifyOptions = {}): Promise<RoomChain> {
    return RoomChain.verify(room, encoded.map(decodeStatement), keys, opts);
  }

  /** A chain that continues from a checkpoint this client verified and stored itself. */
  static fromCheckpoint(checkpoint: ChainCheckpoint): RoomChain {
    const base = RoomState.fromSnapshot(checkpoint.state);
    const signers = new Set(checkpoint.currentKeySigners.map((u) => u as UserId));
    return new RoomChain(base, undefined, [], base.clone(), signers);
  }

  /**
   * Verifies the chain the server serves (every statement, creation first) starting
   * from a checkpoint: if the served chain still holds the checkpoint's head at the
   * same place (same sequence number and hash), only the statements after it are
   * verified; otherwise (history was rewritten, or the checkpoint is of another room)
   * the whole chain is verified from its creation statement.
   */
  static async resume(checkpoint: ChainCheckpoint, served: readonly Statement[], keys: KeyResolver, opts: ChainVerifyOptions = {}): Promise<RoomChain> {
    const chain = RoomChain.fromCheckpoint(checkpoint);
    const room = chain.base.roomId;
    const at = chain.base.seq;
    const head = at < BigInt(served.length) ? served[Number(at)] : undefined;
    if (!head || head.roomId !== room || head.seq !== at || !equalBytes(await head.hash(), chain.base.headHash)) {
      return RoomChain.verify(served[0]?.roomId ?? room, served, keys, opts);
    }
    await chain.extend(served.slice(Number(at) + 1), keys, opts);
    return chain;
  }

  /**
   * Verifies `statements`, the links after the head, each under its actor's key in
   * effect: KeyChanges among them decide the keys of the statements before them (§5.5).
   */
  async extend(statements: readonly Statement[], keys: KeyResolver, opts: ChainVerifyOptions = {}): Promise<void> {
    const effect = signers(statements, keys, opts);
    for (let i = 0; i < statements.length; i++) await this.appendAs(statements[i]!, effect[i]!, opts);
  }

  /**
   * Checks `stmt` as the next link (link, signature, room rules) without applying it.
   * Returns whether the pinned key (not a former one) verified it.
   */
  async checkNext(stmt: Statement, keys: KeyResolver, opts: ChainVerifyOptions = {}): Promise<boolean> {
    return this.checkNextAs(stmt, { declared: false, key: keys(stmt.actor) }, opts);
  }

  private async checkNextAs(stmt: Statement, signer: Signer, opts: ChainVerifyOptions): Promise<boolean> {
    const state = this.current;
    checkLink(state.roomId, { seq: state.seq, hash: state.headHash }, stmt);
    const current = checkSignature(stmt, signer, opts, this.onCurrentKey);
    checkRules(state, stmt);
    return current;
  }

  /** Verifies `stmt` as the next link (under the actor's pinned key: nothing follows it) and applies it. On error the chain is unchanged. */
  async append(stmt: Statement, keys: KeyResolver, opts: ChainVerifyOptions = {}): Promise<void> {
    await this.appendAs(stmt, { declared: false, key: keys(stmt.actor) }, opts);
  }

  private async appendAs(stmt: Statement, signer: Signer, opts: ChainVerifyOptions): Promise<void> {
    const current = await this.checkNextAs(stmt, signer, opts);
    const next = this.current.clone();
    applyStatement(next, stmt, await stmt.hash());
    this.current = next;
    this.rest.push(stmt);
    if (current) this.onCurrentKey.add(stmt.actor);
  }

  /**
   * Signs `action` as `actor` on the verified head and checks it against the room
   * rules, so a refused change says why (ChainError). The chain is not changed: the
   * caller stores the statement on the server, then appends it.
   */
  async propose(action: Action, actor: UserId, keys: IdentityKeys): Promise<Statement> {
    const s = this.current;
    const stmt = Statement.sign(s.roomId, s.seq + 1n, s.headHash, action, actor, keys);
    const mine = keys.identityPublic;
    await this.checkNext(stmt, (u) => (u === actor ? mine : undefined));
    return stmt;
  }

  /** The state at the head. Read it; never change it. */
  get state(): RoomState {
    return this.current;
  }

  get roomId(): RoomId {
    return this.current.roomId;
  }

  /** The last statement verified here (undefined for a fresh checkpoint). */
  head(): Statement | undefined {
    return this.rest[this.rest.length - 1] ?? this.first;
  }

  /** The statements verified here, oldest first (from the creation, or after the checkpoint). */
  statements(): Statement[] {
    return this.first ? [this.first, ...this.rest] : [...this.rest];
  }

  /** The number of statements in the chain (head seq + 1). */
  get length(): number {
    return Number(this.current.seq) + 1;
  }

  /** The state right after statement `seq`; undefined past the head or before the base. */
  async stateAt(seq: bigint): Promise<RoomState | undefined> {
    if (seq < this.base.seq || seq > this.current.seq) return undefined;
    const state = this.base.clone();
    for (const stmt of this.rest) {
      if (stmt.seq > seq) break;
      applyStatement(state, stmt, await stmt.hash());
    }
    return state;
  }

  /** The state at the head, to store and resume from later (fromCheckpoint / resume). */
  checkpoint(): ChainCheckpoint {
    return { state: this.current.toSnapshot(), currentKeySigners: [...this.onCurrentKey].sort() };
  }
}

/** Decodes one statement, reporting malformed bytes as ChainError `Decode` (§5.1). */
export function decodeStatement(bytes: Uint8Array): Statement {
  try {
    return Statement.decode(bytes);
  } catch (e) {
    if (e instanceof DecodeError) throw new ChainError("Decode", { decode: e });
    throw e;
  }
}
