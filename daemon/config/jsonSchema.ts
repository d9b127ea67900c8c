import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';

const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: false });

/** Compiles a JSON Schema (2020-12) file: the documented schemas are the validators, not copies of them. */
export function compileSchemaFile(path: string): ValidateFunction {
  return ajv.compile(JSON.parse(readFileSync(path, 'utf8')));
}

const files = new Map<string, Record<string, unknown>>();

/** One definition (`$defs/<name>`) of a schema file, compiled: the API's request bodies. */
export function compileSchemaDef(path: string, name: string): ValidateFunction {
  let root = files.get(path);
  if (!root) {
    root = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    ajv.addSchema(root);
    files.set(path, root);
  }
  const v = ajv.getSchema(`${root.$id as string}#/$defs/${name}`);
  if (!v) throw new Error(`${path} has no $defs/${name}`);
  return v;
}
