// What the page tells its user: one notice line (an unknown symbol, a
// refusal and its retry time, a lost connection), the connection state of
// the live streams, and the rate-limit allowance left.

import type { RateLimit } from "@wizdata/client";

const notice = document.querySelector<HTMLDivElement>("#notice")!;
const connection = document.querySelector<HTMLDivElement>("#connection")!;
const allowance = document.querySelector<HTMLDivElement>("#allowance")!;
let clearTimer: ReturnType<typeof setTimeout> | undefined;

export type NoticeKind = "info" | "warn" | "error";

/** Shows `text`; it clears itself after `forMs` when given. */
export function notify(kind: NoticeKind, text: string, forMs?: number) {
  notice.hidden = false;
  notice.dataset.kind = kind;
  notice.textContent = text;
  clearTimeout(clearTimer);
  if (forMs !== undefined) clearTimer = setTimeout(() => (notice.hidden = true), Math.max(forMs, 2500));
}

const streamStates = new Map<string, string>();

/** Records one stream's state; the header shows the worst of them. */
export function streamState(stream: string, state: "live" | "connecting" | "reconnecting", detail = "") {
  streamStates.set(stream, state);
  const states = [...streamStates.values()];
  const worst = states.includes("reconnecting") ? "reconnecting" : states.includes("connecting") ? "connecting" : "live";
  connection.dataset.state = worst;
  connection.textContent = worst === "reconnecting" ? `reconnecting… ${detail}` : worst === "live" ? "live" : "connecting…";
}

export function forgetStream(stream: string) {
  streamStates.delete(stream);
}

export function showAllowance(limit: RateLimit | undefined) {
  allowance.textContent = limit ? `${limit.remaining}/${limit.limit} calls left` : "";
  allowance.dataset.remaining = limit ? String(limit.remaining) : "";
}
