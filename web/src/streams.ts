// A live stream that comes back: reopened after any failure with backoff
// (after a refusal, after its RetryInfo delay), its state shown in the
// header, until stopped.

import { Code, errorDetails, type streaming } from "@wizdata/client";
import { backoff, respectRefusal, sleep, waitForAllowance } from "./mesh";
import { forgetStream, notify, streamState } from "./notices";

/** Opens the stream; `onHeader` is called when the mesh has accepted it,
 * before any event (a quiet symbol may send none for a while). */
export type Events = (signal: AbortSignal, onHeader: () => void) => AsyncIterable<streaming.SubscribeResponse>;

/** Runs `open` until stopped, passing each event to `onEvent`; a stream
 * refused for good (an unknown symbol) goes to `onRefused` and ends. */
export function keepStreaming(
  name: string,
  open: Events,
  onEvent: (event: streaming.MarketEvent) => void,
  onRefused: (message: string) => void,
): () => void {
  const stop = new AbortController();
  (async () => {
    let attempt = 0;
    while (!stop.signal.aborted) {
      streamState(name, attempt === 0 ? "connecting" : "reconnecting");
      await waitForAllowance(stop.signal);
      try {
        const accepted = () => {
          if (attempt > 0) notify("info", `The ${name} stream is back.`, 3000);
          attempt = 0;
          streamState(name, "live");
        };
        for await (const answer of open(stop.signal, accepted)) {
          if (answer.payload.case === "event") onEvent(answer.payload.value);
        }
        if (stop.signal.aborted) break;
        throw new Error("the stream ended");
      } catch (error) {
        if (stop.signal.aborted) break;
        const details = errorDetails(error);
        if (details.code === Code.InvalidArgument || details.code === Code.NotFound || details.code === Code.PermissionDenied) {
          onRefused(details.message);
          break;
        }
        let wait = backoff(attempt);
        if (details.code === Code.ResourceExhausted) wait = Math.max(wait, respectRefusal(details, `the ${name} stream`));
        else notify("error", `Lost the ${name} stream (${details.message || details.codeName}): reconnecting in ${(wait / 1000).toFixed(1)} s.`, wait);
        streamState(name, "reconnecting", `(${name})`);
        attempt += 1;
        await sleep(wait, stop.signal);
      }
    }
    forgetStream(name);
  })();
  return () => stop.abort();
}
