// Durations on the command line. The library takes milliseconds; people at a shell write seconds, or
// a number with a unit as systemd (systemd.time(7)) and Go (time.ParseDuration) write them: 500ms, 5s,
// 2m, 1h, 1m30s. One parser for every option and operand that is a duration (`run`'s [duration],
// `wait --timeout`), so they all take the same forms and fail with the same words.

/** Milliseconds per unit. `min` is systemd's spelling of minutes, `m` Go's; both are taken. */
const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** The forms a duration takes, for messages and help. */
export const DURATION_FORMS = 'seconds (30, 0.5), or 500ms, 5s, 2m, 1h, 1d, 1m30s';

/**
 * Milliseconds of `text`, or a one-line reason it is not a duration. A plain number is seconds
 * (fractions allowed: `0.2`); a number with a unit may be followed by more, each unit smaller than the
 * one before (`1h30m`, `2m30s500ms`), so a typo such as `5m5m` is refused rather than summed. No sign,
 * no exponent: a negative or absurd duration is a mistake. The result may pass 2^31 ms: callers wait
 * through setLongTimeout (timeout.ts), which Node's setTimeout alone cannot (it fires at once).
 */
export function parseDuration(text: string): number | { error: string } {
  const bad = { error: `'${text}' is not a duration: give ${DURATION_FORMS}` };
  if (/^\d+(\.\d+)?$/.test(text)) return Number.isFinite(Number(text) * 1000) ? Number(text) * 1000 : bad;
  const parts = /^(?:\d+(?:\.\d+)?[a-z]+)+$/.test(text) ? text.match(/\d+(?:\.\d+)?[a-z]+/g) : null;
  if (parts === null) return bad;
  let ms = 0;
  let last = Number.POSITIVE_INFINITY;
  for (const part of parts) {
    const [, number, unit] = /^(\d+(?:\.\d+)?)([a-z]+)$/.exec(part) as unknown as [string, string, string];
    const size = UNITS[unit];
    if (size === undefined) return { error: `'${text}': unknown unit '${unit}' (units: ms, s, m or min, h, d)` };
    if (size >= last) return { error: `'${text}': each unit must be smaller than the one before (as in 1h30m)` };
    last = size;
    ms += Number(number) * size;
  }
  return Number.isFinite(ms) ? ms : bad;
}

/** "3m12s": the two largest units of a duration, for people (status's uptimes). */
export function formatDuration(ms: number): string {
  let s = Math.max(0, Math.floor(ms / 1000));
  const units: Array<[string, number]> = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const parts: string[] = [];
  for (const [unit, size] of units) {
    if (s >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join('');
}
