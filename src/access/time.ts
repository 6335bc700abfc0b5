/** A moment as a door in `timeZone` sees it: its calendar day, weekday (0 = Sunday) and minute of the day. */
export interface LocalMoment {
  day: string;
  weekday: number;
  minute: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/**
 * Wall-clock time at the site, from the IANA database: a 08:00–17:00 window means 08:00 local on both sides of a
 * daylight-saving change, whatever the UTC offset that day.
 */
export function localMoment(at: Date, timeZone: string): LocalMoment {
  // Every zone's offset is whole minutes, so within one UTC minute the local minute is the same: formatting (the
  // slow part of a door decision) is done once a minute per zone.
  const minute = Math.floor(at.getTime() / 60_000);
  const last = lastMoments.get(timeZone);
  if (last?.minute === minute) return last.moment;
  const moment = formatMoment(at, timeZone);
  lastMoments.set(timeZone, { minute, moment });
  return moment;
}

const lastMoments = new Map<string, { minute: number; moment: LocalMoment }>();

function formatMoment(at: Date, timeZone: string): LocalMoment {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', weekday: 'short', hour: '2-digit', minute: '2-digit' });
    formatters.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(at).map((p) => [p.type, p.value]));
  return {
    day: `${parts.year}-${parts.month}-${parts.day}`,
    weekday: WEEKDAYS.indexOf(parts.weekday!),
    minute: Number(parts.hour) * 60 + Number(parts.minute),
  };
}
