import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileSchemaFile } from './jsonSchema.js';
import { LineCounter, parseDocument, isMap, isSeq, type Node } from 'yaml';
import type { Config } from './Config.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[], readonly file: string | null) {
    super(`invalid configuration${file ? ` in ${file}` : ''}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const schemaPath = resolve(repoRoot, 'config/schema.json');
export const demoConfigPath = resolve(repoRoot, 'config/demo.yaml');

/** The example config's placeholder: valid in shape, but it must never guard a real PBX door. */
export const PLACEHOLDER_TOKEN = /REPLACE/i;

/** Things that are valid but wrong for production; `--check-config` prints them, the daemon refuses the first. */
export function configWarnings(cfg: Config): string[] {
  const out: string[] = [];
  if (PLACEHOLDER_TOKEN.test(cfg.signals.token)) out.push('signals.token: still the example placeholder: set 32+ random characters (e.g. `openssl rand -hex 24`), the same on the PBX');
  return out;
}

const validate = compileSchemaFile(schemaPath);

/** Reads, validates and resolves a YAML config; every problem names its key and line. */
export function loadConfig(file: string): Config {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read: ${(err as Error).message}`], abs);
  }
  return parseConfig(text, abs);
}

export function parseConfig(text: string, file: string | null): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]} (line ${lines.linePos(e.pos[0]).line})`), file);
  }
  const raw = doc.toJS() ?? {};
  const lineOf = (path: (string | number)[]): string => {
    const node = doc.getIn(path, true) as Node | undefined;
    const pos = node?.range?.[0] ?? nodeForParent(doc.contents as Node, path)?.range?.[0];
    return ` (line ${pos === undefined ? 1 : lines.linePos(pos).line})`;
  };
  if (!validate(raw)) {
    const problems = (validate.errors ?? []).map((e) => {
      const path = e.instancePath.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
      let key = path.join('.') || '(top level)';
      let detail = e.message ?? 'invalid';
      if (e.keyword === 'additionalProperties') {
        const extra = String((e.params as { additionalProperty: string }).additionalProperty);
        path.push(extra);
        key = path.join('.');
        detail = 'unknown key';
      } else if (e.keyword === 'required') {
        key = [...path, (e.params as { missingProperty: string }).missingProperty].join('.');
        detail = 'is required';
      } else if (e.keyword === 'enum') {
        detail = `must be one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`;
      }
      return `${key}: ${detail}${lineOf(path)}`;
    });
    throw new ConfigError(problems, file);
  }
  const cfg = raw as Omit<Config, 'source'>;
  // maxQueue's default depends on the rate and buffer size: 2.5 s of audio, over the 2 s minimum.
  for (const card of cfg.cards) card.maxQueue ??= Math.ceil((2.5 * card.sampleRate) / card.framesPerBuffer);
  const base = file ? dirname(file) : repoRoot;
  const problems = crossCheck(cfg, lineOf);
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: cfg.display.timeZone });
  } catch {
    problems.push(`display.timeZone: not an IANA time zone: ${cfg.display.timeZone}${lineOf(['display', 'timeZone'])}`);
  }
  if (problems.length > 0) throw new ConfigError(problems, file);
  const at = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  cfg.cards.forEach((card, i) => {
    if (!card.speech) return;
    card.speech = card.speech.map(at);
    card.speech.forEach((spec, j) => {
      const wav = spec.replace(/#\d+$/, '');
      if (!existsSync(wav)) problems.push(`cards.${i}.speech.${j}: no such file: ${wav}${lineOf(['cards', i, 'speech', j])}`);
    });
  });
  if (problems.length > 0) throw new ConfigError(problems, file);
  const keys = cfg.keys.masterFile ? { ...cfg.keys, masterFile: at(cfg.keys.masterFile) } : cfg.keys;
  const tls = cfg.admin.tls;
  if (tls) for (const f of [tls.certFile, tls.keyFile]) if (!existsSync(at(f))) problems.push(`admin.tls: no such file: ${at(f)}${lineOf(['admin', 'tls'])}`);
  if (problems.length > 0) throw new ConfigError(problems, file);
  const admin = tls ? { ...cfg.admin, tls: { certFile: at(tls.certFile), keyFile: at(tls.keyFile) } } : cfg.admin;
  return { ...cfg, source: file, dataDir: at(cfg.dataDir), control: { socket: at(cfg.control.socket) }, keys, admin };
}

function nodeForParent(root: Node, path: (string | number)[]): Node | undefined {
  let node: unknown = root;
  for (const key of path) {
    if (isMap(node)) node = node.get(key, true);
    else if (isSeq(node)) node = node.get(key as number, true);
    else return node as Node | undefined;
  }
  return node as Node | undefined;
}

/** Rules a JSON Schema cannot state: references between cards and lines. */
function crossCheck(cfg: Omit<Config, 'source'>, lineOf: (p: (string | number)[]) => string): string[] {
  const problems: string[] = [];
  const cards = new Map<string, Config['cards'][number]>();
  cfg.cards.forEach((card, i) => {
    if (cards.has(card.id)) problems.push(`cards.${i}.id: duplicate card id "${card.id}"${lineOf(['cards', i, 'id'])}`);
    cards.set(card.id, card);
    if (card.backend === 'portaudio' && !card.device) problems.push(`cards.${i}.device: is required for backend portaudio${lineOf(['cards', i])}`);
    if (card.backend === 'portaudio' && (card.framesPerBuffer * card.maxQueue) / card.sampleRate < 2) {
      problems.push(`cards.${i}.maxQueue: framesPerBuffer x maxQueue must hold at least 2 s of audio (${card.framesPerBuffer * card.maxQueue} frames at ${card.sampleRate} Hz)${lineOf(['cards', i, 'maxQueue'])}`);
    }
  });
  const lineIds = new Set<string>();
  const used = new Map<string, string>();
  cfg.lines.forEach((line, i) => {
    if (lineIds.has(line.id)) problems.push(`lines.${i}.id: duplicate line id "${line.id}"${lineOf(['lines', i, 'id'])}`);
    lineIds.add(line.id);
    const card = cards.get(line.card);
    if (!card) {
      problems.push(`lines.${i}.card: no card "${line.card}"${lineOf(['lines', i, 'card'])}`);
      return;
    }
    line.channels.forEach((ch, j) => {
      if (line.channels.indexOf(ch) !== j) {
        problems.push(`lines.${i}.channels.${j}: channel ${ch} is listed twice${lineOf(['lines', i, 'channels', j])}`);
        return;
      }
      if (ch >= card.channels) problems.push(`lines.${i}.channels.${j}: card "${card.id}" has channels 0-${card.channels - 1}${lineOf(['lines', i, 'channels', j])}`);
      const key = `${card.id}:${ch}`;
      if (used.has(key)) problems.push(`lines.${i}.channels.${j}: channel ${ch} of card "${card.id}" is already line "${used.get(key)}"${lineOf(['lines', i, 'channels', j])}`);
      used.set(key, line.id);
    });
  });
  return problems;
}
