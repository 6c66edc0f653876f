/**
 * What a failed call throws: one class per gRPC status, each carrying the service's `google.rpc.ErrorInfo`
 * (`reason`, such as TABLE_NOT_FOUND or INVALID_FILTER, and `metadata`). A caller never sees a raw grpc-js
 * error. The tree:
 *
 *     VectorlaneError
 *      ├── InvalidArgumentError        INVALID_ARGUMENT (BadVectorError: reason BAD_VECTOR)
 *      ├── NotFoundError               NOT_FOUND
 *      ├── AlreadyExistsError          ALREADY_EXISTS
 *      ├── FailedPreconditionError     FAILED_PRECONDITION
 *      ├── AbortedError                ABORTED (a write conflict: read again and retry)
 *      ├── PermissionDeniedError       PERMISSION_DENIED
 *      ├── UnauthenticatedError        UNAUTHENTICATED
 *      ├── ResourceExhaustedError      RESOURCE_EXHAUSTED
 *      ├── UnavailableError            UNAVAILABLE
 *      ├── DeadlineExceededError       DEADLINE_EXCEEDED
 *      ├── CancelledError              CANCELLED
 *      ├── DataLossError               DATA_LOSS
 *      └── InternalError               INTERNAL, UNKNOWN and the rest
 */
import { status as Status, type ServiceError } from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

const ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo";

export class VectorlaneError extends Error {
  /** The gRPC status code (a number, as `@grpc/grpc-js`'s `status` enum names them). */
  readonly code: number;
  /** The ErrorInfo reason: what went wrong, in UPPER_SNAKE_CASE. */
  readonly reason: string;
  /** The ErrorInfo metadata: the column, the table, the limit... */
  readonly metadata: Readonly<Record<string, string>>;

  constructor(message: string, code: number = Status.UNKNOWN, reason = "", metadata: Record<string, string> = {}) {
    super(reason ? `${message} [${reason}]` : message);
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
    this.metadata = metadata;
  }
}

export class InvalidArgumentError extends VectorlaneError {}
export class BadVectorError extends InvalidArgumentError {}
export class NotFoundError extends VectorlaneError {}
export class AlreadyExistsError extends VectorlaneError {}
export class FailedPreconditionError extends VectorlaneError {}
export class AbortedError extends VectorlaneError {}
export class PermissionDeniedError extends VectorlaneError {}
export class UnauthenticatedError extends VectorlaneError {}
export class ResourceExhaustedError extends VectorlaneError {}
export class UnavailableError extends VectorlaneError {}
export class DeadlineExceededError extends VectorlaneError {}
export class CancelledError extends VectorlaneError {}
export class DataLossError extends VectorlaneError {}
export class InternalError extends VectorlaneError {}

type ErrorClass = new (message: string, code: number, reason: string, metadata: Record<string, string>) => VectorlaneError;

const BY_CODE: Partial<Record<number, ErrorClass>> = {
  [Status.INVALID_ARGUMENT]: InvalidArgumentError,
  [Status.OUT_OF_RANGE]: InvalidArgumentError,
  [Status.NOT_FOUND]: NotFoundError,
  [Status.ALREADY_EXISTS]: AlreadyExistsError,
  [Status.FAILED_PRECONDITION]: FailedPreconditionError,
  [Status.ABORTED]: AbortedError,
  [Status.PERMISSION_DENIED]: PermissionDeniedError,
  [Status.UNAUTHENTICATED]: UnauthenticatedError,
  [Status.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [Status.UNAVAILABLE]: UnavailableError,
  [Status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [Status.CANCELLED]: CancelledError,
  [Status.DATA_LOSS]: DataLossError,
};

/** The ErrorInfo a failed call carried in its `grpc-status-details-bin` trailer, if any. */
function errorInfo(error: ServiceError): { reason: string; metadata: Record<string, string> } {
  const details = error.metadata?.get("grpc-status-details-bin") ?? [];
  for (const raw of details) {
    try {
      const status = fromBinary(StatusSchema, raw instanceof Buffer ? raw : Buffer.from(String(raw), "base64"));
      for (const any of status.details) {
        if (any.typeUrl === ERROR_INFO) {
          const info = fromBinary(ErrorInfoSchema, any.value);
          return { reason: info.reason, metadata: { ...info.metadata } };
        }
      }
    } catch {
      // a trailer that is not a google.rpc.Status: the status code alone then says what happened
    }
  }
  return { reason: "", metadata: {} };
}

/** The error for a failed grpc-js call. */
export function fromServiceError(error: ServiceError): VectorlaneError {
  const { reason, metadata } = errorInfo(error);
  const cls = reason === "BAD_VECTOR" ? BadVectorError : BY_CODE[error.code] ?? InternalError;
  return new cls(error.details || error.message, error.code, reason, metadata);
}
