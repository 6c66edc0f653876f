/**
 * The registry: `getRegistry().get(name).create(settings)`. A name registered in this process
 * (`@register("name")` on an EmbeddingFunction subclass) gives that class; any other name is a function the
 * embed service hosts (the store checks the name and settings when it first meets them).
 */
import { EmbeddingFunction, ServerFunction } from "./embedding_function.js";

type LocalClass = (new (settings?: Record<string, unknown>) => EmbeddingFunction<unknown>) & { registryName?: string };

/** What `get(name)` gives: LanceDB's `create(settings)`. */
export interface FunctionFactory<F extends EmbeddingFunction<unknown> = EmbeddingFunction<unknown>> {
  create(settings?: Record<string, unknown>): F;
}

export class EmbeddingFunctionRegistry {
  private readonly local = new Map<string, LocalClass>();

  register(name: string, cls: LocalClass): void {
    cls.registryName = name;
    this.local.set(name, cls); // registering a name again replaces it, as in LanceDB
  }

  unregister(name: string): void {
    this.local.delete(name);
  }

  get<F extends EmbeddingFunction<unknown> = EmbeddingFunction<unknown>>(name: string): FunctionFactory<F> {
    const cls = this.local.get(name);
    if (cls) {
      return {
        create: (settings = {}) => {
          const made = new cls(settings);
          made.createdWith = { ...settings };
          return made as F;
        },
      };
    }
    return { create: (settings = {}) => new ServerFunction(name, settings) as unknown as F };
  }

  /** The function a table's metadata names, with the settings it records. */
  fromConfig(name: string, settings: Record<string, unknown>): EmbeddingFunction<unknown> {
    return this.get(name).create(settings);
  }

  localNames(): string[] {
    return [...this.local.keys()].sort();
  }
}

const REGISTRY = new EmbeddingFunctionRegistry();

export function getRegistry(): EmbeddingFunctionRegistry {
  return REGISTRY;
}

/** Class decorator: `@register("my-function") class MyFunction extends EmbeddingFunction<string> {...}`. */
export function register(name: string) {
  return function <C extends LocalClass>(cls: C, _context?: ClassDecoratorContext): C {
    REGISTRY.register(name, cls);
    return cls;
  };
}
