// The plaintext of a message envelope (docs/protocol.md §7.2): text, references,
// mentions and file attachments.

import { DecodeError, Reader, Writer, fromUtf8, utf8 } from "./encoding";
import { type MessageId, type RoomId, type UserId, checkRandomId, compareIds, isValidId, readRandomId, readRoomId, readUserId, writeId } from "./ids";

export const MAX_NAME_LEN = 1024;
export const MAX_MEDIA_TYPE_LEN = 255;
export const MAX_ATTACHMENTS = 64;
export const MIN_CHUNK_SIZE = 64;
export const MAX_CHUNK_SIZE = 1024 * 1024;
export const FILE_KEY_LEN = 32;

/** A file attached to a message: where to fetch it and how to decrypt and check it (§8). */
export interface Attachment {
  /** The server's id of the uploaded blob (1–64 bytes of the id alphabet). */
  fileId: string;
  /** The file's 32-byte key. */
  fileKey: Uint8Array;
  /** UTF-8 name, 1 to 1024 bytes. */
  name: string;
  /** 1 to 255 bytes in 0x20..=0x7e. */
  mediaType: string;
  /** Plaintext size in bytes. */
  size: bigint;
  /** SHA-256 of the whole encrypted blob, header included. */
  blobSha256: Uint8Array;
  /** The blob's chunk size, 64..=1048576. */
  chunkSize: number;
}

/** What a message says. `mentions` is a set: encoding sorts it. */
export interface MessageBody {
  roomId: RoomId;
  senderId: UserId;
  text: string;
  replyTo: MessageId | null;
  editOf: MessageId | null;
  mentions: readonly UserId[];
  attachments: readonly Attachment[];
}

/** A plain text message. */
export function textBody(roomId: RoomId, senderId: UserId, text: string): MessageBody {
  return { roomId, senderId, text, replyTo: null, editOf: null, mentions: [], attachments: [] };
}

function validName(s: string): boolean {
  const n = utf8(s).length;
  return n >= 1 && n <= MAX_NAME_LEN;
}

function validMediaType(s: string): boolean {
  return s.length >= 1 && s.length <= MAX_MEDIA_TYPE_LEN && /^[\x20-\x7e]+$/.test(s);
}

function validChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE;
}

function writeRef(w: Writer, id: MessageId | null): void {
  if (id === null) w.u8(0);
  else w.u8(1).raw(checkRandomId(id, "MessageId"));
}

function readRef(r: Reader): MessageId | null {
  const flag = r.u8();
  if (flag === 0) return null;
  if (flag === 1) return readRandomId(r);
  throw new DecodeError("InvalidField", "message reference");
}

function writeAttachment(w: Writer, a: Attachment): void {
  if (!isValidId(a.fileId)) throw new DecodeError("InvalidField", "file id");
  if (a.fileKey.length !== FILE_KEY_LEN) throw new DecodeError("InvalidField", "file key");
  if (!validName(a.name)) throw new DecodeError("InvalidField", "file name");
  if (!validMediaType(a.mediaType)) throw new DecodeError("InvalidField", "media type");
  if (a.size < 0n || a.size > 0xffffffffffffffffn) throw new DecodeError("InvalidField", "file size");
  if (a.blobSha256.length !== 32) throw new DecodeError("InvalidField", "blob hash");
  if (!validChunkSize(a.chunkSize)) throw new DecodeError("InvalidField", "chunk size");
  w.bytes8(utf8(a.fileId)).raw(a.fileKey).bytes16(utf8(a.name)).bytes8(utf8(a.mediaType)).u64(a.size).raw(a.blobSha256).u32(a.chunkSize);
}

function text(raw: Uint8Array, what: string): string {
  try {
    return fromUtf8(raw);
  } catch {
    throw new DecodeError("InvalidField", what);
  }
}

function readAttachment(r: Reader): Attachment {
  const fileId = text(r.bytes8(), "file id");
  if (!isValidId(fileId)) throw new DecodeError("InvalidField", "file id");
  const fileKey = Uint8Array.from(r.take(FILE_KEY_LEN));
  const name = text(r.bytes16(), "file name");
  if (!validName(name)) throw new DecodeError("InvalidField", "file name");
  const mediaType = text(r.bytes8(), "media type");
  if (!validMediaType(mediaType)) throw new DecodeError("InvalidField", "media type");
  const size = r.u64();
  const blobSha256 = Uint8Array.from(r.take(32));
  const chunkSize = r.u32();
  if (!validChunkSize(chunkSize)) throw new DecodeError("InvalidField", "chunk size");
  return { fileId, fileKey, name, mediaType, size, blobSha256, chunkSize };
}

/** The body's canonical bytes. A field outside its limits throws DecodeError `InvalidField`. */
export function encodeBody(body: MessageBody): Uint8Array {
  const w = new Writer().u8(1);
  writeId(w, body.roomId);
  writeId(w, body.senderId);
  w.bytes32(utf8(body.text));
  writeRef(w, body.replyTo);
  writeRef(w, body.editOf);
  const mentions = [...new Set(body.mentions)].sort(compareIds);
  if (mentions.length > 0xffff) throw new DecodeError("InvalidField", "mentions");
  w.u16(mentions.length);
  for (const m of mentions) writeId(w, m);
  if (body.attachments.length > MAX_ATTACHMENTS) throw new DecodeError("InvalidField", "attachments");
  w.u8(body.attachments.length);
  for (const a of body.attachments) writeAttachment(w, a);
  return w.finish();
}

/** Parses a body; throws DecodeError. */
export function decodeBody(bytes: Uint8Array): MessageBody {
  const r = new Reader(bytes);
  r.version();
  const roomId = readRoomId(r);
  const senderId = readUserId(r);
  const t = text(r.bytes32(), "text");
  const replyTo = readRef(r);
  const editOf = readRef(r);
  const count = r.u16();
  const mentions: UserId[] = [];
  for (let i = 0; i < count; i++) {
    const m = readUserId(r);
    const last = mentions[mentions.length - 1];
    if (last !== undefined && compareIds(last, m) >= 0) throw new DecodeError("InvalidField", "mentions");
    mentions.push(m);
  }
  const n = r.u8();
  if (n > MAX_ATTACHMENTS) throw new DecodeError("InvalidField", "attachments");
  const attachments: Attachment[] = [];
  for (let i = 0; i < n; i++) attachments.push(readAttachment(r));
  r.finish();
  return { roomId, senderId, text: t, replyTo, editOf, mentions, attachments };
}
