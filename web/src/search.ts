// Symbol search as you type (ListSymbols with `query`), exchanges as
// filters. Typing fast sends one call per pause, and an answer to an older
// query never replaces a newer one.

import type { registry } from "@wizdata/client";
import { call, mesh } from "./mesh";
import { notify } from "./notices";

const input = document.querySelector<HTMLInputElement>("#search")!;
const exchanges = document.querySelector<HTMLDivElement>("#exchanges")!;
const results = document.querySelector<HTMLUListElement>("#results")!;

export async function startSearch(onChart: (symbol: string) => void, onWatch: (symbol: string) => void) {
  let exchange = "";
  let latest = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const show = (symbols: registry.Symbol[]) => {
    results.replaceChildren(
      ...symbols.map((symbol) => {
        const item = document.createElement("li");
        item.dataset.ticker = symbol.ticker;
        const name = document.createElement("span");
        name.append(Object.assign(document.createElement("b"), { textContent: symbol.ticker }), ` ${symbol.name}`);
        const watch = Object.assign(document.createElement("button"), { textContent: "+", title: `Watch ${symbol.ticker}` });
        watch.addEventListener("click", (event) => {
          event.stopPropagation();
          onWatch(symbol.ticker);
        });
        item.append(name, Object.assign(document.createElement("small"), { textContent: symbol.exchange }), watch);
        item.addEventListener("click", () => onChart(symbol.ticker));
        return item;
      }),
    );
    if (!symbols.length) results.append(Object.assign(document.createElement("li"), { className: "empty", textContent: "No symbol matches." }));
  };

  const search = async () => {
    const asked = ++latest;
    const query = input.value.trim();
    try {
      const page = await call("the search", () => mesh.registry.listSymbols({ query, exchange, pageSize: 20 }));
      if (asked === latest) show(page.symbols);
    } catch (error) {
      if (asked === latest) notify("error", `Search failed: ${(error as { message?: string }).message ?? error}`);
    }
  };

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 200);
  });

  // The first results and the exchange filters load side by side.
  const firstResults = search();
  try {
    const listed = await call("the exchanges", () => mesh.registry.listExchanges({}));
    const chips = [{ code: "", name: "All exchanges" }, ...listed.exchanges].map(({ code, name }) => {
      const chip = Object.assign(document.createElement("button"), { textContent: code || "All", title: name, type: "button" });
      chip.dataset.exchange = code;
      chip.setAttribute("aria-pressed", String(code === exchange));
      chip.addEventListener("click", () => {
        exchange = code;
        exchanges.querySelectorAll("button").forEach((other) => other.setAttribute("aria-pressed", String(other === chip)));
        void search();
      });
      return chip;
    });
    exchanges.replaceChildren(...chips);
  } catch (error) {
    notify("error", `Exchanges could not be listed: ${(error as { message?: string }).message ?? error}`);
  }
  await firstResults;
}
