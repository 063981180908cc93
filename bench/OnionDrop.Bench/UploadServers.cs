using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using OnionDrop.Daemon.Hosting;

namespace OnionDrop.Bench;

/// <summary>A receiving web server under test, in its own process so its memory can be read from /proc.</summary>
public abstract class UploadServer : IAsyncDisposable
{
    protected Process? Process;
    public abstract string Name { get; }
    public Uri Url { get; protected set; } = null!;
    public abstract string UploadPath { get; }
    public abstract string FileField { get; }
    public abstract string MessageField { get; }
    public string DataDir { get; protected init; } = null!;

    /// <summary>Peak resident memory so far (VmHWM), in MiB.</summary>
    public double PeakRssMiB()
    {
        var line = File.ReadLines($"/proc/{Process!.Id}/status").First(l => l.StartsWith("VmHWM:"));
        return long.Parse(Regex.Match(line, @"\d+").Value) / 1024.0;
    }

    /// <summary>CPU time (user + system) the server process and its threads have used so far, in seconds.</summary>
    public double CpuSeconds()
    {
        // /proc/PID/stat: fields 14 and 15 (utime, stime) in clock ticks, after the parenthesised name.
        var stat = File.ReadAllText($"/proc/{Process!.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0;
    }

    /// <summary>Files this server has stored so far.</summary>
    public abstract int StoredCount();

    protected static async Task WaitUntilServingAsync(Uri url, Process process)
    {
        using var http = new HttpClient();
        for (var i = 0; i < 300; i++)
        {
            if (process.HasExited) throw new InvalidOperationException("server exited during start-up");
            try { if ((await http.GetAsync(url)).IsSuccessStatusCode) return; } catch (Exception e) when (e is HttpRequestException or System.Net.Sockets.SocketException) { }   // not up yet (ENOTCONN comes unwrapped)
            await Task.Delay(100);
        }
        throw new TimeoutException("server did not come up: " + url);
    }

    public async ValueTask DisposeAsync()
    {
        if (Process is { HasExited: false })
        {
            Process.Kill(entireProcessTree: true);
            await Process.WaitForExitAsync();
        }
        Process?.Dispose();
        try { Directory.Delete(DataDir, recursive: true); } catch (IOException) { }
        GC.SuppressFinalize(this);
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    protected static ProcessStartInfo Quiet(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }
}

/// <summary>The OnionDrop daemon (DaemonHost, no tor) in a child process: `oniondrop-bench upload-daemon`.</summary>
public sealed class OnionDropServer : UploadServer
{
    public override string Name => "OnionDrop";
    public override string UploadPath => "/";
    public override string FileField => "files";
    public override string MessageField => "message";

    public static async Task<OnionDropServer> StartAsync(string root, string recipient)
    {
        var dataDir = Path.Combine(root, "oniondrop-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var port = FreePort();
        var server = new OnionDropServer { DataDir = dataDir };
        server.Url = new Uri($"http://127.0.0.1:{port}/");
        server.Process = System.Diagnostics.Process.Start(Quiet("dotnet", typeof(OnionDropServer).Assembly.Location, "upload-daemon", dataDir, recipient, port.ToString()))!;
        _ = server.Process.StandardOutput.ReadToEndAsync();
        _ = server.Process.StandardError.ReadToEndAsync();
        await WaitUntilServingAsync(server.Url, server.Process);
        return server;
    }

    public override int StoredCount()
    {
        var blobs = Path.Combine(DataDir, "blobs");
        return Directory.Exists(blobs) ? Directory.GetFiles(blobs, "*.sealed").Length : 0;
    }
}

/// <summary>Runs the daemon for <see cref="OnionDropServer"/>: DATADIR RECIPIENT PORT.</summary>
public sealed class UploadDaemonHelper : IBenchmark
{
    public string Name => "upload-daemon";
    public string Description => "(helper) the daemon alone in this process, for the upload benchmark";

    public async Task<int> RunAsync(string[] args)
    {
        var settings = new Dictionary<string, string?>
        {
            ["OnionDrop:DataDir"] = args[0],
            ["OnionDrop:Recipients:0"] = args[1],
            ["OnionDrop:Listen"] = "127.0.0.1:" + args[2],
            ["OnionDrop:Tor"] = "None",
            ["OnionDrop:MaxSubmissionBytes"] = (4L << 30).ToString(),
            ["OnionDrop:MaxConcurrentUploads"] = "10000",   // throughput is measured here, not the busy page (--concurrent may pass 64)
            ["Logging:LogLevel:Default"] = "Warning",
        };
        await using var app = DaemonHost.Build(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        await app.RunAsync();
        return 0;
    }
}

/// <summary>OnionShare's receive mode, Debian's onionshare-cli, on loopback without tor.</summary>
public sealed class OnionShareServer : UploadServer
{
    public override string Name => "OnionShare";
    public override string UploadPath => "/upload";
    public override string FileField => "file[]";
    public override string MessageField => "text";

    public static async Task<OnionShareServer> StartAsync(string root)
    {
        var dataDir = Path.Combine(root, "onionshare-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dataDir);
        var server = new OnionShareServer { DataDir = dataDir };
        server.Process = System.Diagnostics.Process.Start(Quiet("onionshare-cli", "--local-only", "--receive", "--public", "--data-dir", dataDir))!;
        var url = new TaskCompletionSource<Uri>();
        void Scan(string? line)
        {
            if (line is not null && Regex.Match(line, @"http://127\.0\.0\.1:\d+") is { Success: true } m) url.TrySetResult(new Uri(m.Value + "/"));
        }
        server.Process.OutputDataReceived += (_, e) => Scan(e.Data);
        server.Process.ErrorDataReceived += (_, e) => Scan(e.Data);
        server.Process.BeginOutputReadLine();
        server.Process.BeginErrorReadLine();
        server.Url = await url.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await WaitUntilServingAsync(server.Url, server.Process);
        return server;
    }

    public override int StoredCount() =>
        Directory.GetFiles(DataDir, "*", SearchOption.AllDirectories).Count(f => !f.EndsWith("-message.txt"));
}
