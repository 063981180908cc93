using System.Net.Sockets;
using static OnionDrop.Pull.PullProtocol;

namespace OnionDrop.Pull;

/// <summary>
/// `oniondrop pull --stdio` while the daemon runs: announces the journalist ("AS NAME") on DATA/pull.sock,
/// then copies bytes both ways until the daemon closes its side. It never parses the protocol itself.
/// </summary>
public static class PullRelay
{
    /// <summary>Connects to pull.sock; a <see cref="SocketException"/> here means nothing was consumed yet.</summary>
    public static async Task<Socket> ConnectAsync(string socketPath, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try { await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken); }
        catch { socket.Dispose(); throw; }
        return socket;
    }

    public static async Task RunAsync(Socket socket, string journalist, Stream stdin, Stream stdout, CancellationToken cancellationToken = default)
    {
        await using var daemon = new NetworkStream(socket, ownsSocket: false);
        await daemon.WriteAsync(Line($"{As} {journalist}"), cancellationToken);

        var toDaemon = Task.Run(async () =>
        {
            try
            {
                await stdin.CopyToAsync(daemon, 256 * 1024, cancellationToken);
                socket.Shutdown(SocketShutdown.Send); // the journalist is done talking
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException) { }
        }, cancellationToken);
        // The session is over when the daemon closes its side (after BYE, an error, or a cut).
        await daemon.CopyToAsync(stdout, 256 * 1024, cancellationToken);
        await stdout.FlushAsync(cancellationToken);
        await Task.WhenAny(toDaemon, Task.Delay(100, cancellationToken));
    }
}
