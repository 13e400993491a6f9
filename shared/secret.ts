import { timingSafeEqual } from 'node:crypto';

/** Whether `given` is one of `secrets` (API keys, the cluster secret), compared in constant time per secret. */
export function matchesSecret(given: string, secrets: readonly string[]): boolean {
  const a = Buffer.from(given);
  return secrets.some((k) => {
    const b = Buffer.from(k);
    return a.length === b.length && timingSafeEqual(a, b);
  });
}
