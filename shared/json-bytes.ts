/**
 * The bytes of JSON's structure. Every one is ASCII, so it is never part of a multi-byte UTF-8
 * sequence: JSON text can be scanned, and cut, as bytes.
 */
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COMMA = 0x2c;
export const COLON = 0x3a;
export const OPEN_BRACE = 0x7b;
export const CLOSE_BRACE = 0x7d;
export const OPEN_BRACKET = 0x5b;
export const CLOSE_BRACKET = 0x5d;
export const NEWLINE = 0x0a;

/** JSON's whitespace: space, newline, carriage return, tab. */
export function isSpace(b: number | undefined): boolean {
  return b === 0x20 || b === NEWLINE || b === 0x0d || b === 0x09;
}
