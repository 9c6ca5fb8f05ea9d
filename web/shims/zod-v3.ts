/**
 * Stands in for `zod/v3` in the page's bundle. The AI SDK imports only `ZodFirstPartyTypeKind`
 * from it, for turning zod 3 schemas (of tools) into JSON Schema, which this page never does; the
 * real module would add about 20 kB gzipped that nothing runs. The enum's values are its keys.
 */
export const ZodFirstPartyTypeKind: Record<string, string> = new Proxy({}, { get: (_target, key) => String(key) });
