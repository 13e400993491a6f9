import type { IncomingMessage } from 'node:http';
import type { MiddlewareHandler } from 'hono';

/** How long the API waits for the rest of a body it does not read before it answers anyway. */
const WAIT_MS = 5000;

/**
 * Read the rest of a request body the route left unread (a GET with a body, a body refused
 * for its declared size or its first bytes) before the answer goes out. A server that
 * answers and closes while the client is still sending makes the kernel reset the
 * connection, and the client — still writing — sees ECONNRESET or EPIPE instead of the
 * answer. This is the "lingering close" of nginx and Apache, done before the answer rather
 * than after it: bodies are read and dropped up to `limit` bytes (or WAIT_MS); a larger rest
 * is not waited for, and a client that sends it anyway may see the connection reset.
 */
export function readUnreadBody(limit: number): MiddlewareHandler {
  return async (c, next) => {
    await next();
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    if (!incoming || incoming.complete || incoming.destroyed || incoming.readableEnded) return;
    const declared = Number(incoming.headers['content-length']);
    if (declared > limit) return;
    await drop(incoming, limit);
  };
}

/** Read and drop what is left of incoming: until its end, `limit` bytes, WAIT_MS, or an error. */
function drop(incoming: IncomingMessage, limit: number): Promise<void> {
  return new Promise((resolve) => {
    let read = 0;
    const done = () => {
      clearTimeout(timer);
      incoming.off('data', onData).off('end', done).off('error', done).off('close', done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > limit) done();
    };
    const timer = setTimeout(done, WAIT_MS);
    // A route that began to read the body and stopped (a restore refusing its first document)
    // left its reader listening, and that reader pauses the body when nobody pulls from it:
    // the route has answered, so nothing reads the body any more but this.
    incoming.removeAllListeners('data');
    incoming.on('data', onData).once('end', done).once('error', done).once('close', done);
    incoming.resume();
  });
}
