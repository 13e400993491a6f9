/**
 * The gRPC side of the API, on GRPC_PORT: only the standard health service
 * (`grpc.health.v1.Health`), so that Weaviate's clients, which check gRPC health before they
 * connect, connect to shardvault. Weaviate's own gRPC service (`weaviate.v1.Weaviate`: search,
 * batch, aggregate, tenants) is answered UNIMPLEMENTED with a message saying what shardvault
 * serves instead; any other method gets gRPC's own UNIMPLEMENTED.
 */
import { format } from 'node:util';
import { Server, ServerCredentials, setLogger, status as GrpcStatus, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from '../shared/logger.ts';

/**
 * Service names a health check may ask about, all SERVING while the API runs: the whole
 * server (''), the health service itself, and the name weaviate-client 3.x sends — the
 * method path `/grpc.health.v1.Health/Check` rather than a service name.
 */
const HEALTH_NAMES = ['', 'grpc.health.v1.Health', '/grpc.health.v1.Health/Check', 'weaviate.v1.Weaviate'];

/** The methods of Weaviate's gRPC service (weaviate/v1/weaviate.proto). */
const WEAVIATE_METHODS = ['Search', 'BatchObjects', 'BatchReferences', 'BatchDelete', 'BatchSend', 'BatchStream', 'TenantsGet', 'Aggregate'];

export const UNIMPLEMENTED_MESSAGE =
  "shardvault serves backups (Weaviate's /v1/backups) and the REST data API over HTTP; its gRPC port serves only grpc.health.v1.Health";

/** Weaviate's service, with each method answering UNIMPLEMENTED; messages are left as bytes. */
function weaviateService(): { definition: ServiceDefinition; implementation: UntypedServiceImplementation } {
  const bytes = (b: Buffer) => b;
  const definition: ServiceDefinition = Object.fromEntries(
    WEAVIATE_METHODS.map((method) => [
      method,
      {
        path: `/weaviate.v1.Weaviate/${method}`,
        requestStream: false,
        responseStream: false,
        requestSerialize: bytes,
        requestDeserialize: bytes,
        responseSerialize: bytes,
        responseDeserialize: bytes,
      },
    ]),
  );
  const unimplemented = (_call: unknown, callback: (err: { code: number; details: string }) => void) =>
    callback({ code: GrpcStatus.UNIMPLEMENTED, details: UNIMPLEMENTED_MESSAGE });
  const implementation: UntypedServiceImplementation = Object.fromEntries(WEAVIATE_METHODS.map((method) => [method, unimplemented]));
  return { definition, implementation };
}

export interface GrpcHealthServer {
  /** Listens on host:port (port 0 picks a free one); answers the bound port. */
  start(): Promise<number>;
  stop(): Promise<void>;
}

export function createGrpcHealthServer(options: { host: string; port: number; logger: Logger }): GrpcHealthServer {
  // grpc-js writes its own lines to stderr (`E No address added…` before a failed bind): they go
  // into the process's structured log instead, at the level grpc-js gave them.
  const log = (level: 'error' | 'info' | 'debug') => (...args: unknown[]) => options.logger[level]({ component: 'grpc-js' }, format(...args));
  setLogger({ error: log('error'), info: log('info'), debug: log('debug') });
  const server = new Server();
  const health = new HealthImplementation(Object.fromEntries(HEALTH_NAMES.map((n) => [n, 'SERVING' as const])));
  health.addToServer(server);
  const weaviate = weaviateService();
  server.addService(weaviate.definition, weaviate.implementation);
  let started = false;
  return {
    start: () =>
      new Promise((resolve, reject) => {
        server.bindAsync(`${options.host}:${options.port}`, ServerCredentials.createInsecure(), (err, port) => {
          if (err) return reject(new Error(`gRPC cannot listen on ${options.host}:${options.port} (GRPC_PORT): ${err.message}`));
          started = true;
          options.logger.info({ host: options.host, port }, 'grpc health listening');
          resolve(port);
        });
      }),
    stop: async () => {
      if (!started) return;
      for (const name of HEALTH_NAMES) health.setStatus(name, 'NOT_SERVING');
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
