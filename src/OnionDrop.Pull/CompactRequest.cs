using System.Net.Sockets;
using static OnionDrop.Pull.PullProtocol;

namespace OnionDrop.Pull;

/// <summary>
/// `oniondrop compact` while the daemon runs: the daemon is the catalog's only writer, so it is asked, over
/// pull.sock, to do the rebuild it otherwise does after retention deletes something.
/// </summary>
public static class CompactRequest
{
    /// <returns>the bytes the daemon reports reclaimed</returns>
    /// <exception cref="IOException">the daemon refused or failed, with its reason</exception>
    /// <exception cref="SocketException">pull.sock does not answer</exception>
    public static async Task<long> SendAsync(string socketPath, CancellationToken cancellationToken = default)
    {
        using var socket = await PullRelay.ConnectAsync(socketPath, cancellationToken);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(Line(Compact), cancellationToken);
        var answer = await new ProtocolReader(stream, MaxLine).ReadLineAsync(cancellationToken)
            ?? throw new IOException("the daemon closed pull.sock without answering");
        if (answer.Split(' ') is [Compacted, var n] && long.TryParse(n, out var reclaimed)) return reclaimed;
        if (answer.StartsWith(Error + " ", StringComparison.Ordinal)) throw new IOException($"the daemon refused: {answer[(Error.Length + 1)..]}");
        throw new IOException($"unexpected answer on pull.sock: {answer[..Math.Min(80, answer.Length)]}");
    }
}
