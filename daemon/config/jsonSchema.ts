import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';

const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: false });

/** Compiles a JSON Schema (2020-12) file: the documented schemas are the validators, not copies of them. */
export function compileSchemaFile(path: string): ValidateFunction {
  return ajv.compile(JSON.parse(readFileSync(path, 'utf8')));
}
