/**
 * Every item of a paged List call (AIP-158). A page token the store gave before, or a page holding nothing
 * but a token, ends the listing with an error: a broken or hostile store could otherwise keep the client
 * asking, and holding more, forever (found by the hostile pass; the Python client does the same).
 */
import { VectorlaneError } from "./errors.js";

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

export async function everyPage<T>(method: string, fetch: (pageToken: string) => Promise<Page<T>>,
                                   startAfter = ""): Promise<T[]> {
  const found: T[] = [];
  const seen = new Set<string>();
  let pageToken = startAfter;
  for (;;) {
    const page = await fetch(pageToken);
    found.push(...page.items);
    pageToken = page.nextPageToken;
    if (!pageToken) return found;
    if (seen.has(pageToken) || page.items.length === 0) {
      throw new VectorlaneError(`${method}: the store answered a page token it gave before, or an empty page ` +
        "with a token; stopped", undefined, "BAD_PAGE_TOKEN");
    }
    seen.add(pageToken);
  }
}
