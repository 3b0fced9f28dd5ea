// The candlestick chart with volume (TradingView's lightweight-charts): the
// selected symbol's history from GetCandles, then its live candle updates
// from Subscribe, the open bar moving as trades arrive. Indicator overlays
// come from ComputeIndicators, on the price pane (averages, bands) or in a
// pane of their own (oscillators), recomputed at each closed bar.

import {
  CandlestickSeries,
  type CandlestickData,
  createChart,
  HistogramSeries,
  type IChartApi,
  type ISeriesApi,
  LineSeries,
  type UTCTimestamp,
} from "lightweight-charts";
import { type indicator, market, streaming, type WizdataErrorDetails } from "@wizdata/client";
import { call, mesh } from "./mesh";
import { keepStreaming } from "./streams";

export const INTERVAL_SECONDS: Record<number, number> = {
  [market.Interval.ONE_MINUTE]: 60,
  [market.Interval.FIVE_MINUTES]: 300,
  [market.Interval.FIFTEEN_MINUTES]: 900,
  [market.Interval.ONE_HOUR]: 3600,
  [market.Interval.ONE_DAY]: 86400,
};
/** How many bars of history the chart opens with. */
const HISTORY_BARS = 500;
/** Studies drawn over the prices; every other one gets a pane of its own. */
const PRICE_OVERLAYS = new Set(["SMA", "EMA", "WMA", "BBANDS"]);
const COLORS = ["#f5a623", "#4a90e2", "#bd10e0", "#7ed321", "#50e3c2", "#e94e77"];

export interface Overlay {
  spec: indicator.IndicatorSpec;
  label: string;
  series: Map<string, ISeriesApi<"Line">>;
  pane: number;
  /** Each output's last value, as drawn. */
  last: Record<string, number>;
}

const message = document.querySelector<HTMLDivElement>("#chart-message")!;
const title = document.querySelector<HTMLElement>("#chart-symbol")!;

export class PriceChart {
  private readonly chart: IChartApi;
  private readonly candles: ISeriesApi<"Candlestick">;
  private readonly volume: ISeriesApi<"Histogram">;
  private overlays: Overlay[] = [];
  private stopLive?: () => void;
  private symbol = "";
  private interval: market.Interval = market.Interval.ONE_MINUTE;
  private startSeconds = 0;
  /** Open time of the newest bar, to see when a bar closes. */
  private newest = 0;
  private recompute?: ReturnType<typeof setTimeout>;
  /** When the first candles were painted (ms since navigation), once. */
  firstDrawnAt?: number;

  constructor(container: HTMLElement) {
    this.chart = createChart(container, {
      autoSize: true,
      layout: { background: { color: "#131722" }, textColor: "#d1d4dc", panes: { separatorColor: "#2a2e39" } },
      grid: { vertLines: { color: "#1e222d" }, horzLines: { color: "#1e222d" } },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: "#26a69a",
      downColor: "#ef5350",
      borderVisible: false,
      wickUpColor: "#26a69a",
      wickDownColor: "#ef5350",
    });
    this.volume = this.chart.addSeries(HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "volume" });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  }

  /** What the chart holds, for tests and people: its bars and overlays' last values. */
  describe() {
    return {
      symbol: this.symbol,
      interval: this.interval,
      startSeconds: this.startSeconds,
      candles: this.candles.data() as CandlestickData<UTCTimestamp>[],
      overlays: Object.fromEntries(this.overlays.map((overlay) => [overlay.label, overlay.last])),
      firstDrawnAt: this.firstDrawnAt,
    };
  }

  async show(symbol: string, interval: market.Interval) {
    this.stopLive?.();
    this.symbol = symbol;
    this.interval = interval;
    title.textContent = symbol;
    this.say("");
    const now = Math.floor(Date.now() / 1000);
    const step = INTERVAL_SECONDS[interval];
    this.startSeconds = Math.floor(now / step) * step - (HISTORY_BARS - 1) * step;
    let bars: market.Candle[] = [];
    try {
      let pageToken = "";
      do {
        const page = await call(`the ${symbol} chart`, () =>
          mesh.marketData.getCandles({ symbol, interval, startTime: { seconds: BigInt(this.startSeconds) }, pageSize: 1000, pageToken }),
        );
        bars = bars.concat(page.candles);
        pageToken = page.nextPageToken;
      } while (pageToken);
    } catch (error) {
      const details = error as WizdataErrorDetails;
      this.candles.setData([]);
      this.volume.setData([]);
      this.say(details.resourceInfo ? `Unknown symbol ${symbol}: ${details.message}` : `${symbol}: ${details.message}`);
      return;
    }
    this.candles.setData(bars.map(toBar));
    this.volume.setData(bars.map(toVolume));
    this.newest = bars.length ? seconds(bars[bars.length - 1].openTime) : 0;
    if (!bars.length) this.say(`No ${labelOf(interval)} candles for ${symbol} yet: the chart fills as trades arrive.`);
    // The chart paints in the next animation frame; this callback runs after its paint.
    else requestAnimationFrame(() => (this.firstDrawnAt ??= performance.now()));
    this.chart.timeScale().fitContent();
    await this.computeOverlays();

    this.stopLive = keepStreaming(
      "chart",
      (signal, onHeader) =>
        mesh.streaming.subscribe(
          { symbols: [symbol], channels: [streaming.Channel.CANDLES], candleInterval: interval },
          { signal, onHeader },
        ),
      (event) => {
        if (event.payload.case !== "candle" || !event.payload.value.candle) return;
        const candle = event.payload.value.candle;
        const opened = seconds(candle.openTime);
        if (opened < this.newest) return; // older than what is drawn: a late trade; the next history load has it
        const closedOne = opened > this.newest && this.newest !== 0;
        this.newest = opened;
        this.say("");
        this.candles.update(toBar(candle));
        this.volume.update(toVolume(candle));
        if (candle.closed || closedOne) this.scheduleRecompute();
      },
      (reason) => this.say(`${symbol}: ${reason}`),
    );
  }

  async addOverlay(spec: indicator.IndicatorSpec) {
    const pane = PRICE_OVERLAYS.has(spec.name) ? 0 : 1 + this.overlays.filter((overlay) => overlay.pane > 0).length;
    const parameters = Object.entries(spec.parameters).map(([, value]) => value).join(",");
    const overlay: Overlay = { spec, label: `${spec.name}(${parameters})`, series: new Map(), pane, last: {} };
    this.overlays.push(overlay);
    await this.computeOverlays();
    return overlay;
  }

  removeOverlay(label: string) {
    const overlay = this.overlays.find((candidate) => candidate.label === label);
    if (!overlay) return;
    overlay.series.forEach((series) => this.chart.removeSeries(series));
    this.overlays = this.overlays.filter((candidate) => candidate !== overlay);
  }

  private scheduleRecompute() {
    clearTimeout(this.recompute);
    this.recompute = setTimeout(() => void this.computeOverlays(), 250);
  }

  private async computeOverlays() {
    if (!this.overlays.length || !this.symbol) return;
    const symbol = this.symbol;
    try {
      const answer = await call("the indicators", () =>
        mesh.indicators.computeIndicators({
          symbol,
          interval: this.interval,
          startTime: { seconds: BigInt(this.startSeconds) },
          indicators: this.overlays.map((overlay) => overlay.spec),
        }),
      );
      if (symbol !== this.symbol) return;
      const times = answer.times.map((time) => seconds(time) as UTCTimestamp);
      answer.results.forEach((result, at) => this.draw(this.overlays[at], result, times));
    } catch (error) {
      this.say(`Indicators: ${(error as WizdataErrorDetails).message}`);
    }
  }

  private draw(overlay: Overlay | undefined, result: indicator.IndicatorResult, times: UTCTimestamp[]) {
    if (!overlay) return;
    result.outputs.forEach((output, index) => {
      let series = overlay.series.get(output.name);
      if (!series) {
        series = this.chart.addSeries(
          LineSeries,
          { color: COLORS[(this.overlays.indexOf(overlay) + index) % COLORS.length], lineWidth: 1, title: `${overlay.label} ${output.name}`, priceLineVisible: false },
          overlay.pane,
        );
        overlay.series.set(output.name, series);
      }
      series.setData(output.values.map((value, at) => ({ time: times[result.beginIndex + at], value })));
      if (output.values.length) overlay.last[output.name] = output.values[output.values.length - 1];
    });
  }

  private say(text: string) {
    message.hidden = !text;
    message.textContent = text;
  }
}

const seconds = (time: { seconds: bigint } | undefined) => Number(time?.seconds ?? 0n);

const toBar = (candle: market.Candle): CandlestickData<UTCTimestamp> => ({
  time: seconds(candle.openTime) as UTCTimestamp,
  open: candle.open,
  high: candle.high,
  low: candle.low,
  close: candle.close,
});

const toVolume = (candle: market.Candle) => ({
  time: seconds(candle.openTime) as UTCTimestamp,
  value: candle.volume,
  color: candle.close >= candle.open ? "rgba(38,166,154,0.5)" : "rgba(239,83,80,0.5)",
});

export const labelOf = (interval: market.Interval) => ({ 1: "1m", 2: "5m", 3: "15m", 4: "1h", 5: "1d" })[interval as 1] ?? "?";
