// The watch list's live quote board: one Subscribe (quotes) for every
// symbol on it, each row flashing when its last price moves.

import { streaming, type market } from "@wizdata/client";
import { mesh } from "./mesh";
import { notify } from "./notices";
import { keepStreaming } from "./streams";

const body = document.querySelector<HTMLTableSectionElement>("#quotes tbody")!;
const WATCH_STORAGE = "wizdata.watchList";

export class QuoteBoard {
  private symbols: string[];
  private stop?: () => void;
  private rows = new Map<string, HTMLTableRowElement>();

  constructor(initial: string[], private readonly onPick: (symbol: string) => void) {
    const stored = localStorage.getItem(WATCH_STORAGE);
    this.symbols = initial.length ? initial : stored ? JSON.parse(stored) : ["BTC/USDT", "ETH/USDT", "NPN", "AAPL"];
    this.render();
  }

  add(symbol: string) {
    if (this.symbols.includes(symbol)) return;
    this.symbols.push(symbol);
    this.render();
  }

  remove(symbol: string) {
    this.symbols = this.symbols.filter((watched) => watched !== symbol);
    this.render();
  }

  /** The last quote per symbol, as the rows show it (for tests and people). */
  snapshot(): Record<string, { last: string; stale: boolean }> {
    return Object.fromEntries(
      [...this.rows].map(([symbol, row]) => [symbol, { last: row.cells[1].textContent ?? "", stale: row.dataset.stale === "true" }]),
    );
  }

  private render() {
    localStorage.setItem(WATCH_STORAGE, JSON.stringify(this.symbols));
    body.replaceChildren();
    this.rows.clear();
    for (const symbol of this.symbols) {
      const row = body.insertRow();
      row.dataset.symbol = symbol;
      row.insertCell().textContent = symbol;
      for (let cell = 0; cell < 5; cell += 1) row.insertCell().textContent = "–";
      row.title = "No quote yet: no trade since the mesh started";
      const remove = document.createElement("button");
      remove.textContent = "×";
      remove.title = `Remove ${symbol}`;
      remove.addEventListener("click", (event) => {
        event.stopPropagation();
        this.remove(symbol);
      });
      row.insertCell().append(remove);
      row.addEventListener("click", () => this.onPick(symbol));
      this.rows.set(symbol, row);
    }
    this.resubscribe();
  }

  private resubscribe() {
    this.stop?.();
    if (!this.symbols.length) return;
    const symbols = [...this.symbols];
    this.stop = keepStreaming(
      "quotes",
      (signal, onHeader) => mesh.streaming.subscribe({ symbols, channels: [streaming.Channel.QUOTES] }, { signal, onHeader }),
      (event) => {
        if (event.payload.case === "quote") this.show(event.payload.value);
      },
      (message) => {
        notify("error", `The watch list was refused: ${message}`);
        // Drop what the stream named as unknown, and keep the rest live.
        const unknown = symbols.filter((symbol) => message.includes(symbol));
        if (unknown.length && unknown.length < symbols.length) unknown.forEach((symbol) => this.remove(symbol));
      },
    );
  }

  private show(quote: market.Quote) {
    const row = this.rows.get(quote.symbol);
    if (!row) return;
    const [, last, change, percent, bid, ask] = row.cells;
    const previous = Number(row.dataset.last ?? NaN);
    const digits = quote.lastPrice < 10 ? 4 : 2;
    last.textContent = quote.lastPrice.toFixed(digits);
    change.textContent = signed(quote.change, digits);
    percent.textContent = `${signed(quote.changePercent, 2)}%`;
    bid.textContent = quote.bid ? quote.bid.toFixed(digits) : "–";
    ask.textContent = quote.ask ? quote.ask.toFixed(digits) : "–";
    row.dataset.direction = quote.change >= 0 ? "up" : "down";
    row.dataset.stale = String(quote.stale);
    row.title = quote.stale ? "Stale: no update within the service's staleness bound" : "";
    if (!Number.isNaN(previous) && previous !== quote.lastPrice) {
      row.classList.remove("flash-up", "flash-down");
      void row.offsetWidth; // restart the animation
      row.classList.add(quote.lastPrice > previous ? "flash-up" : "flash-down");
    }
    row.dataset.last = String(quote.lastPrice);
  }
}

const signed = (value: number, digits: number) => `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
