/** LanceDB's `table.mergeInsert(on)` builder: what happens to matched, new and vanished rows. */
import type { Data } from "./arrow.js";
import type { Table } from "./table.js";

export interface MergeResult {
  version: number;
  numInsertedRows: number;
  numUpdatedRows: number;
  numDeletedRows: number;
}

export class MergeInsertBuilder {
  private updateAll = false;
  private updateWhere = "";
  private insertAll = false;
  private deleteBySource = false;
  private deleteWhere = "";

  constructor(private readonly table: Table, private readonly on: string[]) {}

  /** Matched rows are replaced by the new ones (with `where`: only pairs it holds for, naming `target.col`
   * and `source.col`). */
  whenMatchedUpdateAll(options: { where?: string } = {}): this {
    this.updateAll = true;
    this.updateWhere = options.where ?? "";
    return this;
  }

  whenNotMatchedInsertAll(): this {
    this.insertAll = true;
    return this;
  }

  whenNotMatchedBySourceDelete(options: { where?: string } = {}): this {
    this.deleteBySource = true;
    this.deleteWhere = options.where ?? "";
    return this;
  }

  /** Runs the merge in one new version. */
  async execute(data: Data, options: { timeout?: number } = {}): Promise<MergeResult> {
    return this.table.merge(data, {
      on: this.on, whenMatchedUpdateAll: this.updateAll, whenMatchedUpdateWhere: this.updateWhere,
      whenNotMatchedInsertAll: this.insertAll, whenNotMatchedBySourceDelete: this.deleteBySource,
      whenNotMatchedBySourceDeleteWhere: this.deleteWhere,
    }, options.timeout);
  }
}
