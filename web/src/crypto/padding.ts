// Length-hiding padding for message bodies (docs/protocol.md §7.3):
// `padded = data ‖ 0x80 ‖ 0x00 * k`, to the smallest bucket that holds data and marker.
// Buckets are the powers of two from 256 to 65536, then the multiples of 65536 up to
// 1048576.

export const MIN_BUCKET = 256;
export const LARGE_BUCKET_STEP = 65536;
export const MAX_PADDED_LEN = 16 * LARGE_BUCKET_STEP;
/** The longest body that can be padded. */
export const MAX_DATA_LEN = MAX_PADDED_LEN - 1;
const MARKER = 0x80;

export type PaddingErrorKind = "TooLong" | "Malformed";

export class PaddingError extends Error {
  constructor(readonly kind: PaddingErrorKind) {
    super(kind === "TooLong" ? "data too long to pad" : "padding is malformed");
    this.name = "PaddingError";
  }
}

/** The padded length of `dataLen` bytes of data; throws PaddingError `TooLong`. */
export function bucketLen(dataLen: number): number {
  const need = dataLen + 1;
  if (!Number.isSafeInteger(dataLen) || dataLen < 0 || need > MAX_PADDED_LEN) throw new PaddingError("TooLong");
  if (need <= LARGE_BUCKET_STEP) {
    let p = MIN_BUCKET;
    while (p < need) p *= 2;
    return p;
  }
  return Math.ceil(need / LARGE_BUCKET_STEP) * LARGE_BUCKET_STEP;
}

/** Whether `len` is a bucket size. */
export function isBucket(len: number): boolean {
  if (len >= MIN_BUCKET && len <= LARGE_BUCKET_STEP) return (len & (len - 1)) === 0;
  return len > LARGE_BUCKET_STEP && len <= MAX_PADDED_LEN && len % LARGE_BUCKET_STEP === 0;
}

/** `data ‖ 0x80 ‖ zeros` to the bucket size. */
export function pad(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(bucketLen(data.length));
  out.set(data);
  out[data.length] = MARKER;
  return out;
}

/** Strips padding: the length must be a bucket, then trailing zeros, then exactly one 0x80. */
export function unpad(padded: Uint8Array): Uint8Array {
  if (!isBucket(padded.length)) throw new PaddingError("Malformed");
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  if (end < 0 || padded[end] !== MARKER) throw new PaddingError("Malformed");
  return padded.subarray(0, end);
}
