export { EmbeddingFunction, ServerFunction, type FunctionField, type VectorFieldOptions } from "./embedding_function.js";
export { EmbeddingFunctionRegistry, getRegistry, register, type FunctionFactory } from "./registry.js";
export { LanceSchema, functionsOf, withFunctions, METADATA_KEY, type EmbeddingFunctionConfig } from "./schema.js";
