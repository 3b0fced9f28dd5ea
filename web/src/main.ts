// The WizData dashboard: symbol search, a live quote board, a candlestick
// chart with indicator overlays, all over gRPC-Web from the gateway that
// serves this page. The URL keeps the view: ?symbol=SBK&interval=1m&watch=BTC/USDT,NPN&indicators=SMA:time_period=20

import "./style.css";
import { type indicator, market } from "@wizdata/client";
import { INTERVAL_SECONDS, PriceChart, labelOf } from "./chart";
import { call, mesh, useKey } from "./mesh";
import { notify } from "./notices";
import { QuoteBoard } from "./quotes";
import { startSearch } from "./search";

const params = new URLSearchParams(location.search);
const chart = new PriceChart(document.querySelector<HTMLDivElement>("#chart")!);
const intervalSelect = document.querySelector<HTMLSelectElement>("#interval")!;
const indicatorSelect = document.querySelector<HTMLSelectElement>("#indicator")!;
const parameterInputs = document.querySelector<HTMLSpanElement>("#parameters")!;
const overlayChips = document.querySelector<HTMLSpanElement>("#overlays")!;

let symbol = params.get("symbol") || "BTC/USDT";
let interval = intervalOf(params.get("interval"));
intervalSelect.value = String(interval);

function intervalOf(label: string | null): market.Interval {
  const found = Object.keys(INTERVAL_SECONDS).map(Number).find((value) => labelOf(value) === label);
  return found ?? market.Interval.ONE_MINUTE;
}

function remember() {
  const url = new URL(location.href);
  url.searchParams.set("symbol", symbol);
  url.searchParams.set("interval", labelOf(interval));
  history.replaceState(null, "", url);
}

function showChart(next: string) {
  symbol = next;
  remember();
  void chart.show(symbol, interval);
}

const board = new QuoteBoard(
  (params.get("watch") ?? "").split(",").map((entry) => entry.trim()).filter(Boolean),
  showChart,
);

intervalSelect.addEventListener("change", () => {
  interval = Number(intervalSelect.value) as market.Interval;
  showChart(symbol);
});

// The API key: kept for this browser session, checked before it is used.
const keyInput = document.querySelector<HTMLInputElement>("#api-key")!;
document.querySelector<HTMLFormElement>("#key-form")!.addEventListener("submit", (event) => {
  event.preventDefault();
  void useKey(keyInput.value.trim());
  keyInput.value = "";
});
document.querySelector<HTMLButtonElement>("#forget-key")!.addEventListener("click", () => void useKey(undefined));

// Indicators: chosen from ListIndicators, with their parameters.
let catalog: indicator.IndicatorDescriptor[] = [];

function showParameters() {
  const chosen = catalog.find((descriptor) => descriptor.name === indicatorSelect.value);
  parameterInputs.replaceChildren(
    ...(chosen?.parameters ?? []).map((parameter) => {
      const input = document.createElement("input");
      input.type = "number";
      input.name = parameter.name;
      input.value = String(parameter.defaultValue);
      input.min = String(parameter.minValue);
      input.max = String(parameter.maxValue);
      input.step = parameter.kind === 1 ? "1" : "any";
      input.title = `${parameter.name}: ${parameter.description}`;
      return input;
    }),
  );
}

async function addOverlay(name: string, parameters: Record<string, number>) {
  const overlay = await chart.addOverlay({ $typeName: "wizdata.indicator.v1.IndicatorSpec", name, parameters });
  const chip = Object.assign(document.createElement("button"), { type: "button", textContent: `${overlay.label} ×`, title: "Remove" });
  chip.dataset.overlay = overlay.label;
  chip.addEventListener("click", () => {
    chart.removeOverlay(overlay.label);
    chip.remove();
  });
  overlayChips.append(chip);
}

document.querySelector<HTMLButtonElement>("#add-indicator")!.addEventListener("click", () => {
  const parameters: Record<string, number> = {};
  parameterInputs.querySelectorAll("input").forEach((input) => (parameters[input.name] = Number(input.value)));
  void addOverlay(indicatorSelect.value, parameters);
});
indicatorSelect.addEventListener("change", showParameters);

async function loadIndicators() {
  try {
    catalog = (await call("the indicator list", () => mesh.indicators.listIndicators({}))).indicators;
  } catch (error) {
    notify("error", `Indicators could not be listed: ${(error as { message?: string }).message}`);
    return;
  }
  indicatorSelect.replaceChildren(
    ...catalog.map((descriptor) => Object.assign(document.createElement("option"), { value: descriptor.name, textContent: descriptor.displayName || descriptor.name })),
  );
  showParameters();
}

/** `SMA:time_period=20;RSI` from the URL: the overlays a link opens with. */
function overlaysInUrl(): [string, Record<string, number>][] {
  return (params.get("indicators") ?? "")
    .split(";")
    .filter(Boolean)
    .map((entry) => {
      const [name, rest = ""] = entry.split(":");
      const values = Object.fromEntries(rest.split(",").filter(Boolean).map((pair) => {
        const [key, value] = pair.split("=");
        return [key, Number(value)];
      }));
      return [name.toUpperCase(), values];
    });
}

// What the page holds, for people in the console and for the browser tests.
Object.assign(window, { wizdata: { chart: () => chart.describe(), quotes: () => board.snapshot(), mesh } });

(async () => {
  remember();
  if (mesh.apiKey) await useKey(mesh.apiKey);
  await Promise.all([
    chart.show(symbol, interval),
    startSearch(showChart, (ticker) => board.add(ticker)),
    loadIndicators(),
  ]);
  for (const [name, parameters] of overlaysInUrl()) await addOverlay(name, parameters);
})();
