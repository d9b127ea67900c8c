import { fileURLToPath } from 'node:url';
import type { ValidateFunction } from 'ajv';
import { compileSchemaDef } from '../config/jsonSchema.js';
import { ServiceError } from './errors.js';

const schemaFile = fileURLToPath(new URL('../../../docs/schemas/api-requests.schema.json', import.meta.url));
const schema = (name: string): ValidateFunction => compileSchemaDef(schemaFile, name);

/**
 * The requests both doors take, as docs/schemas/api-requests.schema.json defines them: the API checks
 * its bodies and the control socket its params against the same validators, so neither lets through a
 * shape the other refuses.
 */
export const REQUEST = {
  login: schema('LoginRequest'),
  search: schema('CallSearchRequest'),
  destroy: schema('DestroyRequest'),
  training: schema('TrainingMarkRequest'),
  newUser: schema('NewUserRequest'),
  userChange: schema('UserChangeRequest'),
  reset: schema('PasswordResetRequest'),
  change: schema('PasswordChangeRequest'),
  audit: schema('AuditSearchRequest'),
  empty: schema('Empty'),
} as const;

/** `value` if it is a valid request, else bad_request naming the first field at fault. */
export function checked<T>(validate: ValidateFunction, value: unknown): T {
  if (!validate(value)) {
    const e = validate.errors?.[0];
    const where = e?.instancePath ? e.instancePath.slice(1).replaceAll('/', '.') : 'body';
    const extra = e?.keyword === 'additionalProperties' ? `: unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}` : ` ${e?.message ?? 'is not valid'}`;
    throw new ServiceError('bad_request', `${where}${extra}`);
  }
  return value as T;
}

/**
 * A request's fields picked out of socket params (which also carry what the API has in its URL, such as
 * a call id or a user name), by the schema's own properties, then checked as `checked` does.
 */
export function paramsFor<T>(validate: ValidateFunction, params: Record<string, unknown>): T {
  const fields = Object.keys((validate.schema as { properties?: Record<string, unknown> }).properties ?? {});
  return checked<T>(validate, Object.fromEntries(fields.filter((k) => params[k] !== undefined).map((k) => [k, params[k]])));
}
