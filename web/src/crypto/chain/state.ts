// The room state a verified chain describes (docs/protocol.md §5.6).

import { DecodeError, fromHex, toHex } from "../encoding";
import { type EpochId, type RoomId, type UserId, compareIds, randomIdFromHex, randomIdToHex, roomId, userId } from "../ids";
import type { Create, RoomKind } from "./statement";

/** A KeyChange statement: before `seq`, `user` signed under `former`. */
export interface KeyChangeRecord {
  seq: bigint;
  user: UserId;
  former: Uint8Array;
}

/** How the server's member list for a room differs from the room's own chain. */
export interface MemberComparison {
  /** Listed by the server and authorized by the chain. */
  verified: UserId[];
  /** Listed by the server but not authorized by the chain: "not verified by the room", given no key. */
  notVerifiedByRoom: UserId[];
  /** Authorized by the chain but missing from the server's list. */
  notListedByServer: UserId[];
}

/** A plain, JSON-safe copy of a RoomState (see RoomChain checkpoints). */
export interface RoomStateSnapshot {
  roomId: string;
  kind: RoomKind;
  historyShared: boolean;
  members: string[];
  owners: string[];
  encrypted: boolean;
  /** Declared epochs, oldest first, each with its holders. */
  epochs: { id: string; holders: string[]; seq?: string }[];
  /** KeyChanges so far (absent in checkpoints stored before they existed). */
  keyChanges?: { seq: string; user: string; former: string }[];
  rotationPending: boolean;
  /** Decimal sequence number of the head. */
  seq: string;
  /** Hex SHA-256 of the head statement. */
  headHash: string;
}

function sorted(s: ReadonlySet<UserId>): UserId[] {
  return [...s].sort(compareIds);
}

/**
 * What a verified chain says about its room at one point. Mutated only by the chain
 * module (rules.ts); everyone else reads it.
 */
export class RoomState {
  /** @internal */ members: Set<UserId>;
  /** @internal */ owners: Set<UserId>;
  /** @internal */ encrypted: boolean;
  /** @internal */ epochs: EpochId[] = [];
  /** @internal epoch hex → holders */ epochMembers = new Map<string, Set<UserId>>();
  /** @internal epoch hex → the seq of the statement that declared it */ epochSeqs = new Map<string, bigint>();
  /** @internal every KeyChange so far, oldest first */ keyChanges: KeyChangeRecord[] = [];
  /** @internal */ rotationPending = false;
  /** @internal */ seq = 0n;
  /** @internal */ headHash: Uint8Array;

  /** @internal */
  constructor(
    readonly roomId: RoomId,
    readonly kind: RoomKind,
    readonly historyShared: boolean,
    members: Iterable<UserId>,
    owners: Iterable<UserId>,
    encrypted: boolean,
    headHash: Uint8Array,
  ) {
    this.members = new Set(members);
    this.owners = new Set(owners);
    this.encrypted = encrypted;
    this.headHash = Uint8Array.from(headHash);
  }

  /** The state right after the creation statement. */
  static genesis(room: RoomId, creator: UserId, c: Create, hash: Uint8Array): RoomState {
    return new RoomState(room, c.kind, c.historyShared, c.members, [creator], c.encrypted, hash);
  }

  clone(): RoomState {
    const s = new RoomState(this.roomId, this.kind, this.historyShared, this.members, this.owners, this.encrypted, this.headHash);
    s.epochs = this.epochs.map((e) => Uint8Array.from(e));
    for (const [k, v] of this.epochMembers) s.epochMembers.set(k, new Set(v));
    s.epochSeqs = new Map(this.epochSeqs);
    s.keyChanges = this.keyChanges.map((k) => ({ ...k, former: Uint8Array.from(k.former) }));
    s.rotationPending = this.rotationPending;
    s.seq = this.seq;
    return s;
  }

  /** The members the chain authorizes, in byte order. */
  memberList(): UserId[] {
    return sorted(this.members);
  }

  isMember(user: string): boolean {
    return this.members.has(user as UserId);
  }

  /** The owners (always members), in byte order. */
  ownerList(): UserId[] {
    return sorted(this.owners);
  }

  isOwner(user: string): boolean {
    return this.owners.has(user as UserId);
  }

  /** Whether messages must be encrypted (the chain's flag, whatever the server says). */
  isEncrypted(): boolean {
    return this.encrypted;
  }

  /** The latest declared epoch, the one new messages use. */
  currentEpoch(): EpochId | undefined {
    const e = this.epochs[this.epochs.length - 1];
    return e ? Uint8Array.from(e) : undefined;
  }

  /** Every declared epoch, oldest first. */
  epochList(): EpochId[] {
    return this.epochs.map((e) => Uint8Array.from(e));
  }

  /** Whether the chain declares `epoch`. */
  declares(epoch: EpochId): boolean {
    return this.epochMembers.has(randomIdToHex(epoch));
  }

  /**
   * Whether a new epoch must be declared before the next encrypted message: encrypted
   * and no epoch yet, or a member left / was removed / joined a room that does not
   * share history since the current epoch.
   */
  rotationDue(): boolean {
    return this.encrypted && (this.epochs.length === 0 || this.rotationPending);
  }

  /** The holders of `epoch` in byte order; undefined if the chain never declared it. */
  membersAtEpoch(epoch: EpochId): UserId[] | undefined {
    const set = this.epochMembers.get(randomIdToHex(epoch));
    return set ? sorted(set) : undefined;
  }

  /** Whether `user` may hold `epoch`: one of its holders, or (history shared) a current member. */
  mayHoldEpoch(epoch: EpochId, user: string): boolean {
    const set = this.epochMembers.get(randomIdToHex(epoch));
    if (!set) return false;
    return set.has(user as UserId) || (this.historyShared && this.members.has(user as UserId));
  }

  /** Every KeyChange so far, oldest first. */
  keyChangeList(): KeyChangeRecord[] {
    return this.keyChanges.map((k) => ({ ...k, former: Uint8Array.from(k.former) }));
  }

  /**
   * The identity keys `user` declared as former in a KeyChange made after `epoch` was
   * declared, oldest first (§5.6): what `user` may have signed messages and boxes of
   * `epoch` under before that change. Empty for an undeclared epoch.
   */
  formerKeysSinceEpoch(user: string, epoch: EpochId): Uint8Array[] {
    const declared = this.epochSeqs.get(randomIdToHex(epoch));
    if (declared === undefined) return [];
    return this.keyChanges.filter((k) => k.seq > declared && k.user === user).map((k) => Uint8Array.from(k.former));
  }

  /** The sequence number of the last statement applied. */
  headSeq(): bigint {
    return this.seq;
  }

  /** The hash of the last statement applied: the next statement's `prev`. */
  headHashBytes(): Uint8Array {
    return Uint8Array.from(this.headHash);
  }

  /** Compares the server's member list with the chain's authorized set. */
  compareMembers(serverList: Iterable<UserId>): MemberComparison {
    const listed = new Set(serverList);
    return {
      verified: sorted(new Set([...listed].filter((u) => this.members.has(u)))),
      notVerifiedByRoom: sorted(new Set([...listed].filter((u) => !this.members.has(u)))),
      notListedByServer: sorted(new Set([...this.members].filter((u) => !listed.has(u)))),
    };
  }

  toSnapshot(): RoomStateSnapshot {
    return {
      roomId: this.roomId,
      kind: this.kind,
      historyShared: this.historyShared,
      members: sorted(this.members),
      owners: sorted(this.owners),
      encrypted: this.encrypted,
      epochs: this.epochs.map((e) => {
        const id = randomIdToHex(e);
        const seq = this.epochSeqs.get(id);
        return { id, holders: sorted(this.epochMembers.get(id) ?? new Set()), ...(seq === undefined ? {} : { seq: seq.toString() }) };
      }),
      keyChanges: this.keyChanges.map((k) => ({ seq: k.seq.toString(), user: k.user, former: toHex(k.former) })),
      rotationPending: this.rotationPending,
      seq: this.seq.toString(),
      headHash: toHex(this.headHash),
    };
  }

  /**
   * Rebuilds a state from a snapshot this client stored itself (a checkpoint). Throws
   * DecodeError on a malformed snapshot.
   */
  static fromSnapshot(s: RoomStateSnapshot): RoomState {
    const bad = () => new DecodeError("InvalidField", "checkpoint");
    if (!["DirectMessage", "GroupDirectMessage", "PrivateChannel", "PrivateTeam", "Discussion"].includes(s.kind)) throw bad();
    if (!/^[0-9]{1,20}$/.test(s.seq)) throw bad();
    const seq = BigInt(s.seq);
    const head = fromHex(s.headHash);
    if (head.length !== 32 || seq > 0xffffffffffffffffn) throw bad();
    const state = new RoomState(roomId(s.roomId), s.kind, s.historyShared === true, s.members.map(userId), s.owners.map(userId), s.encrypted === true, head);
    for (const e of s.epochs) {
      const id = randomIdFromHex(e.id, "EpochId");
      const hex = randomIdToHex(id);
      if (state.epochMembers.has(hex)) throw bad();
      state.epochs.push(id);
      state.epochMembers.set(hex, new Set(e.holders.map(userId)));
      if (e.seq !== undefined) {
        if (!/^[0-9]{1,20}$/.test(e.seq)) throw bad();
        state.epochSeqs.set(hex, BigInt(e.seq));
      }
    }
    for (const k of s.keyChanges ?? []) {
      if (!/^[0-9]{1,20}$/.test(k.seq)) throw bad();
      const former = fromHex(k.former);
      if (former.length !== 32) throw bad();
      state.keyChanges.push({ seq: BigInt(k.seq), user: userId(k.user), former });
    }
    state.rotationPending = s.rotationPending === true;
    state.seq = seq;
    return state;
  }
}
