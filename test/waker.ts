// Lets a waiting loop in the tests and the soak script sleep until new input arrives or a
// deadline passes, instead of polling on a short timer.

/**
 * One sleeper at a time, woken early by whoever receives input.
 *
 * @example
 * ```ts
 * const waker = new Waker();
 * socket.on("data", (d) => { received += d; waker.wake(); });
 * while (!received.includes("ok") && Date.now() < deadline) await waker.sleep(deadline - Date.now());
 * ```
 */
export class Waker {
  #wake: (() => void) | undefined;

  /** Resolves after `ms` milliseconds (at least 1), or sooner when {@link wake} is called. */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      this.#wake = done;
    });
  }

  /** Ends the current sleep, if there is one. */
  wake(): void {
    this.#wake?.();
  }
}
