using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OnionDrop.Storage;

namespace OnionDrop.Pull;

/// <summary>
/// The daemon's DATA/pull.sock: `oniondrop pull --stdio` relays each journalist's SSH session here while the
/// daemon runs, so the daemon stays the catalog's only writer. Each connection starts with one line
/// "AS NAME" from the relay, then speaks the pull protocol.
/// </summary>
/// <remarks>
/// The name is believed only because of who sends it: the kernel's peer credentials (SO_PEERCRED) must show
/// the daemon's own user, which journalists reach only through the forced command that sshd runs for their key,
/// the command line in authorized_keys fixing its --as. Anyone else is refused whatever file modes allow
/// (docs/pull-protocol.md, "Who may connect to pull.sock"); the socket is 0600 besides.
/// </remarks>
/// <param name="maxSessions">connections served at once; one more is told <see cref="PullProtocol.Errors.Busy"/> and closed</param>
public sealed class PullSocketListener(ISealedBlobStore store, string dataDir, ILogger<PullSocketListener> log, int maxSessions = PullSocketListener.MaxSessions) : BackgroundService
{
    public const string FileName = "pull.sock";

    /// <summary>
    /// Sessions served at once: each holds a 256 KiB buffer and its share of the catalog, and whoever can relay
    /// (the daemon's user, so any journalist's key, or a thief's) could otherwise open thousands and starve the
    /// uploads. Far above what a newsroom's journalists fetch at once (each fetch is one session).
    /// </summary>
    public const int MaxSessions = 128;

    private int _sessions;
    private int _busyLogged;  // one warning per busy spell, not one per refused connection

    public string SocketPath { get; } = Path.Combine(dataDir, FileName);

    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once the socket accepts connections (for tests, which connect as soon as it does).</summary>
    public Task Listening => _listening.Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A stale socket from a killed daemon would make bind fail; this process holds daemon.lock, so it is ours.
        File.Delete(SocketPath);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        File.SetUnixFileMode(SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        listener.Listen(512);   // a burst of sessions (every journalist fetching after a long absence) waits here rather than being refused
        _listening.TrySetResult();
        var sessions = new List<Task>();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var connection = await listener.AcceptAsync(stoppingToken);
                sessions.RemoveAll(t => t.IsCompleted);
                // Counted here, in the order of arrival: a burst of connections is decided one by one.
                var busy = Interlocked.Increment(ref _sessions) > maxSessions;
                if (!busy) Volatile.Write(ref _busyLogged, 0);
                sessions.Add(ServeAsync(connection, busy, stoppingToken));
            }
        }
        catch (OperationCanceledException) { }
        finally
        {
            await Task.WhenAll(sessions).WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ContinueWith(_ => { }, CancellationToken.None);
            File.Delete(SocketPath);
        }
    }

    private async Task ServeAsync(Socket connection, bool busy, CancellationToken stoppingToken)
    {
        await Task.Yield();
        try { await ServeOneAsync(connection, busy, stoppingToken); }
        finally { Interlocked.Decrement(ref _sessions); }
    }

    private async Task ServeOneAsync(Socket connection, bool busy, CancellationToken stoppingToken)
    {
        using (connection)
        await using (var stream = new NetworkStream(connection, ownsSocket: false))
        {
            try
            {
                var peer = PeerCredentials.Of(connection);
                if (!MayRelay(peer.Uid))
                {
                    log.LogWarning("pull.sock: refused a connection from uid {Uid} (pid {Pid}): only the daemon's own user may relay pulls", peer.Uid, peer.Pid);
                    await stream.WriteAsync(PullProtocol.Line($"{PullProtocol.Error} {PullProtocol.Errors.Refused} {RefusalDetail(peer.Uid)}"), stoppingToken);
                    return;
                }
                if (busy)
                {
                    if (Interlocked.Exchange(ref _busyLogged, 1) == 0)
                        log.LogWarning("pull.sock: {Max} sessions at once; refusing more until one ends", maxSessions);
                    await stream.WriteAsync(PullProtocol.Line($"{PullProtocol.Error} {PullProtocol.Errors.Busy} {maxSessions} pull sessions are running already: try again in a few minutes"), stoppingToken);
                    return;
                }
                var reader = new ProtocolReader(stream);
                var first = await reader.ReadLineAsync(stoppingToken);
                if (first == PullProtocol.Compact)
                {
                    await stream.WriteAsync(PullProtocol.Line(CompactCatalog()), stoppingToken);
                    return;
                }
                if (first?.Split(' ') is not [PullProtocol.As, var name] || !SealedBlobStoreOptions.IsValidJournalistName(name))
                {
                    await stream.WriteAsync(PullProtocol.Line($"{PullProtocol.Error} {PullProtocol.Errors.Refused} expected AS NAME first"), stoppingToken);
                    return;
                }
                // The server goes on with the same reader: whatever the relay sent after AS is already in it.
                await new PullServer(store, name, log).RunAsync(reader, stream, stoppingToken);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or PullProtocolException)
            {
                log.LogDebug("pull.sock: session ended: {Error}", e.Message);
            }
        }
    }

    /// <summary>
    /// `oniondrop compact` while the daemon runs: the same rebuild retention does on its schedule, done now by
    /// the catalog's only writer. Only the daemon's user or root gets this far (<see cref="MayRelay"/>), and a
    /// journalist's relay cannot ask: it always says AS first.
    /// </summary>
    private string CompactCatalog()
    {
        if (store is not SealedBlobStore compactable)
            return $"{PullProtocol.Error} {PullProtocol.Errors.ServerError} this store has no catalog to compact";
        try
        {
            var reclaimed = compactable.Compact();
            log.LogInformation("compact: catalog.db rebuilt on request, {Bytes} bytes reclaimed", reclaimed);
            return $"{PullProtocol.Compacted} {reclaimed}";
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            log.LogError("compact: catalog.db rebuild failed: {Error}", e.Message);
            return $"{PullProtocol.Error} {PullProtocol.Errors.ServerError} {e.Message.ReplaceLineEndings(" ")}";
        }
    }

    /// <summary>
    /// Who may speak for a journalist on pull.sock: the daemon's own user (the account whose authorized_keys
    /// forces `oniondrop pull --stdio --as NAME`), and root, who can read the store anyway. Never the overflow
    /// uid, which stands for every unmapped user inside a user namespace.
    /// </summary>
    public static bool MayRelay(uint peerUid) =>
        peerUid != PeerCredentials.OverflowUid && (peerUid == PeerCredentials.OwnUid || peerUid == 0);

    internal static string RefusalDetail(uint peerUid) =>
        $"pull.sock serves only the daemon's user (uid {PeerCredentials.OwnUid}); this connection is uid {peerUid}";
}
