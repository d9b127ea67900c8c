import type { Role } from './permissions.js';

/** An account: personal, never shared. Disabled, never deleted (the audit trail refers to it by name). */
export interface User {
  id: string;
  username: string;
  displayName: string;
  roles: Role[];
  /** For an agent: the adviser id the PBX sends in its answer signal. */
  agentId: string | null;
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
  passwordChangedAt: string;
  passwordHash: string;
}

/** What leaves the box about an account (API, CLI): never the hash. */
export type PublicUser = Omit<User, 'passwordHash'>;

export const publicUser = ({ passwordHash: _h, ...u }: User): PublicUser => u;

/** Lower-case letters, digits, dot, dash, underscore; starts with a letter; 2-64 characters. */
export const USERNAME = /^[a-z][a-z0-9._-]{1,63}$/;
