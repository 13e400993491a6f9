import * as grpc from '@grpc/grpc-js';

/**
 * grpc.health.v1.Health/Check for `service` on a port of this host, its messages encoded by
 * hand (protobuf field 1: the service name in the request, the status in the answer; 1 is
 * SERVING).
 */
export async function grpcHealth(port: number, service: string): Promise<number> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const name = Buffer.from(service);
    const request = service ? Buffer.concat([Buffer.from([0x0a, name.length]), name]) : Buffer.alloc(0);
    const answer = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, request, (err, res) => (err ? reject(err) : resolve(res!))),
    );
    return answer.length === 0 ? 0 : answer[1]!;
  } finally {
    client.close();
  }
}
