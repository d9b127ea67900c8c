import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../../../daemon/capture/speech/', import.meta.url));

/**
 * The virtual card's embedded speech, one entry per channel (cycled past eight): six single speakers,
 * then the two sides of a real two-party dialogue, so channels 6 and 7 make a split (caller/adviser) line.
 */
export const DEFAULT_SPEECH = [
  'en-allison-demo-congrats.wav',
  'it-carlo-demo-congrats.wav',
  'codec2-david4.wav',
  'en-allison-priv-callee-options.wav',
  'it-carlo-priv-callee-options.wav',
  'en-allison-conf-adminmenu-18.wav',
  'dialogue-two-party.wav#0',
  'dialogue-two-party.wav#1',
].map((f) => dir + f);
