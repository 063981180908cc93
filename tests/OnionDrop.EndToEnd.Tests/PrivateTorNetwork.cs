using OnionDrop.Testing;
using OnionDrop.Tor.Control;

namespace OnionDrop.EndToEnd.Tests;

/// <summary>
/// A private Tor network on 127.0.0.1 (scripts/tornet): three authorities, four relays and a client with a
/// SOCKS port. Another tor joins it with <see cref="JoinLines"/> (the daemon's OnionDrop:TorExtraConfig).
/// Every tor exits on its own within 15 s if the test runner dies (TORNET_OWNER_PID).
/// </summary>
public sealed class PrivateTorNetwork : IAsyncDisposable
{
    private readonly TempDirectory _dir;

    private PrivateTorNetwork(TempDirectory dir, IReadOnlyList<string> joinLines, int socksPort)
    {
        _dir = dir;
        JoinLines = joinLines;
        SocksPort = socksPort;
    }

    public string Directory => _dir.Path;

    /// <summary>The torrc lines a tor needs to join (TestingTorNetwork, DirAuthority...), comments dropped.</summary>
    public IReadOnlyList<string> JoinLines { get; }

    public int SocksPort { get; }

    /// <summary>
    /// SIGNAL NEWNYM to the client, as Tor Browser's "New Identity" sends: among the rest it forgets the onion
    /// services' descriptors, intro point failures and which HSDirs it asked lately.
    /// </summary>
    public async Task ClientNewIdentityAsync()
    {
        await using var control = await TorControlClient.ConnectUnixAsync(Path.Combine(_dir.Path, "client", "control"));
        await control.AuthenticateAsync();
        await control.SignalAsync("NEWNYM");
    }

    private static string Script => Path.Combine(RepoPaths.Root, "scripts", "tornet");

    /// <param name="basePort">First of the 50 ports the network uses; distinct per user so networks don't collide.</param>
    public static async Task<PrivateTorNetwork> StartAsync(int basePort)
    {
        var dir = new TempDirectory("oniondrop-tornet-");
        var psi = ChildProcess.StartInfo(Script, ["up", dir.Path]);
        psi.Environment["TORNET_BASE_PORT"] = basePort.ToString();
        psi.Environment["TORNET_OWNER_PID"] = Environment.ProcessId.ToString();
        var result = await ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(3));
        if (result.ExitCode != 0)
        {
            await ChildProcess.RunAsync(Script, ["down", dir.Path]);
            dir.Dispose();
            throw new InvalidOperationException("scripts/tornet up failed\n" + result);
        }
        TestContext.Progress.WriteLine(result.Stderr.Trim());
        var join = (await File.ReadAllLinesAsync(Path.Combine(dir.Path, "join.torrc"))).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        var socks = int.Parse((await File.ReadAllTextAsync(Path.Combine(dir.Path, "socks-port"))).Trim());
        return new PrivateTorNetwork(dir, join, socks);
    }

    public async ValueTask DisposeAsync()
    {
        var result = await ChildProcess.RunAsync(Script, ["down", _dir.Path]);
        TestContext.Progress.WriteLine(result.Stderr.Trim());
        _dir.Dispose();
    }
}
