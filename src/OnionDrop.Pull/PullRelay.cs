using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using OnionDrop.Storage;
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
        // Root's `compact` connects here too: never to another socket a link planted in the data directory names,
        // even one swapped in after the check (the connection goes through the handle on the entry checked).
        if (new FileInfo(socketPath).LinkTarget is not null) throw new IOException($"{socketPath} is a symbolic link: refused");
        SafeFileHandle entry;
        try { entry = Posix.OpenPathNoFollow(socketPath); }
        catch (FileNotFoundException) { throw new SocketException((int)SocketError.AddressNotAvailable); } // as connect() would say
        using (entry)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try { await socket.ConnectAsync(new UnixDomainSocketEndPoint(Posix.PathOf(entry)), cancellationToken); }
            catch { socket.Dispose(); throw; }
            return socket;
        }
    }

    public static async Task RunAsync(Socket socket, string journalist, Stream stdin, Stream stdout, CancellationToken cancellationToken = default)
    {
        await using var daemon = new NetworkStream(socket, ownsSocket: false);
        IOException? cut = null;
        try { await daemon.WriteAsync(Line($"{As} {journalist}"), cancellationToken); }
        catch (IOException e) { cut = e; } // a daemon that refuses this peer answers and closes without reading: its line says why
        // The daemon greets (or refuses) at once, before the journalist says anything.
        await RelayFirstLineAsync(daemon, stdout, cancellationToken);
        if (cut is not null) throw cut;

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

    /// <summary>
    /// Passes on the daemon's first line (and whatever came with it) and looks at it: when it is a refusal,
    /// the client has it, and the relay ends with it as an error of its own, so the server side's stderr and
    /// exit code say so too.
    /// </summary>
    private static async Task RelayFirstLineAsync(Stream daemon, Stream stdout, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxLine];
        var length = 0;
        int newline;
        while ((newline = Array.IndexOf(buffer, (byte)'\n', 0, length)) < 0 && length < buffer.Length)
        {
            var read = await daemon.ReadAsync(buffer.AsMemory(length), cancellationToken);
            if (read == 0) break;
            length += read;
        }
        await stdout.WriteAsync(buffer.AsMemory(0, length), cancellationToken);
        await stdout.FlushAsync(cancellationToken);
        var first = System.Text.Encoding.ASCII.GetString(buffer, 0, newline < 0 ? length : newline);
        if (first.StartsWith(Error + " ", StringComparison.Ordinal))
            throw new IOException($"{PullSocketListener.FileName} refused this relay: {first[(Error.Length + 1)..]}");
    }
}
