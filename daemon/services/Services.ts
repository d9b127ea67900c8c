import type { Actor } from '../access/Actor.js';
import { PERMISSIONS, ROLES, type Grant, type Permission, type Role, type Scope } from '../access/permissions.js';
import type { AuditService } from './AuditService.js';
import type { CallService } from './CallService.js';
import type { SessionService } from './SessionService.js';
import type { SystemService } from './SystemService.js';
import type { UserService } from './UserService.js';

/** The one service layer both doors (API, CLI) are given. */
export class Services {
  constructor(
    readonly calls: CallService,
    readonly users: UserService,
    readonly sessions: SessionService,
    readonly audit: AuditService,
    readonly system: SystemService,
    private readonly grants: () => Record<Role, Grant>,
  ) {}

  /** The permission matrix as configured, and what the asking actor holds (the admin page draws its menus from it). */
  roles(actor: Actor): { roles: readonly Role[]; permissions: readonly Permission[]; matrix: Record<Role, Grant>; mine: Partial<Record<Permission, Scope>> } {
    const matrix = this.grants();
    const mine: Partial<Record<Permission, Scope>> = {};
    for (const r of actor.roles) for (const [p, s] of Object.entries(matrix[r]) as Array<[Permission, Scope]>) if (mine[p] !== 'all') mine[p] = s;
    return { roles: ROLES, permissions: PERMISSIONS, matrix, mine };
  }
}
