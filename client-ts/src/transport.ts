/**
 * The only place the client does I/O: unary calls and client streams to the store over `@grpc/grpc-js`, with
 * protobuf-es messages. Every call has a deadline (the connection's `timeout`, seconds, unless the call
 * gives one); calls that change nothing are retried by gRPC itself on UNAVAILABLE through the channel's
 * service config (5 attempts, 0.1 s doubling to 2 s), as the Python client's are; writes never blindly: only
 * the unary ones a write conflict refused (ABORTED: nothing was committed) are tried again.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { DescMethodClientStreaming, DescMethodUnary } from "@bufbuild/protobuf";
import { StorageService } from "./gen/vectorlane/store/v1/store_service_pb.js";
import { fromServiceError } from "./errors.js";

export const DEFAULT_TIMEOUT_S = 300;
const MAX_MESSAGE = 64 << 20; // the services' default --max-message-bytes
const IDEMPOTENT = ["GetTable", "ListTables", "Search", "ReadRows", "CountRows", "ListIndexes", "ListVersions",
  "DescribeFunction", "ComputeEmbeddings", "GetTableStats", "ListTags", "GetOperation", "ListOperations"];
const CONFLICT_RETRIED = ["DeleteRows", "UpdateRows", "AddColumns", "MergeColumns", "AlterColumns", "DropColumns",
  "DropIndex", "RestoreVersion", "CreateTag", "DeleteTag"];
const SERVICE_CONFIG = JSON.stringify({
  loadBalancingConfig: [{ round_robin: {} }],
  methodConfig: [{
    name: IDEMPOTENT.map((method) => ({ service: StorageService.typeName, method })),
    retryPolicy: { maxAttempts: 5, initialBackoff: "0.1s", maxBackoff: "2s", backoffMultiplier: 2,
      retryableStatusCodes: ["UNAVAILABLE"] },
  }, {
    name: CONFLICT_RETRIED.map((method) => ({ service: StorageService.typeName, method })),
    retryPolicy: { maxAttempts: 5, initialBackoff: "0.05s", maxBackoff: "1s", backoffMultiplier: 2,
      retryableStatusCodes: ["ABORTED"] },
  }],
});

/** TLS for `grpcs://` (PEM, as Buffers or strings): the server's CA, and for mTLS the client's pair. */
export interface TlsOptions {
  rootCertificates?: Buffer | string;
  certChain?: Buffer | string;
  privateKey?: Buffer | string;
}

export interface ConnectionOptions {
  /** Sent as `authorization: Bearer <apiKey>` on every call. */
  apiKey?: string;
  /** Seconds each call may take (default 300). */
  timeout?: number;
  /** TLS settings for a `grpcs://` URI. */
  tls?: TlsOptions;
  /** More grpc-js channel options. */
  grpcOptions?: grpc.ChannelOptions;
  /**
   * LanceDB's `readConsistencyInterval`: how stale this connection's reads may be about versions other
   * processes committed, in seconds (0: checked on every read; `null`: only the store's own commits are seen).
   * Not given, the store's setting applies.
   */
  readConsistencyInterval?: number | null;
}

/** The `vectorlane-read-consistency` metadata value of an interval (seconds, or "none"). */
export function readConsistencyValue(interval: number | null): string {
  if (interval === null) return "none";
  if (!Number.isFinite(interval) || interval < 0 || interval > 24 * 3600) {
    throw new RangeError("readConsistencyInterval must be from 0 to 86400 seconds, or null");
  }
  return String(interval);
}

function buffer(value: Buffer | string | undefined): Buffer | null {
  return value === undefined ? null : Buffer.isBuffer(value) ? value : Buffer.from(value);
}

/** (host:port, tls) of `grpc://host:port`, `grpcs://host:port` or a bare `host:port`. */
export function parseTarget(uri: string): { target: string; tls: boolean } {
  const url = new URL(uri.includes("://") ? uri : `grpc://${uri}`);
  if ((url.protocol !== "grpc:" && url.protocol !== "grpcs:") || !url.hostname) {
    throw new TypeError(`expected grpc://host:port or grpcs://host:port, not ${JSON.stringify(uri)}`);
  }
  return { target: `${url.hostname}:${url.port || "50051"}`, tls: url.protocol === "grpcs:" };
}

export class Transport {
  readonly target: string;
  private readonly client: grpc.Client;
  private readonly metadata: grpc.Metadata;
  private readonly timeout: number;

  constructor(uri: string, options: ConnectionOptions = {}) {
    const { target, tls } = parseTarget(uri);
    this.target = target;
    const credentials = tls
      ? grpc.credentials.createSsl(buffer(options.tls?.rootCertificates), buffer(options.tls?.privateKey),
        buffer(options.tls?.certChain))
      : grpc.credentials.createInsecure();
    this.client = new grpc.Client(target, credentials, {
      "grpc.max_send_message_length": MAX_MESSAGE, "grpc.max_receive_message_length": MAX_MESSAGE,
      "grpc.enable_retries": 1, "grpc.service_config": SERVICE_CONFIG,
      "grpc.keepalive_time_ms": 30_000, "grpc.keepalive_timeout_ms": 10_000,
      "grpc.keepalive_permit_without_calls": 1, "grpc.http2.max_pings_without_data": 0,
      ...options.grpcOptions,
    });
    this.metadata = new grpc.Metadata();
    if (options.apiKey) this.metadata.set("authorization", `Bearer ${options.apiKey}`);
    if (options.readConsistencyInterval !== undefined) {
      this.metadata.set("vectorlane-read-consistency", readConsistencyValue(options.readConsistencyInterval));
    }
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT_S;
  }

  private callOptions(timeout?: number): grpc.CallOptions {
    const seconds = timeout ?? this.timeout;
    return Number.isFinite(seconds) && seconds > 0 ? { deadline: Date.now() + seconds * 1000 } : {};
  }

  private static path(method: { name: string }): string {
    return `/${StorageService.typeName}/${method.name}`;
  }

  /** One request, one reply; a failure is one of the `errors` classes. */
  unary<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, request: MessageInitShape<I>,
    timeout?: number): Promise<MessageShape<O>> {
    const message = create(method.input, request);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(Transport.path(method), (m: MessageShape<I>) => Buffer.from(toBinary(method.input, m)),
        (bytes: Buffer) => fromBinary(method.output, bytes), message, this.metadata, this.callOptions(timeout),
        (error, reply) => (error ? reject(fromServiceError(error)) : resolve(reply as MessageShape<O>)));
    });
  }

  /** A client stream of `requests` (written as the server takes them), one reply. */
  upload<I extends DescMessage, O extends DescMessage>(method: DescMethodClientStreaming<I, O>,
    requests: Iterable<MessageInitShape<I>>, timeout?: number): Promise<MessageShape<O>> {
    return new Promise((resolve, reject) => {
      const stream = this.client.makeClientStreamRequest(Transport.path(method),
        (m: MessageShape<I>) => Buffer.from(toBinary(method.input, m)), (bytes: Buffer) => fromBinary(method.output, bytes),
        this.metadata, this.callOptions(timeout),
        (error, reply) => (error ? reject(fromServiceError(error)) : resolve(reply as MessageShape<O>)));
      const pending = requests[Symbol.iterator]();
      const pump = (): void => {
        for (;;) {
          const next = pending.next();
          if (next.done) {
            stream.end();
            return;
          }
          if (!stream.write(create(method.input, next.value))) {
            stream.once("drain", pump); // the server takes what it can: wait for it before sending more
            return;
          }
        }
      };
      pump();
    });
  }

  close(): void {
    this.client.close();
  }
}
