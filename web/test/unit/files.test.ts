import { test } from "node:test";
import assert from "node:assert/strict";
import { concat, toHex } from "../../src/crypto/encoding";
import {
  ChunkDecryptor,
  ChunkEncryptor,
  FileDecryptStream,
  FileEncryptStream,
  FileError,
  type FileErrorKind,
  chunkNonce,
  decodeStreamHeader,
  decryptFile,
  decryptTransform,
  encryptFile,
  encryptTransform,
  generateFileKey,
} from "../../src/crypto/file";
import { aesGcmSeal, sha256 } from "../../src/crypto/primitives";
import { type Json, arr, flip, hex, loadVector, scripted, str } from "./vectorfiles";

const isFile = (kind: FileErrorKind, index?: number) => (e: unknown) => e instanceof FileError && e.kind === kind && (index === undefined || e.index === index);

function vector() {
  const v = loadVector("file_chunks.json");
  const chunks = arr(v, "chunks");
  return { v, key: hex(v, "file_key"), plaintext: hex(v, "plaintext"), blob: hex(v, "blob"), prefix: hex(v, "nonce_prefix"), chunks, ct: (i: number) => hex(chunks[i] as Json, "ciphertext") };
}

test("file_chunks.json: header, every nonce, every chunk, the blob and its hash are reproduced", async () => {
  const { v, key, plaintext, blob, prefix, chunks } = vector();
  assert.equal(v["chunk_size"], 64);
  const enc = new ChunkEncryptor(key, 64, scripted(prefix));
  assert.equal(toHex(enc.headerBytes), str(v, "header"));
  const header = decodeStreamHeader(hex(v, "header"));
  assert.equal(header.chunkSize, 64);
  for (const c of chunks) {
    const i = c["index"] as number;
    const last = c["last"] as boolean;
    assert.equal(toHex(chunkNonce(header, i, last)), str(c, "nonce"));
    const piece = plaintext.subarray(i * 64, Math.min(plaintext.length, (i + 1) * 64));
    assert.equal(toHex(await enc.encryptChunk(piece, last)), str(c, "ciphertext"));
  }
  const whole = await encryptFile(key, plaintext, { chunkSize: 64, rng: scripted(prefix) });
  assert.equal(toHex(whole.blob), str(v, "blob"));
  assert.equal(toHex(whole.summary.blobSha256), str(v, "blob_sha256"));
  assert.equal(toHex(await sha256(blob)), str(v, "blob_sha256"));
  assert.equal(whole.summary.plaintextLen, 184n);
  assert.equal(whole.summary.blobLen, BigInt(12 + 184 + 16 * 3));

  const expected = { size: BigInt(plaintext.length), blobSha256: hex(v, "blob_sha256"), chunkSize: 64 };
  const opened = await decryptFile(key, blob, expected);
  assert.equal(toHex(opened.plaintext), str(v, "plaintext"));
  // Chunk by chunk with the low-level decryptor.
  const dec = new ChunkDecryptor(key, hex(v, "header"));
  const parts: Uint8Array[] = [];
  for (const c of chunks) parts.push(await dec.decryptChunk(hex(c, "ciphertext"), c["last"] as boolean));
  dec.finish();
  assert.equal(toHex(concat(...parts)), str(v, "plaintext"));
});

test("file_chunks.json: streaming in pieces of any size gives the same blob and plaintext", async () => {
  const { v, key, plaintext, blob, prefix } = vector();
  for (const step of [1, 7, 12, 80, 81, 1000]) {
    const enc = new FileEncryptStream(key, 64, scripted(prefix));
    const out: Uint8Array[] = [];
    for (let i = 0; i < plaintext.length; i += step) out.push(...(await enc.push(plaintext.subarray(i, i + step))));
    const fin = await enc.finish();
    assert.equal(toHex(concat(...out, ...fin.out)), str(v, "blob"), `encrypt step ${step}`);
    const dec = new FileDecryptStream(key);
    const plain: Uint8Array[] = [];
    for (let i = 0; i < blob.length; i += step) plain.push(...(await dec.push(blob.subarray(i, i + step))));
    const end = await dec.finish({ size: 184n, blobSha256: hex(v, "blob_sha256"), chunkSize: 64 });
    assert.equal(toHex(concat(...plain, ...end.out)), str(v, "plaintext"), `decrypt step ${step}`);
    assert.equal(toHex(end.summary.blobSha256), str(v, "blob_sha256"));
  }
});

test("file streams: truncation, reordering, swapping, extension and bad lengths are detected", async () => {
  const { key, plaintext, blob, ct, v } = vector();
  const header = hex(v, "header");
  const open = (b: Uint8Array) => decryptFile(key, b);
  // Cut at a chunk boundary: the last piece authenticates only as non-final.
  await assert.rejects(open(concat(header, ct(0), ct(1))), isFile("Truncated"));
  await assert.rejects(open(concat(header, ct(0))), isFile("Truncated"));
  // Cut inside a chunk, or the final chunk dropped and only its tag bytes kept.
  await assert.rejects(open(blob.subarray(0, blob.length - 1)), isFile("BadChunk", 2));
  // Nothing after the header, or not even a header.
  await assert.rejects(open(header), isFile("Truncated"));
  await assert.rejects(open(header.subarray(0, 11)), isFile("Truncated"));
  await assert.rejects(open(new Uint8Array(0)), isFile("Truncated"));
  // Reordered and duplicated chunks.
  await assert.rejects(open(concat(header, ct(1), ct(0), ct(2))), isFile("BadChunk", 0));
  await assert.rejects(open(concat(header, ct(0), ct(0), ct(2))), isFile("BadChunk", 1));
  // A chunk from another stream (another key, same prefix and position).
  const other = await encryptFile(generateFileKey(), plaintext, { chunkSize: 64, rng: scripted(hex(v, "nonce_prefix")) });
  await assert.rejects(open(concat(header, ct(0), other.blob.subarray(12 + 80, 12 + 160), ct(2))), isFile("BadChunk", 1));
  // Altered byte; altered header (the header is associated data).
  await assert.rejects(open(flip(blob, 12 + 5)), isFile("BadChunk", 0));
  const prefixFlipped = flip(blob, 6);
  await assert.rejects(open(prefixFlipped), isFile("BadChunk", 0));
  // Header errors.
  await assert.rejects(open(concat(Uint8Array.of(2), blob.subarray(1))), (e: unknown) => e instanceof FileError && e.kind === "Header" && e.decode?.kind === "UnsupportedVersion");
  const small = Uint8Array.from(blob);
  small[4] = 63;
  await assert.rejects(open(small), (e: unknown) => e instanceof FileError && e.kind === "Header" && e.decode?.kind === "InvalidField");

  // Data after the real end: a file of exactly two full chunks, then one more chunk.
  const two = await encryptFile(key, plaintext.subarray(0, 128), { chunkSize: 64 });
  assert.equal(two.blob.length, 12 + 160);
  assert.equal(toHex((await open(two.blob)).plaintext), toHex(plaintext.subarray(0, 128)));
  await assert.rejects(open(concat(two.blob, two.blob.subarray(12, 92))), isFile("Extended"));
  // Anything after a full final chunk makes it non-final: Extended, whatever follows.
  await assert.rejects(open(concat(two.blob, new Uint8Array(5))), isFile("Extended"));
  // A final piece shorter than a tag, or an empty chunk after a full one.
  await assert.rejects(open(concat(header, new Uint8Array(5))), isFile("ChunkLength", 0));
  const enc = new ChunkEncryptor(key, 64, scripted(hex(v, "nonce_prefix")));
  const first = await enc.encryptChunk(plaintext.subarray(0, 64), false);
  await assert.rejects(open(concat(header, first, new Uint8Array(16))), isFile("ChunkLength", 1));
  // Summary check against the attachment (§8.2 step 4).
  await assert.rejects(decryptFile(key, blob, { size: 183n, blobSha256: hex(v, "blob_sha256"), chunkSize: 64 }), isFile("Mismatch"));
  await assert.rejects(decryptFile(key, blob, { size: 184n, blobSha256: new Uint8Array(32), chunkSize: 64 }), isFile("Mismatch"));
  await assert.rejects(decryptFile(key, blob, { size: 184n, blobSha256: hex(v, "blob_sha256"), chunkSize: 65536 }), isFile("Mismatch"));
  // A failed stream stays failed.
  const dead = new FileDecryptStream(key);
  await assert.rejects(dead.push(concat(header, ct(1), ct(0))), isFile("BadChunk", 0));
  await assert.rejects(dead.push(ct(2)), isFile("Finished"));
});

test("file chunk APIs: lengths per position, empty files, exact multiples", async () => {
  const key = generateFileKey();
  const enc = new ChunkEncryptor(key, 64);
  await assert.rejects(enc.encryptChunk(new Uint8Array(10), false), isFile("ChunkLength", 0));
  await assert.rejects(enc.encryptChunk(new Uint8Array(65), true), isFile("ChunkLength", 0));
  await enc.encryptChunk(new Uint8Array(64), false);
  await assert.rejects(enc.encryptChunk(new Uint8Array(0), true), isFile("ChunkLength", 1));
  await enc.encryptChunk(new Uint8Array(3), true);
  await assert.rejects(enc.encryptChunk(new Uint8Array(3), true), isFile("Finished"));
  assert.throws(() => new ChunkEncryptor(key, 63), isFile("Header"));
  assert.throws(() => new ChunkEncryptor(key, 1048577), isFile("Header"));

  const empty = await encryptFile(key, new Uint8Array(0), { chunkSize: 64 });
  assert.equal(empty.blob.length, 12 + 16);
  assert.equal((await decryptFile(key, empty.blob, { size: 0n, blobSha256: empty.summary.blobSha256, chunkSize: 64 })).plaintext.length, 0);
  const exact = await encryptFile(key, new Uint8Array(64).fill(1), { chunkSize: 64 });
  assert.equal(exact.blob.length, 12 + 64 + 16);
  assert.equal((await decryptFile(key, exact.blob)).plaintext.length, 64);

  // A short non-final chunk that authenticates is still refused.
  const head = empty.blob.subarray(0, 12);
  const dec = new ChunkDecryptor(key, head);
  const shortNonFinal = await aesGcmSeal(key, chunkNonce(decodeStreamHeader(head), 0, false), new Uint8Array(3), head);
  await assert.rejects(dec.decryptChunk(shortNonFinal, false), isFile("ChunkLength", 0));
  await assert.rejects(dec.decryptChunk(empty.blob.subarray(12), false), isFile("BadChunk", 0));
  await assert.rejects(dec.decryptChunk(new Uint8Array(64 + 17), true), isFile("ChunkLength", 0));
  assert.throws(() => dec.finish(), isFile("Truncated"));
});

test("file transform streams carry a multi-chunk file through, and report failures", async () => {
  const key = generateFileKey();
  const data = new Uint8Array(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  const source = () =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < data.length; i += 10_000) c.enqueue(data.slice(i, i + 10_000));
        c.close();
      },
    });
  const enc = encryptTransform(key, 65536);
  const blob = new Uint8Array(await new Response(source().pipeThrough(enc.stream)).arrayBuffer());
  const summary = await enc.summary;
  assert.equal(summary.plaintextLen, 300_000n);
  assert.equal(blob.length, 12 + 300_000 + 16 * 5);
  assert.equal(toHex(summary.blobSha256), toHex(await sha256(blob)));
  const dec = decryptTransform(key, { size: 300_000n, blobSha256: summary.blobSha256, chunkSize: 65536 });
  const blobSource = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < blob.length; i += 4096) c.enqueue(blob.slice(i, i + 4096));
      c.close();
    },
  });
  const plain = new Uint8Array(await new Response(blobSource.pipeThrough(dec.stream)).arrayBuffer());
  assert.equal(toHex(await sha256(plain)), toHex(await sha256(data)));
  // A truncated blob errors the stream.
  const bad = decryptTransform(key);
  const cut = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(blob.slice(0, 12 + 65552));
      c.close();
    },
  });
  await assert.rejects(new Response(cut.pipeThrough(bad.stream)).arrayBuffer(), isFile("Truncated"));
  await assert.rejects(bad.summary, isFile("Truncated"));
});
