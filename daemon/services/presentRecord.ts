import type { RecordingMeta } from '../store/RecordingMeta.js';

/** What a restricted-presentation number is shown as to whoever may not see it. */
export const MASKED_CALLER = 'restricted';

/** A recording as a person sees it: `callerMasked` says whether the caller number was withheld from them. */
export type PresentedRecord = RecordingMeta & { callerMasked: boolean };

/**
 * The caller chose not to show their number (restricted presentation): only the roles that answer
 * subject requests see it; everyone else gets `caller: "restricted"`, `callerNormalized: null`,
 * `callerMasked: true`.
 */
export function presentRecord(m: RecordingMeta, unmasked: boolean): PresentedRecord {
  if (m.callerPresentation !== 'restricted' || unmasked) return { ...m, callerMasked: false };
  return { ...m, caller: MASKED_CALLER, callerNormalized: null, callerMasked: true };
}
