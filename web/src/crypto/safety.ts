// Safety numbers (docs/protocol.md §4.1): 60 digits two users compare to check that
// each holds the other's real identity key.

import { Writer, concat, signingInput } from "./encoding";
import { type UserId, writeId } from "./ids";
import { sha512 } from "./primitives";

export const ITERATIONS = 5200;
export const HALF_DIGITS = 30;

const SAFETY_LABEL = "sotto/v1/safety-number";

/** One user's 30-digit half: 5200 chained SHA-512s, six 40-bit chunks mod 100000. */
export async function fingerprintDigits(user: UserId, identityKey: Uint8Array): Promise<string> {
  if (identityKey.length !== 32) throw new RangeError("identity key must be 32 bytes");
  const first = writeId(new Writer().raw(identityKey), user).finish();
  let digest = await sha512(signingInput(SAFETY_LABEL, first));
  for (let i = 1; i < ITERATIONS; i++) digest = await sha512(concat(digest, identityKey));
  let out = "";
  for (let c = 0; c < HALF_DIGITS / 5; c++) {
    let n = 0n;
    for (const b of digest.subarray(5 * c, 5 * c + 5)) n = (n << 8n) | BigInt(b);
    out += (n % 100000n).toString().padStart(5, "0");
  }
  return out;
}

export interface SafetyParty {
  user: UserId;
  identityKey: Uint8Array;
}

export class SafetyNumber {
  private constructor(readonly digits: string) {}

  /** The same number whichever side computes it: the smaller half first. */
  static async compute(a: SafetyParty, b: SafetyParty): Promise<SafetyNumber> {
    const [x, y] = await Promise.all([fingerprintDigits(a.user, a.identityKey), fingerprintDigits(b.user, b.identityKey)]);
    return new SafetyNumber(x <= y ? x + y : y + x);
  }

  /** 12 groups of 5 digits. */
  groups(): string[] {
    const out: string[] = [];
    for (let i = 0; i < 12; i++) out.push(this.digits.slice(5 * i, 5 * i + 5));
    return out;
  }

  /** The groups separated by single spaces. */
  display(): string {
    return this.groups().join(" ");
  }

  /** Whether typed or read-back text is this number, whitespace ignored. */
  matchesText(text: string): boolean {
    return text.replace(/\s+/gu, "") === this.digits;
  }

  toString(): string {
    return this.display();
  }
}
