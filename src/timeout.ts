// A timeout of any length. Node's timers take at most 2^31 - 1 ms (~24.8 days): a longer delay
// becomes 1 ms, with a TimeoutOverflowWarning (timers docs, setTimeout), so `wait --timeout 2147484`
// would give up at once. Longer delays are made of several timers.

export interface LongTimeout {
  clear(): void;
  ref(): void;
  unref(): void;
}

const MAX_MS = 2 ** 31 - 1;

/** Calls `fn` once `ms` milliseconds have passed (`Infinity`: never). Refed, as setTimeout is. */
export function setLongTimeout(fn: () => void, ms: number): LongTimeout {
  let timer: NodeJS.Timeout | undefined;
  let refd = true;
  const arm = (left: number): void => {
    if (left === Number.POSITIVE_INFINITY) {
      // Nothing to fire; a refed handle still keeps the process up, as the caller asked.
      timer = setInterval(() => {}, MAX_MS);
    } else {
      timer = setTimeout(() => (left > MAX_MS ? arm(left - MAX_MS) : fn()), Math.min(Math.max(left, 0), MAX_MS));
    }
    if (!refd) timer.unref();
  };
  arm(ms);
  return {
    clear: () => clearTimeout(timer),
    ref: () => {
      refd = true;
      timer?.ref();
    },
    unref: () => {
      refd = false;
      timer?.unref();
    },
  };
}
