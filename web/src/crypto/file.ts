// Encrypted files (docs/protocol.md §8): a fresh random key per file and a chunked
// AES-256-GCM stream.
//
//   blob    = header ‖ chunk_0 ‖ … ‖ chunk_{n-1}              (n ≥ 1)
//   header  = 0x01 ‖ u32 chunk_size ‖ fixed(7) nonce_prefix
//   nonce_i = nonce_prefix ‖ u32 i ‖ u8 last                  (last = 1 for chunk n-1)
//   chunk_i = AES-256-GCM(file_key, nonce_i, aad = header, P_i)
//
// Every chunk but the last holds exactly chunk_size plaintext bytes; the last holds 1
// to chunk_size, or 0 for an empty file. The counter detects reordered and swapped
// chunks, the last flag truncation at a chunk boundary and data after the end. Both
// directions work a chunk at a time: the streams below hold at most one chunk.

import { DecodeError, Reader, Writer, concat, equalBytes } from "./encoding";
import type { Rng } from "./epoch";
import { aesGcmOpen, aesGcmSeal, randomBytes, sha256Incremental } from "./primitives";

export const FILE_KEY_LEN = 32;
export const MIN_CHUNK_SIZE = 64;
export const MAX_CHUNK_SIZE = 1024 * 1024;
/** The chunk size clients use. */
export const DEFAULT_CHUNK_SIZE = 65536;
export const STREAM_HEADER_LEN = 12;
export const NONCE_PREFIX_LEN = 7;
export const TAG_LEN = 16;
const MAX_CHUNKS = 2 ** 32;

export type FileErrorKind =
  /** The stream header is malformed, of another version, or its chunk size is out of range. */
  | "Header"
  /** The stream ended before its final chunk. */
  | "Truncated"
  /** Data follows the final chunk. */
  | "Extended"
  /** A chunk failed authentication: altered, moved, from another file, or wrong key. */
  | "BadChunk"
  /** A chunk's length is not allowed at its position. */
  | "ChunkLength"
  /** The stream would need more than 2^32 chunks. */
  | "TooManyChunks"
  /** The encryptor already wrote the final chunk, or the stream failed earlier. */
  | "Finished"
  /** The complete file's size, blob hash or chunk size differ from the attachment (§8.2 step 4). */
  | "Mismatch";

export class FileError extends Error {
  constructor(
    readonly kind: FileErrorKind,
    detail: { index?: number; decode?: DecodeError } = {},
  ) {
    super(detail.decode ? `${kind}: ${detail.decode.message}` : detail.index !== undefined ? `${kind} (chunk ${detail.index})` : kind);
    this.name = "FileError";
    if (detail.index !== undefined) this.index = detail.index;
    if (detail.decode) this.decode = detail.decode;
  }
  /** For `BadChunk` and `ChunkLength`: the chunk's position, from 0. */
  readonly index?: number;
  /** For `Header`: the decoding error. */
  readonly decode?: DecodeError;
}

/** A fresh random file key. */
export function generateFileKey(rng: Rng = randomBytes): Uint8Array {
  const k = rng(FILE_KEY_LEN);
  if (k.length !== FILE_KEY_LEN) throw new RangeError("file key must be 32 bytes");
  return Uint8Array.from(k);
}

export interface StreamHeader {
  chunkSize: number;
  noncePrefix: Uint8Array;
}

function validChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE;
}

export function encodeStreamHeader(h: StreamHeader): Uint8Array {
  if (!validChunkSize(h.chunkSize)) throw new DecodeError("InvalidField", "chunk size");
  if (h.noncePrefix.length !== NONCE_PREFIX_LEN) throw new DecodeError("InvalidField", "nonce prefix");
  return new Writer().u8(1).u32(h.chunkSize).raw(h.noncePrefix).finish();
}

/** Parses exactly one 12-byte header; throws DecodeError. */
export function decodeStreamHeader(bytes: Uint8Array): StreamHeader {
  const r = new Reader(bytes);
  r.version();
  const chunkSize = r.u32();
  if (!validChunkSize(chunkSize)) throw new DecodeError("InvalidField", "chunk size");
  const noncePrefix = Uint8Array.from(r.take(NONCE_PREFIX_LEN));
  r.finish();
  return { chunkSize, noncePrefix };
}

/** `nonce_prefix ‖ u32 index ‖ u8 last`. */
export function chunkNonce(h: StreamHeader, index: number, last: boolean): Uint8Array {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_CHUNKS) throw new FileError("TooManyChunks");
  return new Writer().raw(h.noncePrefix).u32(index).u8(last ? 1 : 0).finish();
}

function checkKey(key: Uint8Array): Uint8Array {
  if (key.length !== FILE_KEY_LEN) throw new RangeError("file key must be 32 bytes");
  return Uint8Array.from(key);
}

/** Encrypts a file one chunk at a time (the caller cuts the chunks). */
export class ChunkEncryptor {
  readonly #key: Uint8Array;
  readonly header: StreamHeader;
  /** The 12 header bytes the blob starts with. */
  readonly headerBytes: Uint8Array;
  #next = 0;
  #finished = false;

  /** Starts a stream under `key`; the 7-byte nonce prefix is drawn from `rng`. */
  constructor(key: Uint8Array, chunkSize: number = DEFAULT_CHUNK_SIZE, rng: Rng = randomBytes) {
    if (!validChunkSize(chunkSize)) throw new FileError("Header", { decode: new DecodeError("InvalidField", "chunk size") });
    this.#key = checkKey(key);
    this.header = { chunkSize, noncePrefix: Uint8Array.from(rng(NONCE_PREFIX_LEN)) };
    this.headerBytes = encodeStreamHeader(this.header);
  }

  /** How many chunks have been encrypted. */
  get chunks(): number {
    return this.#next;
  }

  /**
   * Encrypts the next chunk (plaintext length + 16 bytes). A non-final chunk holds
   * exactly `chunkSize` bytes; the final one at most that, and is empty only when it is
   * the only chunk (`ChunkLength` otherwise).
   */
  async encryptChunk(plaintext: Uint8Array, last: boolean): Promise<Uint8Array> {
    if (this.#finished) throw new FileError("Finished");
    const size = this.header.chunkSize;
    const index = this.#next;
    if (plaintext.length > size || (!last && plaintext.length !== size) || (plaintext.length === 0 && index > 0)) {
      throw new FileError("ChunkLength", { index });
    }
    const nonce = chunkNonce(this.header, index, last);
    // Claim the position before awaiting, so a second call cannot reuse the nonce.
    this.#next = index + 1;
    this.#finished = last;
    return aesGcmSeal(this.#key, nonce, plaintext, this.headerBytes);
  }
}

/** Decrypts a file one chunk at a time (the caller cuts the pieces and says which is last). */
export class ChunkDecryptor {
  readonly #key: Uint8Array;
  readonly header: StreamHeader;
  readonly headerBytes: Uint8Array;
  #next = 0;
  #finished = false;

  /** Reads the 12-byte stream header (`Header` if malformed). */
  constructor(key: Uint8Array, header: Uint8Array) {
    try {
      this.header = decodeStreamHeader(header);
    } catch (e) {
      if (e instanceof DecodeError) throw new FileError("Header", { decode: e });
      throw e;
    }
    this.#key = checkKey(key);
    this.headerBytes = encodeStreamHeader(this.header);
  }

  /** Ciphertext bytes in a full chunk: the most a chunk may hold. */
  get maxChunkLen(): number {
    return this.header.chunkSize + TAG_LEN;
  }

  get chunks(): number {
    return this.#next;
  }

  get finished(): boolean {
    return this.#finished;
  }

  async #tryOpen(ciphertext: Uint8Array, index: number, last: boolean): Promise<Uint8Array | undefined> {
    try {
      return await aesGcmOpen(this.#key, chunkNonce(this.header, index, last), ciphertext, this.headerBytes);
    } catch (e) {
      if (e instanceof FileError) throw e;
      return undefined;
    }
  }

  /**
   * Decrypts the next piece; `last` says whether the stream ends after it. A piece
   * that authenticates only with the other flag gives `Truncated` (the stream was cut
   * after it) or `Extended` (data follows the real end); anything else that fails is
   * `BadChunk`. Lengths not allowed at this position are `ChunkLength`.
   */
  async decryptChunk(ciphertext: Uint8Array, last: boolean): Promise<Uint8Array> {
    if (this.#finished) throw new FileError("Extended");
    const index = this.#next;
    const full = this.maxChunkLen;
    if (ciphertext.length > full || ciphertext.length < TAG_LEN || (ciphertext.length === TAG_LEN && index > 0)) {
      throw new FileError("ChunkLength", { index });
    }
    const plain = await this.#tryOpen(ciphertext, index, last);
    if (plain) {
      // Authentic, but a short piece can only be the final one.
      if (!last && ciphertext.length !== full) {
        plain.fill(0);
        throw new FileError("ChunkLength", { index });
      }
      this.#next = index + 1;
      this.#finished = last;
      return plain;
    }
    if (ciphertext.length === full) {
      const flipped = await this.#tryOpen(ciphertext, index, !last);
      if (flipped) {
        flipped.fill(0);
        throw new FileError(last ? "Truncated" : "Extended");
      }
    }
    throw new FileError("BadChunk", { index });
  }

  /** Throws `Truncated` unless the final chunk has been decrypted. */
  finish(): void {
    if (!this.#finished) throw new FileError("Truncated");
  }
}

/** What a finished stream amounts to, for the message's attachment (§7.2). */
export interface FileSummary {
  plaintextLen: bigint;
  blobLen: bigint;
  blobSha256: Uint8Array;
  chunkSize: number;
}

/** Whether a complete file is the one the attachment describes (§8.2 step 4). */
export function summaryMatches(expected: { size: bigint; blobSha256: Uint8Array; chunkSize: number }, s: FileSummary): boolean {
  return expected.size === s.plaintextLen && equalBytes(expected.blobSha256, s.blobSha256) && expected.chunkSize === s.chunkSize;
}

/** Runs async steps strictly one after another; after a failure, every later step fails. */
class Serial {
  #tail: Promise<unknown> = Promise.resolve();
  #failed = false;

  run<T>(step: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(async () => {
      if (this.#failed) throw new FileError("Finished");
      try {
        return await step();
      } catch (e) {
        this.#failed = true;
        throw e;
      }
    });
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * Encrypts a file fed in pieces of any size. `push` returns the blob bytes ready so far
 * (the header first); `finish` writes the final chunk and returns the summary. Holds at
 * most one chunk of plaintext.
 */
export class FileEncryptStream {
  readonly #enc: ChunkEncryptor;
  readonly #hash = sha256Incremental();
  readonly #pending: Uint8Array;
  #pendingLen = 0;
  #headerSent = false;
  #plaintextLen = 0n;
  #blobLen = 0n;
  readonly #serial = new Serial();

  constructor(key: Uint8Array, chunkSize: number = DEFAULT_CHUNK_SIZE, rng: Rng = randomBytes) {
    this.#enc = new ChunkEncryptor(key, chunkSize, rng);
    this.#pending = new Uint8Array(chunkSize);
  }

  get header(): StreamHeader {
    return this.#enc.header;
  }

  #emit(out: Uint8Array[], bytes: Uint8Array): void {
    this.#hash.update(bytes);
    this.#blobLen += BigInt(bytes.length);
    out.push(bytes);
  }

  #start(out: Uint8Array[]): void {
    if (!this.#headerSent) {
      this.#headerSent = true;
      this.#emit(out, Uint8Array.from(this.#enc.headerBytes));
    }
  }

  push(data: Uint8Array): Promise<Uint8Array[]> {
    const copy = Uint8Array.from(data);
    return this.#serial.run(async () => {
      const out: Uint8Array[] = [];
      this.#start(out);
      const size = this.#enc.header.chunkSize;
      let at = 0;
      while (at < copy.length) {
        if (this.#pendingLen === size) {
          // More data follows, so the buffered chunk is not the last.
          this.#emit(out, await this.#enc.encryptChunk(this.#pending, false));
          this.#pendingLen = 0;
        }
        const take = Math.min(size - this.#pendingLen, copy.length - at);
        this.#pending.set(copy.subarray(at, at + take), this.#pendingLen);
        this.#pendingLen += take;
        this.#plaintextLen += BigInt(take);
        at += take;
      }
      copy.fill(0);
      return out;
    });
  }

  /** Encrypts the buffered data as the final chunk; returns the last blob bytes and the summary. */
  finish(): Promise<{ out: Uint8Array[]; summary: FileSummary }> {
    return this.#serial.run(async () => {
      const out: Uint8Array[] = [];
      this.#start(out);
      this.#emit(out, await this.#enc.encryptChunk(this.#pending.subarray(0, this.#pendingLen), true));
      this.#pending.fill(0);
      this.#pendingLen = 0;
      const summary = { plaintextLen: this.#plaintextLen, blobLen: this.#blobLen, blobSha256: this.#hash.digest(), chunkSize: this.#enc.header.chunkSize };
      return { out, summary };
    });
  }
}

/**
 * Decrypts a blob fed in pieces of any size, as it streams in (§8.2). `push` returns the
 * plaintext of every chunk that has authenticated so far; the file is usable only once
 * `finish` succeeds (with `expected`, it also checks size, blob hash and chunk size:
 * `Mismatch`). On any error the stream is dead and what it produced must be discarded.
 * Holds at most one chunk.
 */
export class FileDecryptStream {
  readonly #key: Uint8Array;
  readonly #hash = sha256Incremental();
  #header = new Uint8Array(STREAM_HEADER_LEN);
  #headerLen = 0;
  #dec: ChunkDecryptor | undefined;
  #pending = new Uint8Array(0);
  #pendingLen = 0;
  #plaintextLen = 0n;
  #blobLen = 0n;
  readonly #serial = new Serial();

  constructor(key: Uint8Array) {
    this.#key = checkKey(key);
  }

  push(data: Uint8Array): Promise<Uint8Array[]> {
    const copy = Uint8Array.from(data);
    return this.#serial.run(async () => {
      this.#hash.update(copy);
      this.#blobLen += BigInt(copy.length);
      const out: Uint8Array[] = [];
      let at = 0;
      if (!this.#dec) {
        const take = Math.min(STREAM_HEADER_LEN - this.#headerLen, copy.length);
        this.#header.set(copy.subarray(0, take), this.#headerLen);
        this.#headerLen += take;
        at = take;
        if (this.#headerLen < STREAM_HEADER_LEN) return out;
        this.#dec = new ChunkDecryptor(this.#key, this.#header);
        this.#pending = new Uint8Array(this.#dec.maxChunkLen);
      }
      const dec = this.#dec;
      const full = dec.maxChunkLen;
      while (at < copy.length) {
        if (this.#pendingLen === full) {
          // More data follows, so the buffered piece is not the final one.
          out.push(await this.#open(dec, this.#pending, false));
          this.#pendingLen = 0;
        }
        const take = Math.min(full - this.#pendingLen, copy.length - at);
        this.#pending.set(copy.subarray(at, at + take), this.#pendingLen);
        this.#pendingLen += take;
        at += take;
      }
      return out;
    });
  }

  async #open(dec: ChunkDecryptor, piece: Uint8Array, last: boolean): Promise<Uint8Array> {
    const plain = await dec.decryptChunk(piece, last);
    this.#plaintextLen += BigInt(plain.length);
    return plain;
  }

  /**
   * The end of the blob: decrypts the final piece and checks the stream is complete
   * (`Truncated` if the header or every piece is missing).
   */
  finish(expected?: { size: bigint; blobSha256: Uint8Array; chunkSize: number }): Promise<{ out: Uint8Array[]; summary: FileSummary }> {
    return this.#serial.run(async () => {
      const dec = this.#dec;
      if (!dec || this.#pendingLen === 0) throw new FileError("Truncated");
      const out = [await this.#open(dec, this.#pending.subarray(0, this.#pendingLen), true)];
      dec.finish();
      this.#pendingLen = 0;
      const summary = { plaintextLen: this.#plaintextLen, blobLen: this.#blobLen, blobSha256: this.#hash.digest(), chunkSize: dec.header.chunkSize };
      if (expected && !summaryMatches(expected, summary)) throw new FileError("Mismatch");
      return { out, summary };
    });
  }
}

/** Encrypts a whole file held in memory (convenience for small files and tests). */
export async function encryptFile(key: Uint8Array, plaintext: Uint8Array, opts: { chunkSize?: number; rng?: Rng } = {}): Promise<{ blob: Uint8Array; summary: FileSummary }> {
  const s = new FileEncryptStream(key, opts.chunkSize ?? DEFAULT_CHUNK_SIZE, opts.rng ?? randomBytes);
  const parts = await s.push(plaintext);
  const { out, summary } = await s.finish();
  return { blob: concat(...parts, ...out), summary };
}

/** Decrypts and checks a whole blob held in memory; with `expected`, also §8.2 step 4. */
export async function decryptFile(key: Uint8Array, blob: Uint8Array, expected?: { size: bigint; blobSha256: Uint8Array; chunkSize: number }): Promise<{ plaintext: Uint8Array; summary: FileSummary }> {
  const s = new FileDecryptStream(key);
  const parts = await s.push(blob);
  const { out, summary } = await s.finish(expected);
  return { plaintext: concat(...parts, ...out), summary };
}

/** What both directions of a stream offer: bytes in, bytes out, a summary at the end. */
interface Streaming {
  push(data: Uint8Array): Promise<Uint8Array[]>;
  finish(): Promise<{ out: Uint8Array[]; summary: FileSummary }>;
}

/** A WHATWG TransformStream over `s`; `summary` resolves once the stream is flushed, and any failure errors both. */
function transformOf(s: Streaming): { stream: TransformStream<Uint8Array, Uint8Array>; summary: Promise<FileSummary> } {
  let done!: (s: FileSummary) => void;
  let fail!: (e: unknown) => void;
  const summary = new Promise<FileSummary>((res, rej) => {
    done = res;
    fail = rej;
  });
  summary.catch(() => undefined);
  const guard = async (step: () => Promise<void>) => {
    try {
      await step();
    } catch (e) {
      fail(e);
      throw e;
    }
  };
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform: (chunk, controller) =>
      guard(async () => {
        for (const b of await s.push(chunk)) controller.enqueue(b);
      }),
    flush: (controller) =>
      guard(async () => {
        const { out, summary: result } = await s.finish();
        for (const b of out) controller.enqueue(b);
        done(result);
      }),
  });
  return { stream, summary };
}

/** Pipe a file's bytes through `.stream` to get the blob to upload. */
export function encryptTransform(key: Uint8Array, chunkSize: number = DEFAULT_CHUNK_SIZE, rng: Rng = randomBytes): { stream: TransformStream<Uint8Array, Uint8Array>; summary: Promise<FileSummary> } {
  return transformOf(new FileEncryptStream(key, chunkSize, rng));
}

/** Pipe a downloaded blob through `.stream` to get the plaintext; the stream errors on any failure. */
export function decryptTransform(key: Uint8Array, expected?: { size: bigint; blobSha256: Uint8Array; chunkSize: number }): { stream: TransformStream<Uint8Array, Uint8Array>; summary: Promise<FileSummary> } {
  const dec = new FileDecryptStream(key);
  return transformOf({ push: (d) => dec.push(d), finish: () => dec.finish(expected) });
}
