using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OnionDrop.Testing;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// Debian's headless Chromium, driven from the test over the DevTools protocol (a WebSocket of JSON
/// commands and events). Everything the "user" does comes from this side; the page runs no script.
/// </summary>
public sealed partial class DevTools : IAsyncDisposable
{
    private readonly Process _browser;
    private readonly TempDirectory _profile;
    private readonly ClientWebSocket _socket = new();
    private readonly ConcurrentDictionary<int, TaskCompletionSource<JsonNode>> _pending = new();
    private readonly ConcurrentQueue<(string Method, JsonNode Params)> _events = new();
    private readonly CancellationTokenSource _stop = new();
    private Task _receiving = Task.CompletedTask;
    private int _nextId;

    private DevTools(Process browser, TempDirectory profile) => (_browser, _profile) = (browser, profile);

    public const string ChromiumPath = "/usr/bin/chromium";

    /// <summary>A fresh headless Chromium at Tor Browser's "Safest" as far as scripts go: JavaScript off, page and DOM events on.</summary>
    public static async Task<DevTools> LaunchWithoutJavaScriptAsync()
    {
        var browser = await LaunchAsync();
        try
        {
            await browser.SendAsync("Page.enable");
            await browser.SendAsync("DOM.enable");
            await browser.SendAsync("Emulation.setScriptExecutionDisabled", new { value = true });
            return browser;
        }
        catch
        {
            await browser.DisposeAsync();
            throw;
        }
    }

    public static async Task<DevTools> LaunchAsync()
    {
        var profile = new TempDirectory("oniondrop-chromium-");
        var psi = ChildProcess.StartInfo(ChromiumPath,
        [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
            "--user-data-dir=" + profile.Path, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            "--window-size=1000,1200", "about:blank",
        ]);
        // Chromium keeps its singleton socket in a folder of TMPDIR that outlives a killed browser: keep it in the profile.
        psi.Environment["TMPDIR"] = profile.Path;
        var browser = Process.Start(psi)!;
        var tools = new DevTools(browser, profile);
        try
        {
            // Chromium announces its DevTools endpoint on stderr.
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            string? browserUrl = null;
            while (browserUrl is null)
            {
                var line = await browser.StandardError.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("chromium exited before listening");
                if (DevToolsLine().Match(line) is { Success: true } m) browserUrl = m.Groups[1].Value;
            }
            _ = browser.StandardError.ReadToEndAsync(); // keep draining
            _ = browser.StandardOutput.ReadToEndAsync();
            var port = new Uri(browserUrl).Port;
            using var http = new HttpClient();
            var targets = JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/json/list", timeout.Token))!.AsArray();
            var page = targets.First(t => (string?)t!["type"] == "page")!;
            await tools._socket.ConnectAsync(new Uri((string)page["webSocketDebuggerUrl"]!), timeout.Token);
            tools._receiving = tools.ReceiveLoopAsync();
            return tools;
        }
        catch
        {
            await tools.DisposeAsync();
            throw;
        }
    }

    [GeneratedRegex(@"DevTools listening on (ws://\S+)")]
    private static partial Regex DevToolsLine();

    public async Task<JsonNode> SendAsync(string method, object? parameters = null)
    {
        var id = Interlocked.Increment(ref _nextId);
        var reply = new TaskCompletionSource<JsonNode>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = reply;
        var json = JsonSerializer.SerializeToUtf8Bytes(new { id, method, @params = parameters ?? new { } });
        await _socket.SendAsync(json, WebSocketMessageType.Text, true, _stop.Token);
        var message = await reply.Task.WaitAsync(TimeSpan.FromSeconds(60));
        if (message["error"] is { } error) throw new InvalidOperationException($"{method}: {error.ToJsonString()}");
        return message["result"]!;
    }

    /// <summary>Waits for an event (e.g. Page.loadEventFired) that arrives after <paramref name="since"/> events were seen.</summary>
    public async Task WaitForEventAsync(string method, int since, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < deadline)
        {
            if (_events.Skip(since).Any(e => e.Method == method)) return;
            await Task.Delay(50);
        }
        throw new TimeoutException("no " + method);
    }

    public int EventCount => _events.Count;

    /// <summary>Loads <paramref name="url"/> and waits for its load event.</summary>
    public async Task NavigateAsync(string url)
    {
        var seen = EventCount;
        await SendAsync("Page.navigate", new { url });
        await WaitForEventAsync("Page.loadEventFired", seen);
    }

    public async Task<int> QueryAsync(string selector)
    {
        var root = await SendAsync("DOM.getDocument", new { depth = 0 });
        var found = await SendAsync("DOM.querySelector", new { nodeId = (int)root["root"]!["nodeId"]!, selector });
        var nodeId = (int)found["nodeId"]!;
        if (nodeId == 0) throw new InvalidOperationException("no element matches " + selector);
        return nodeId;
    }

    public async Task<string> OuterHtmlAsync()
    {
        var root = await SendAsync("DOM.getDocument", new { depth = 0 });
        return (string)(await SendAsync("DOM.getOuterHTML", new { nodeId = (int)root["root"]!["nodeId"]! }))["outerHTML"]!;
    }

    /// <summary>A left click at the middle of the element, as a mouse would do it.</summary>
    public async Task ClickAsync(int nodeId)
    {
        var (x, y) = await MiddleAsync(nodeId);
        await SendAsync("Input.dispatchMouseEvent", new { type = "mouseMoved", x, y });
        await SendAsync("Input.dispatchMouseEvent", new { type = "mousePressed", x, y, button = "left", clickCount = 1 });
        await SendAsync("Input.dispatchMouseEvent", new { type = "mouseReleased", x, y, button = "left", clickCount = 1 });
    }

    /// <summary>A double click at the middle of the element, as a mouse would do it.</summary>
    public async Task DoubleClickAsync(int nodeId)
    {
        var (x, y) = await MiddleAsync(nodeId);
        await SendAsync("Input.dispatchMouseEvent", new { type = "mouseMoved", x, y });
        foreach (var clickCount in new[] { 1, 2 })
        {
            await SendAsync("Input.dispatchMouseEvent", new { type = "mousePressed", x, y, button = "left", clickCount });
            await SendAsync("Input.dispatchMouseEvent", new { type = "mouseReleased", x, y, button = "left", clickCount });
        }
    }

    /// <summary>The text selected in the page, read by DevTools (the page's own scripts stay off).</summary>
    public async Task<string> SelectionAsync()
    {
        var result = await SendAsync("Runtime.evaluate", new { expression = "document.getSelection().toString()", returnByValue = true });
        return (string?)result["result"]!["value"] ?? throw new InvalidOperationException("no selection: " + result.ToJsonString());
    }

    /// <summary>The top of the element's border box, in CSS pixels from the top of the page.</summary>
    public async Task<double> TopAsync(int nodeId)
    {
        var quad = (await SendAsync("DOM.getBoxModel", new { nodeId }))["model"]!["border"]!.AsArray().Select(v => (double)v!).ToArray();
        return quad[1];
    }

    private async Task<(double X, double Y)> MiddleAsync(int nodeId)
    {
        await SendAsync("DOM.scrollIntoViewIfNeeded", new { nodeId });
        var quad = (await SendAsync("DOM.getBoxModel", new { nodeId }))["model"]!["content"]!.AsArray().Select(v => (double)v!).ToArray();
        return ((quad[0] + quad[2] + quad[4] + quad[6]) / 4, (quad[1] + quad[3] + quad[5] + quad[7]) / 4);
    }

    /// <summary>A PNG of the whole page (the viewport is stretched to the content's height first).</summary>
    public async Task<byte[]> ScreenshotAsync(int width = 1000)
    {
        var metrics = await SendAsync("Page.getLayoutMetrics");
        var height = (int)Math.Ceiling((double)metrics["cssContentSize"]!["height"]!);
        await SendAsync("Emulation.setDeviceMetricsOverride", new { width, height = Math.Max(height, 600), deviceScaleFactor = 1, mobile = false });
        var shot = await SendAsync("Page.captureScreenshot", new { format = "png" });
        await SendAsync("Emulation.clearDeviceMetricsOverride");
        return Convert.FromBase64String((string)shot["data"]!);
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = new byte[1 << 20];
        var message = new MemoryStream();
        try
        {
            while (!_stop.IsCancellationRequested && _socket.State == WebSocketState.Open)
            {
                var result = await _socket.ReceiveAsync(buffer, _stop.Token);
                if (result.MessageType == WebSocketMessageType.Close) break;
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage) continue;
                var node = JsonNode.Parse(Encoding.UTF8.GetString(message.GetBuffer(), 0, (int)message.Length))!;
                message.SetLength(0);
                if (node["id"] is { } id && _pending.TryRemove((int)id, out var reply)) reply.TrySetResult(node);
                else if (node["method"] is { } method) _events.Enqueue(((string)method!, node["params"] ?? new JsonObject()));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException) { }
        foreach (var reply in _pending.Values) reply.TrySetException(new InvalidOperationException("DevTools connection closed"));
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try { _socket.Abort(); } catch (Exception) { }
        try { await _receiving; } catch (Exception) { }
        try { if (!_browser.HasExited) _browser.Kill(entireProcessTree: true); await _browser.WaitForExitAsync(); } catch (Exception) { }
        _browser.Dispose();
        _socket.Dispose();
        _profile.Dispose();
    }
}
