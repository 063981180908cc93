using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Daemon.Web;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// The real daemon (DaemonHost, real Kestrel, real store and sealer) hosted in the test process with no
/// tor: the Unix socket tor would forward to, plus a loopback port. Stopped and deleted on dispose.
/// </summary>
public sealed class TestDaemon : IAsyncDisposable
{
    /// <summary>A v3 onion name (checksum and all: rend-spec-v3's first example), as tor would pass on from a source's browser.</summary>
    public const string OnionHost = "sp3k262uwy4r2k3ycr5awluarykdpag6a7y33jxop4cs2lu5uz5sseqd.onion";

    public TempDirectory Directory { get; }
    public string DataDir { get; }
    public JournalistKey Key { get; }
    public WebApplication App { get; }
    public Uri Loopback { get; }
    public string SocketPath => Path.Combine(DataDir, WebListeners.SocketName);
    public ISealedBlobStore Store => App.Services.GetRequiredService<ISealedBlobStore>();
    public SubmissionCounters Counters => App.Services.GetRequiredService<SubmissionCounters>();

    private TestDaemon(TempDirectory directory, string dataDir, JournalistKey key, WebApplication app, Uri loopback) =>
        (Directory, DataDir, Key, App, Loopback) = (directory, dataDir, key, app, loopback);

    public static async Task<TestDaemon> StartAsync(Action<Dictionary<string, string?>>? configure = null, string? dataDir = null)
    {
        var directory = new TempDirectory("oniondrop-daemon-");
        dataDir ??= directory.Combine("data");
        System.IO.Directory.CreateDirectory(dataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var key = JournalistKey.Generate();
        var settings = new Dictionary<string, string?>
        {
            ["OnionDrop:DataDir"] = dataDir,
            ["OnionDrop:Recipients:0"] = key.PublicKey.ToString(),
            ["OnionDrop:Listen"] = "127.0.0.1:0",
            ["OnionDrop:Tor"] = "None",
            ["OnionDrop:NewsroomName"] = "La Gazette du Lac",
            ["OnionDrop:WelcomeText"] = "Documents about public affairs in the Lake district are welcome.",
        };
        configure?.Invoke(settings);
        // A refused configuration throws from Build or from StartAsync: the scratch directory goes either way.
        WebApplication? app = null;
        try
        {
            app = DaemonHost.Build(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
            await app.StartAsync();
        }
        catch
        {
            if (app is not null) await app.DisposeAsync();
            directory.Dispose();
            throw;
        }
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        var loopback = new Uri(addresses.First(a => a.StartsWith("http://127.0.0.1:", StringComparison.Ordinal)));
        return new TestDaemon(directory, dataDir, key, app, loopback);
    }

    /// <summary>A client over the loopback listener.</summary>
    public HttpClient LoopbackClient() => new(new SocketsHttpHandler { UseCookies = false, AllowAutoRedirect = false }) { BaseAddress = Loopback, Timeout = TimeSpan.FromMinutes(5) };

    /// <summary>A client over the Unix socket, sending the onion Host header as tor would deliver it.</summary>
    public HttpClient SocketClient(string host = OnionHost)
    {
        var handler = new SocketsHttpHandler
        {
            UseCookies = false,
            AllowAutoRedirect = false,
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        return new HttpClient(handler) { BaseAddress = new Uri($"http://{host}/"), Timeout = TimeSpan.FromMinutes(5) };
    }

    /// <summary>Opens every committed submission with the journalist's key into a fresh folder.</summary>
    public IReadOnlyList<OpenedSubmission> OpenAll()
    {
        var output = Directory.Combine("opened-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(output);
        return Store.ListCommitted().Select(record =>
        {
            using var blob = Store.OpenSealed(record.Id);
            return SubmissionOpener.Open(blob, Key, output, record.Id + ".sealed");
        }).ToList();
    }

    /// <summary>Every file under the data directory's blobs folder (committed or partial).</summary>
    public string[] BlobFiles()
    {
        var blobs = Path.Combine(DataDir, SealedBlobStore.BlobsDirectoryName);
        return System.IO.Directory.Exists(blobs) ? System.IO.Directory.GetFiles(blobs, "*", SearchOption.AllDirectories) : [];
    }

    public async ValueTask DisposeAsync()
    {
        try { await App.StopAsync(); } catch (Exception) { /* best effort in teardown */ }
        await App.DisposeAsync();
        Key.Dispose();
        Directory.Dispose();
    }
}
