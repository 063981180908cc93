using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace OnionDrop.Testing;

/// <summary>
/// Debian's Firefox ESR, headless, with JavaScript off in its profile: the engine Tor Browser is built on, driven
/// over Marionette (Firefox's own remote protocol: "LENGTH:JSON" messages on a loopback TCP port, commands
/// [0, id, name, params] answered by [1, id, error, result]). Nothing here runs a script in the page.
/// </summary>
public sealed class Marionette : IAsyncDisposable
{
    public const string FirefoxPath = "/usr/bin/firefox-esr";

    private readonly Process _browser;
    private readonly TempDirectory _profile;
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly MemoryStream _received = new();
    private int _nextId;

    private Marionette(Process browser, TempDirectory profile, TcpClient client) =>
        (_browser, _profile, _client, _stream) = (browser, profile, client, client.GetStream());

    /// <param name="prefs">More prefs for the profile's user.js (bool, int or string values), e.g. a proxy.</param>
    public static async Task<Marionette> LaunchAsync(IReadOnlyDictionary<string, object>? prefs = null)
    {
        var profile = new TempDirectory("oniondrop-firefox-");
        var port = FreePort.Next();
        await File.WriteAllTextAsync(Path.Combine(profile.Path, "user.js"), $"""
            user_pref("javascript.enabled", false);
            user_pref("marionette.port", {port});
            user_pref("browser.shell.checkDefaultBrowser", false);
            user_pref("app.update.disabledForTesting", true);
            user_pref("datareporting.policy.dataSubmissionEnabled", false);
            user_pref("network.captive-portal-service.enabled", false);
            user_pref("network.connectivity-service.enabled", false);
            user_pref("services.settings.server", "data:,#remote-settings-dummy/v1");

            """ + string.Concat((prefs ?? new Dictionary<string, object>()).Select(p => $"user_pref({JsonSerializer.Serialize(p.Key)}, {JsonSerializer.Serialize(p.Value)});\n")));
        var psi = ChildProcess.StartInfo(FirefoxPath, ["--headless", "--marionette", "--no-remote", "--profile", profile.Path, "about:blank"]);
        // Its caches and temporary files go to the profile's folder too, and go with it.
        psi.Environment["HOME"] = psi.Environment["TMPDIR"] = psi.Environment["XDG_CACHE_HOME"] = profile.Path;
        // Firefox fetches Remote Settings from Mozilla at start (through the proxy, when it has one); a release build takes
        // services.settings.server, above, only with this set.
        psi.Environment["MOZ_REMOTE_SETTINGS_DEVTOOLS"] = "1";
        var browser = Process.Start(psi)!;
        _ = browser.StandardError.ReadToEndAsync();
        _ = browser.StandardOutput.ReadToEndAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var client = new TcpClient();
            try
            {
                await client.ConnectAsync("127.0.0.1", port);
                var marionette = new Marionette(browser, profile, client);
                await marionette.ReceiveAsync(); // the greeting
                await marionette.SendAsync("WebDriver:NewSession", new { capabilities = new { } });
                return marionette;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && !browser.HasExited)
            {
                client.Dispose();
                await Task.Delay(200);
            }
            catch
            {
                client.Dispose();
                if (!browser.HasExited) browser.Kill(entireProcessTree: true);
                profile.Dispose();
                throw;
            }
        }
    }

    /// <summary>Sends a command and returns its result; a command Firefox refuses throws with its message.</summary>
    public async Task<JsonNode?> SendAsync(string name, object? parameters = null)
    {
        var id = ++_nextId;
        var json = JsonSerializer.SerializeToUtf8Bytes(new object[] { 0, id, name, parameters ?? new { } });
        await _stream.WriteAsync(Encoding.ASCII.GetBytes($"{json.Length}:"));
        await _stream.WriteAsync(json);
        while (true)
        {
            var message = (await ReceiveAsync().WaitAsync(TimeSpan.FromSeconds(90))).AsArray();
            if ((int)message[0]! != 1 || (int)message[1]! != id) continue;
            if (message[2] is { } error) throw new InvalidOperationException($"{name}: {(string?)error["message"] ?? error.ToJsonString()}");
            return message[3];
        }
    }

    public Task NavigateAsync(string url) => SendAsync("WebDriver:Navigate", new { url });

    public async Task<string> ElementAsync(string selector) =>
        (string)(await SendAsync("WebDriver:FindElement", new { @using = "css selector", value = selector }))!["value"]!.AsObject().Single().Value!;

    /// <summary>Chooses a file in a file input, as the file picker would.</summary>
    public async Task ChooseFileAsync(string selector, string path) =>
        await SendAsync("WebDriver:ElementSendKeys", new { id = await ElementAsync(selector), text = path });

    /// <summary>
    /// Clicks a form's button and waits for the page that follows, which no longer holds <paramref name="leaving"/>
    /// (the click may return before a slow upload has ended); a browser error page comes back as its address,
    /// e.g. about:neterror?e=netReset...&amp;d=The connection to the server was reset...
    /// </summary>
    public async Task<string> ClickAndReadAsync(string selector, string leaving, TimeSpan timeout)
    {
        try { await SendAsync("WebDriver:ElementClick", new { id = await ElementAsync(selector) }); }
        catch (InvalidOperationException e) when (e.Message.Contains("Reached error page", StringComparison.Ordinal)) { return e.Message; }
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var url = (string)(await SendAsync("WebDriver:GetCurrentURL"))!["value"]!;
            if (url.StartsWith("about:neterror", StringComparison.Ordinal)) return Uri.UnescapeDataString(url);
            var page = await PageSourceAsync();
            if (page.Contains("data-l10n-id=\"neterror-page-title\"", StringComparison.Ordinal))
                return "Firefox's own network error page (the connection failed or was reset), not the site's:\n" + page;
            if (!page.Contains(leaving, StringComparison.Ordinal) || DateTime.UtcNow > deadline) return page;
            await Task.Delay(200);
        }
    }

    public async Task<string> PageSourceAsync() => (string)(await SendAsync("WebDriver:GetPageSource"))!["value"]!;

    /// <summary>A PNG of the whole page, not only what fits in the window.</summary>
    public async Task<byte[]> ScreenshotAsync() =>
        Convert.FromBase64String((string)(await SendAsync("WebDriver:TakeScreenshot", new { full = true }))!["value"]!);

    private async Task<JsonNode> ReceiveAsync()
    {
        while (true)
        {
            var data = _received.GetBuffer().AsSpan(0, (int)_received.Length);
            var colon = data.IndexOf((byte)':');
            if (colon > 0 && int.Parse(Encoding.ASCII.GetString(data[..colon])) is var length && data.Length >= colon + 1 + length)
            {
                var node = JsonNode.Parse(data.Slice(colon + 1, length))!;
                var rest = data[(colon + 1 + length)..].ToArray();
                _received.SetLength(0);
                _received.Write(rest);
                return node;
            }
            var read = await _stream.ReadAsync(_buffer);
            if (read == 0) throw new IOException("Firefox closed its Marionette connection");
            _received.Write(_buffer, 0, read);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try { await SendAsync("WebDriver:DeleteSession").WaitAsync(TimeSpan.FromSeconds(5)); } catch (Exception) { }
        _client.Dispose();
        try { if (!_browser.HasExited) _browser.Kill(entireProcessTree: true); await _browser.WaitForExitAsync(); } catch (Exception) { }
        _browser.Dispose();
        _profile.Dispose();
    }
}
