import { resolve } from 'node:path';

/** Real speech shipped in the repo: the virtual card's files, and a few test-only ones. */
export const bundledSpeech = (file: string): string => resolve('daemon/capture/speech', file);
export const testSpeech = (file: string): string => resolve('test/fixtures/speech', file);
