"""A real browser (headless Chromium) calls the mesh through the gateway with
gRPC-Web from a page on another origin: CORS preflight, binary and text
encodings, and a server stream read as it arrives."""

import http.server
import json
import os
import queue
import signal
import shutil
import subprocess
import tempfile
import threading

import pytest

from conftest import MeshProcess, free_port

CHROMIUM = shutil.which("chromium")

# GetSymbolRequest{ticker: "AAPL"} is the bytes 0a 04 41 41 50 4c; a
# SubscribeRequest for BTC/USDT trades (the simulated feed trades crypto
# around the clock) is symbols ["BTC/USDT"] and channels [2] (packed).
PAGE = """<!doctype html>
<html><body><script>
const gateway = new URLSearchParams(location.search).get("gateway");

function frame(message) {
  const framed = new Uint8Array(5 + message.length);
  new DataView(framed.buffer).setUint32(1, message.length);
  framed.set(message, 5);
  return framed;
}

// Servers may pad each chunk they encode: decode 4 characters at a time.
function fromText(text) {
  const bytes = [];
  for (let at = 0; at + 4 <= text.length; at += 4) {
    for (const char of atob(text.slice(at, at + 4))) bytes.push(char.charCodeAt(0));
  }
  return new Uint8Array(bytes);
}

function frames(bytes) {
  const found = { messages: [], trailers: "" };
  let at = 0;
  while (at + 5 <= bytes.length) {
    const length = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
    const payload = bytes.slice(at + 5, at + 5 + length);
    if (bytes[at] & 0x80) found.trailers += new TextDecoder().decode(payload);
    else found.messages.push(payload);
    at += 5 + length;
  }
  return found;
}

async function unary(text) {
  const message = new Uint8Array([0x0a, 0x04, 0x41, 0x41, 0x50, 0x4c]);
  const body = text ? btoa(String.fromCharCode(...frame(message))) : frame(message);
  const response = await fetch(gateway + "/wizdata.registry.v1.RegistryService/GetSymbol", {
    method: "POST",
    headers: {
      "content-type": text ? "application/grpc-web-text" : "application/grpc-web+proto",
      "accept": text ? "application/grpc-web-text" : "application/grpc-web+proto",
      "x-grpc-web": "1",
    },
    body,
  });
  const contentType = response.headers.get("content-type");
  let bytes = new Uint8Array(await response.arrayBuffer());
  if (contentType.startsWith("application/grpc-web-text")) bytes = fromText(new TextDecoder().decode(bytes));
  const found = frames(bytes);
  return {
    http: response.status,
    content_type: contentType,
    trailers: found.trailers,
    ticker_in_answer: new TextDecoder().decode(found.messages[0] || new Uint8Array()).includes("AAPL"),
    ratelimit_remaining: response.headers.get("ratelimit-remaining"),
  };
}

async function stream() {
  const request = new Uint8Array([0x0a, 0x08, ...new TextEncoder().encode("BTC/USDT"), 0x12, 0x01, 0x02]);
  const response = await fetch(gateway + "/wizdata.streaming.v1.StreamingService/Subscribe", {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
    body: frame(request),
  });
  const reader = response.body.getReader();
  let buffered = new Uint8Array();
  let messages = 0;
  while (messages < 3) {
    const { value, done } = await reader.read();
    if (done) break;
    const joined = new Uint8Array(buffered.length + value.length);
    joined.set(buffered);
    joined.set(value, buffered.length);
    buffered = joined;
    while (buffered.length >= 5) {
      const length = new DataView(buffered.buffer, buffered.byteOffset + 1, 4).getUint32(0);
      if (buffered.length < 5 + length) break;
      if (!(buffered[0] & 0x80)) messages += 1;
      buffered = buffered.slice(5 + length);
    }
  }
  await reader.cancel();
  return { http: response.status, messages };
}

(async () => {
  const result = {};
  try {
    result.binary = await unary(false);
    result.text = await unary(true);
    result.stream = await stream();
  } catch (error) {
    result.error = String(error);
  }
  await fetch("/result", { method: "POST", body: JSON.stringify(result) });
})();
</script></body></html>
"""


class PageServer:
    """Serves PAGE on its own origin, as a dashboard on another host would,
    and takes the page's results back."""

    def __init__(self):
        self.port = free_port()
        self.results = queue.Queue()
        results = self.results

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.end_headers()
                self.wfile.write(PAGE.encode())

            def do_POST(self):
                results.put(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()


def run_page(page: PageServer, gateway_url: str) -> dict:
    """Opens the page in headless Chromium and returns what it posts back."""
    assert CHROMIUM, "chromium is not installed: run `make tools`"
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", f"{page.origin}/?gateway={gateway_url}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # Its own process group, so its helper processes go with it.
            start_new_session=True,
        )
        try:
            return page.results.get(timeout=90)
        finally:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait()


@pytest.fixture(scope="module")
def pages():
    allowed, other = PageServer(), PageServer()
    yield allowed, other
    allowed.stop()
    other.stop()


@pytest.fixture(scope="module")
def browser_mesh(pages):
    allowed, _ = pages
    process = MeshProcess(extra_args=["--allowed-origins", allowed.origin])
    yield process
    process.stop()


def test_chromium_calls_through_the_gateway_with_grpc_web(browser_mesh, pages):
    allowed, _ = pages
    result = run_page(allowed, browser_mesh.gateway_url)
    assert "error" not in result, result
    for encoding, content_type in (("binary", "application/grpc-web+proto"), ("text", "application/grpc-web-text+proto")):
        answer = result[encoding]
        assert answer["http"] == 200, answer
        assert answer["content_type"] == content_type, answer
        assert "grpc-status:0" in answer["trailers"].replace(" ", ""), answer
        assert answer["ticker_in_answer"], answer
        assert answer["ratelimit_remaining"] is not None, "the page may read the rate-limit headers"
    assert result["stream"]["http"] == 200, result["stream"]
    assert result["stream"]["messages"] >= 3, "server streaming, read as it arrives"


def test_chromium_on_an_origin_not_allowed_is_refused(browser_mesh, pages):
    _, other = pages
    result = run_page(other, browser_mesh.gateway_url)
    assert "Failed to fetch" in result.get("error", ""), result
