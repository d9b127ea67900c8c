import t from 'tap';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, loadConfig, parseConfig } from '../daemon/config/loadConfig.js';

const problems = (yaml: string): string[] => {
  try {
    parseConfig(yaml, '/etc/callrec/config.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

const valid = `cards:
  - id: c0
    backend: virtual
    channels: 2
lines:
  - id: L1
    card: c0
    channels: [0]
signals:
  token: 0123456789abcdef0123
`;

t.test('every example config in config/ is complete and valid', async (t) => {
  const files = readdirSync('config').filter((f) => f.endsWith('.yaml'));
  t.ok(files.length >= 2, `found ${files.join(', ')}`);
  for (const f of files) t.doesNotThrow(() => loadConfig(resolve('config', f)), f);
});

t.test('defaults fill what a config leaves out', async (t) => {
  const cfg = parseConfig(valid, '/etc/callrec/config.yaml');
  t.equal(cfg.phone.defaultRegion, 'FI');
  t.equal(cfg.encode.bitrate, 16000);
  t.equal(cfg.encode.complexity, 5);
  t.equal(cfg.recording.pageFlushMs, 500);
  t.equal(cfg.signals.host, '127.0.0.1', 'the PBX door binds to loopback unless configured');
  t.equal(cfg.dataDir, '/var/lib/callrec');
  t.equal(cfg.cards[0]!.sampleRate, 8000);
});

t.test('each error names its key and line', async (t) => {
  t.same(problems(valid + 'colour: blue\n'), ['colour: unknown key (line 11)']);
  t.same(problems(valid.replace('channels: 2', 'channels: two')), ['cards.0.channels: must be integer (line 4)']);
  t.same(problems(valid.replace('backend: virtual', 'backend: alsa')), ['cards.0.backend: must be one of ["virtual","portaudio"] (line 3)']);
  t.same(problems(valid.replace('channels: [0]', 'channels: [5]')), ['lines.0.channels.0: card "c0" has channels 0-1 (line 8)']);
  t.same(problems(valid.replace('card: c0', 'card: c9')), ['lines.0.card: no card "c9" (line 7)']);
  t.same(problems(valid.replace('  token: 0123456789abcdef0123\n', '  port: 8460\n')), ['signals.token: is required (line 10)']);
  t.match(problems(valid + 'lines: [\n'), [/^YAML: .*line \d+/]);
  t.same(problems(valid.replace('backend: virtual', 'backend: portaudio')), ['cards.0.device: is required for backend portaudio (line 2)']);
  t.same(
    problems(valid.replace('backend: virtual', 'backend: portaudio\n    device: hw\n    framesPerBuffer: 100\n    maxQueue: 10')),
    ['cards.0.maxQueue: framesPerBuffer x maxQueue must hold at least 2 s of audio (1000 frames at 8000 Hz) (line 6)'],
  );
  t.same(problems(valid + 'display:\n  timeZone: Mars/Olympus\n'), ['display.timeZone: not an IANA time zone: Mars/Olympus (line 12)']);
  t.same(problems(valid.replace('channels: [0]', 'channels: [1, 1]')), ['lines.0.channels.1: channel 1 is listed twice (line 8)']);
  t.same(problems(valid.replace('channels: 2', 'channels: 2\n    speech: [nothing-here.wav]')), ['cards.0.speech.0: no such file: /etc/callrec/nothing-here.wav (line 5)']);
  const twice = valid.replace('signals:', '  - id: L1\n    card: c0\n    channels: [0]\nsignals:');
  t.same(problems(twice).sort(), ['lines.1.channels.0: channel 0 of card "c0" is already line "L1" (line 11)', 'lines.1.id: duplicate line id "L1" (line 9)'].sort());
});

t.test('the example\'s placeholder token passes the schema but is flagged, and the daemon refuses it', async (t) => {
  const { configWarnings } = await import('../daemon/config/loadConfig.js');
  const example = loadConfig(resolve('config/callrec.example.yaml'));
  t.match(configWarnings(example), [/signals.token: still the example placeholder/]);
  const { execFile } = await import('node:child_process');
  const code = await new Promise<number | null>((r) => execFile(process.execPath, [resolve('dist/daemon/bin/callrecd.js'), '--config', resolve('config/callrec.example.yaml')], (err) => r(err ? (err as { code: number }).code : 0)));
  t.equal(code, 1);
  t.same(configWarnings(loadConfig(resolve('config/demo.yaml'))), []);
});
