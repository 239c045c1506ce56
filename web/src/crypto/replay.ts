// The message ids a client has accepted, per room, so a replayed envelope is refused
// (docs/protocol.md §7.6 step 10, §7.7). The set outlives the process: the client
// persists `encode()` after accepting messages and loads it with `decode` on start.
// An id is inserted only after its envelope opened, so forged envelopes cannot fill it.

import { DecodeError, Reader, Writer } from "./encoding";
import { RANDOM_ID_LEN, type MessageId, type RoomId, compareIds, randomIdFromHex, randomIdToHex, readRandomId, readRoomId, writeId } from "./ids";

export class ReplayError extends Error {
  readonly kind = "Replayed" as const;
  constructor() {
    super("message was already received");
    this.name = "ReplayError";
  }
}

export class SeenMessages {
  /** Per room, the ids as lowercase hex (which sorts as the bytes do). */
  private readonly rooms = new Map<RoomId, Set<string>>();

  /** Records `id` as accepted in `room`, or throws ReplayError if it already was. */
  checkAndInsert(room: RoomId, id: MessageId): void {
    if (id.length !== RANDOM_ID_LEN) throw new RangeError("message id must be 16 bytes");
    const hex = randomIdToHex(id);
    let ids = this.rooms.get(room);
    if (!ids) {
      ids = new Set();
      this.rooms.set(room, ids);
    }
    if (ids.has(hex)) throw new ReplayError();
    ids.add(hex);
  }

  contains(room: RoomId, id: MessageId): boolean {
    return this.rooms.get(room)?.has(randomIdToHex(id)) ?? false;
  }

  /** Forgets a room (after leaving it for good). */
  forgetRoom(room: RoomId): void {
    this.rooms.delete(room);
  }

  /** `0x01 ‖ u32(r) ‖ room…`, rooms and ids in increasing byte order, no empty room. */
  encode(): Uint8Array {
    const rooms = [...this.rooms.entries()].filter(([, ids]) => ids.size > 0).sort(([a], [b]) => compareIds(a, b));
    const w = new Writer().u8(1).u32(rooms.length);
    for (const [room, ids] of rooms) {
      writeId(w, room).u32(ids.size);
      for (const hex of [...ids].sort()) w.raw(randomIdFromHex(hex));
    }
    return w.finish();
  }

  /**
   * Decodes what `encode` wrote; refuses rooms out of order (`InvalidField("room
   * order")`), a room with no ids (`"message id count"`) and ids out of order
   * (`"message id order"`).
   */
  static decode(bytes: Uint8Array): SeenMessages {
    const r = new Reader(bytes);
    r.version();
    const seen = new SeenMessages();
    const roomCount = r.u32();
    let lastRoom: RoomId | null = null;
    for (let i = 0; i < roomCount; i++) {
      const room = readRoomId(r);
      if (lastRoom !== null && compareIds(lastRoom, room) >= 0) throw new DecodeError("InvalidField", "room order");
      const n = r.u32();
      if (n === 0) throw new DecodeError("InvalidField", "message id count");
      const ids = new Set<string>();
      let last = "";
      for (let j = 0; j < n; j++) {
        const hex = randomIdToHex(readRandomId(r));
        if (j > 0 && hex <= last) throw new DecodeError("InvalidField", "message id order");
        ids.add(hex);
        last = hex;
      }
      seen.rooms.set(room, ids);
      lastRoom = room;
    }
    r.finish();
    return seen;
  }
}
