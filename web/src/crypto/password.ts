// The encryption password that protects a user's key backup (docs/protocol.md §3.1).
// Generated passwords are 12 words of the BIP-39 English list; users may choose their
// own in any script. Every password reaches the KDF as UTF-8(NFC(password)).

import { wordlist } from "@scure/bip39/wordlists/english.js";
import { utf8 } from "./encoding";
import { randomBytes } from "./primitives";

/** Number of words in a generated password (12 × 11 bits = 132 bits). */
export const GENERATED_WORDS = 12;

export type PasswordErrorKind = "Empty";

export class PasswordError extends Error {
  constructor(readonly kind: PasswordErrorKind) {
    super(kind === "Empty" ? "the encryption password is empty" : kind);
    this.name = "PasswordError";
  }
}

/** The word at `index` (0 `abandon` … 2047 `zoo`) of the BIP-39 English list. */
export function passwordWord(index: number): string {
  const w = wordlist[index];
  if (w === undefined || wordlist.length !== 2048) throw new RangeError("word index out of range");
  return w;
}

/** The word index two CSPRNG bytes give: big-endian u16, low 11 bits. */
export function wordIndex(hi: number, lo: number): number {
  return ((hi << 8) | lo) & 0x07ff;
}

/** An encryption password in NFC form. Its text stays in a private field, out of logs. */
export class EncryptionPassword {
  readonly #text: string;

  private constructor(text: string) {
    this.#text = text;
  }

  /**
   * A fresh password: for each of 12 words, two bytes from `random`, read big-endian,
   * whose low 11 bits index the word list; joined by single spaces.
   */
  static generate(random: (n: number) => Uint8Array = randomBytes): EncryptionPassword {
    const words: string[] = [];
    for (let i = 0; i < GENERATED_WORDS; i++) {
      const two = random(2);
      if (two.length !== 2) throw new RangeError("random source returned the wrong length");
      words.push(passwordWord(wordIndex(two[0]!, two[1]!)));
      two.fill(0);
    }
    return new EncryptionPassword(words.join(" "));
  }

  /** A password the user typed: NFC-normalised, nothing trimmed; empty is refused. */
  static fromUser(text: string): EncryptionPassword {
    const nfc = text.normalize("NFC");
    if (nfc.length === 0) throw new PasswordError("Empty");
    return new EncryptionPassword(nfc);
  }

  /** The NFC text, for showing a generated password to its user once. */
  text(): string {
    return this.#text;
  }

  /** The KDF input: UTF-8 of the NFC form. */
  kdfInput(): Uint8Array {
    return utf8(this.#text);
  }

  toString(): string {
    return "EncryptionPassword(…)";
  }

  toJSON(): string {
    return this.toString();
  }
}
