/** A long-running change of a table's embedding function (re-embedding every row in the background):
 * its state as last read, `refresh()`, `wait()` until done, `cancel()`. */
import { OperationState, StorageService, type Operation as OperationMessage } from "./gen/vectorlane/store/v1/store_service_pb.js";
import { FailedPreconditionError, DeadlineExceededError } from "./errors.js";
import type { Transport } from "./transport.js";

const STATES: Record<number, string> = { [OperationState.RUNNING]: "running", [OperationState.PAUSED]: "paused",
  [OperationState.SUCCEEDED]: "succeeded", [OperationState.FAILED]: "failed", [OperationState.CANCELLED]: "cancelled" };

export class Operation {
  constructor(private readonly transport: Transport, private message: OperationMessage) {}

  get name(): string { return this.message.name; }
  get state(): string { return STATES[this.message.state] ?? "unknown"; }
  get done(): boolean { return this.message.done; }
  get rowsDone(): number { return Number(this.message.rowsDone); }
  get rowsTotal(): number { return Number(this.message.rowsTotal); }
  get resultVersion(): number { return Number(this.message.resultVersion); }
  get error(): { reason: string; message: string } | undefined {
    return this.message.error ? { reason: this.message.error.reason, message: this.message.error.message } : undefined;
  }

  async refresh(): Promise<this> {
    this.message = await this.transport.unary(StorageService.method.getOperation, { name: this.name });
    return this;
  }

  /** Polls until the operation is done (`timeoutMs`: give up after that long). A failed one throws. */
  async wait(options: { timeoutMs?: number; pollMs?: number } = {}): Promise<this> {
    const until = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    while (!this.done) {
      if (Date.now() > until) throw new DeadlineExceededError(`operation ${this.name} is not done yet`, 4, "OPERATION_NOT_DONE");
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 200));
      await this.refresh();
    }
    if (this.message.state === OperationState.FAILED) {
      const error = this.error;
      throw new FailedPreconditionError(`operation ${this.name} failed: ${error?.message ?? ""}`, 9, error?.reason ?? "OPERATION_FAILED");
    }
    return this;
  }

  async cancel(): Promise<this> {
    this.message = await this.transport.unary(StorageService.method.cancelOperation, { name: this.name });
    return this;
  }
}
