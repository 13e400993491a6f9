/**
 * Calls in flight, by key: a caller that asks for a key already being fetched shares that call
 * instead of starting another (a manifest that many list and status requests miss at once, a
 * backend location's listing that many list requests ask for at once).
 */
export class InFlight<K, V> {
  private readonly calls = new Map<K, Promise<V>>();

  run(key: K, call: () => Promise<V>): Promise<V> {
    let pending = this.calls.get(key);
    if (!pending) {
      pending = call().finally(() => this.calls.delete(key));
      this.calls.set(key, pending);
    }
    return pending;
  }
}
