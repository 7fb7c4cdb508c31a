/** Wraps a command action that returns its exit code, so `main` can return it. */
export function exitCode<A extends unknown[]>(fn: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    process.exitCode = await fn(...args);
  };
}
