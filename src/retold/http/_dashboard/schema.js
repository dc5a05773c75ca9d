// A small JSON Schema validator for the schemas retold writes (GET /workflows: args_schema):
// type, enum, const, anyOf, items, prefixItems, minItems, maxItems, properties, required,
// additionalProperties, pattern, format (date-time, date, uuid). Returns a list of errors with paths.

const FORMATS = {
  "date-time": (s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?$/i.test(s) && !Number.isNaN(Date.parse(s)),
  date: (s) => /^\d{4}-\d\d-\d\d$/.test(s),
  uuid: (s) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s),
};

function typeOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function matchesType(value, type) {
  const actual = typeOf(value);
  return actual === type || (type === "number" && actual === "integer");
}

/** Errors of `value` against `schema`: [{path, message}], empty when valid. */
export function validate(value, schema, path = "$") {
  if (!schema || typeof schema !== "object") return [];
  const errors = [];
  const fail = (message) => errors.push({path, message});
  if (schema.anyOf) {
    if (!schema.anyOf.some((s) => validate(value, s, path).length === 0)) {
      fail(`matches none of ${schema.anyOf.map(describe).join(", ")}`);
    }
    return errors;
  }
  if ("const" in schema && JSON.stringify(value) !== JSON.stringify(schema.const)) {
    fail(`must be ${JSON.stringify(schema.const)}`);
  }
  if (schema.enum && !schema.enum.some((v) => JSON.stringify(v) === JSON.stringify(value))) {
    fail(`must be one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`);
  }
  if (schema.type) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => matchesType(value, t))) {
      fail(`expected ${types.join(" or ")}, got ${typeOf(value)}`);
      return errors;
    }
  }
  if (typeof value === "string") {
    if (schema.pattern && !new RegExp(schema.pattern, "u").test(value)) fail(`must match ${schema.pattern}`);
    if (schema.format && FORMATS[schema.format] && !FORMATS[schema.format](value)) fail(`must be a ${schema.format}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) fail(`needs at least ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) fail(`takes at most ${schema.maxItems} items`);
    const prefix = schema.prefixItems || [];
    value.forEach((item, i) => {
      const itemSchema = i < prefix.length ? prefix[i] : schema.items;
      if (itemSchema) errors.push(...validate(item, itemSchema, `${path}[${i}]`));
    });
  }
  if (typeOf(value) === "object") {
    for (const key of schema.required || []) {
      if (!(key in value)) errors.push({path: `${path}.${key}`, message: "is required"});
    }
    for (const [key, item] of Object.entries(value)) {
      const itemSchema = schema.properties?.[key] ?? schema.additionalProperties;
      if (itemSchema === false) errors.push({path: `${path}.${key}`, message: "is not a known field"});
      else if (itemSchema && itemSchema !== true) errors.push(...validate(item, itemSchema, `${path}.${key}`));
    }
  }
  return errors;
}

/** A schema in a few words, for messages and placeholders. */
export function describe(schema) {
  if (!schema || !Object.keys(schema).length) return "any JSON";
  if (schema.anyOf) return schema.anyOf.map(describe).join(" or ");
  if (schema.enum) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  if (schema.format) return `${schema.type} (${schema.format})`;
  if (schema.type === "array" && schema.items) return `array of ${describe(schema.items)}`;
  return Array.isArray(schema.type) ? schema.type.join(" or ") : schema.type || "any JSON";
}
