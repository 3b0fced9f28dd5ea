// The page's one client of the mesh (gRPC-Web, same origin), the caller's
// API key in session storage, and the rules every call follows: a refusal
// waits out its RetryInfo delay before anything else is sent, an unavailable
// backend is retried with backoff, and the user is told which.

import { Code, createWizdataClient, errorDetails, type WizdataErrorDetails } from "@wizdata/client";
import { notify, showAllowance } from "./notices";

const KEY_STORAGE = "wizdata.apiKey";

export const mesh = createWizdataClient(location.origin, {
  transport: "grpc-web",
  apiKey: sessionStorage.getItem(KEY_STORAGE) ?? undefined,
});

/** Until when the gateway asked us to stop calling (RetryInfo): every call waits. */
let quietUntil = 0;

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/** Exponential backoff with jitter: 0.5 s, 1 s, 2 s … up to 15 s. */
export const backoff = (attempt: number) => Math.min(15_000, 500 * 2 ** attempt) * (0.75 + Math.random() / 2);

/** Waits out a rate-limit refusal seen by any call. */
export async function waitForAllowance(signal?: AbortSignal) {
  const wait = quietUntil - Date.now();
  if (wait > 0) await sleep(wait, signal);
}

/** Remembers a refusal's retry time; says so. Returns how long to wait. */
export function respectRefusal(details: WizdataErrorDetails, what: string): number {
  const wait = details.retryDelayMs ?? 1000;
  quietUntil = Math.max(quietUntil, Date.now() + wait);
  notify("warn", `Rate limit reached: ${what} waits ${Math.ceil(wait / 1000)} s before calling again (${details.message}).`, wait);
  return wait;
}

/** A unary call under the page's rules. Throws the decoded error when the
 * call fails for good (an unknown symbol, a bad argument). */
export async function call<T>(what: string, run: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    await waitForAllowance();
    try {
      const answer = await run();
      showAllowance(mesh.rateLimit);
      return answer;
    } catch (error) {
      showAllowance(mesh.rateLimit);
      const details = errorDetails(error);
      if (details.code === Code.ResourceExhausted && attempt < 3) {
        respectRefusal(details, what);
        continue;
      }
      if ((details.code === Code.Unavailable || details.code === Code.Unknown) && attempt < 4) {
        const wait = backoff(attempt);
        notify("error", `The mesh is unavailable (${details.message || "no answer"}): retrying ${what} in ${(wait / 1000).toFixed(1)} s.`, wait);
        await sleep(wait);
        continue;
      }
      throw details;
    }
  }
}

/** Checks a key with WhoAmI; a wrong or revoked one is dropped and the page
 * carries on anonymously, saying so. */
export async function useKey(key: string | undefined): Promise<void> {
  mesh.apiKey = key || undefined;
  if (!mesh.apiKey) {
    sessionStorage.removeItem(KEY_STORAGE);
    notify("info", "Calls are anonymous (reads only, at the anonymous rate limit).", 4000);
    return;
  }
  try {
    const me = await call("the key check", () => mesh.auth.whoAmI({}));
    sessionStorage.setItem(KEY_STORAGE, mesh.apiKey);
    notify("info", `Signed in as ${me.subject}.`, 4000);
  } catch (error) {
    const details = error as WizdataErrorDetails;
    mesh.apiKey = undefined;
    sessionStorage.removeItem(KEY_STORAGE);
    notify("error", `API key refused (${details.codeName}: ${details.message}). Calls are anonymous.`);
  }
}
