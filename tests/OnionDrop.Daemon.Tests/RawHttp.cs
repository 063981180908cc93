using System.Net;
using System.Net.Sockets;
using System.Text;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// What came back on a raw connection: the status line's code (null if the server just closed), and whether the
/// reader gave up waiting (TimedOut: neither a whole answer nor a close came in time).
/// </summary>
public sealed record RawResponse(int? Status, string Head, string Body, bool Closed, bool TimedOut);

/// <summary>HTTP by hand over a socket, for requests no well-behaved client would send.</summary>
public static class RawHttp
{
    public static async Task<Socket> ConnectAsync(EndPoint endpoint)
    {
        var socket = endpoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint);
        return socket;
    }

    /// <summary>Sends <paramref name="request"/>, then reads until the server closes or <paramref name="timeout"/> passes.</summary>
    public static async Task<RawResponse> SendAsync(EndPoint endpoint, byte[] request, TimeSpan? timeout = null, bool halfClose = false)
    {
        using var socket = await ConnectAsync(endpoint);
        try { await socket.SendAsync(request, SocketFlags.None); }
        catch (SocketException) { /* the server may close before taking it all; the answer still counts */ }
        if (halfClose) socket.Shutdown(SocketShutdown.Send);
        return await ReadResponseAsync(socket, timeout ?? TimeSpan.FromSeconds(15));
    }

    /// <summary>Reads one response: headers, then Content-Length bytes of body, or until close/timeout.</summary>
    public static async Task<RawResponse> ReadResponseAsync(Socket socket, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        bool closed = false, timedOut = false;
        try
        {
            while (true)
            {
                var text = Encoding.UTF8.GetString(received.GetBuffer(), 0, (int)received.Length);
                var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (end >= 0)
                {
                    var head = text[..end];
                    var length = head.Split("\r\n").Select(l => l.Split(':', 2))
                        .Where(p => p.Length == 2 && p[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                        .Select(p => (int?)int.Parse(p[1].Trim())).FirstOrDefault();
                    if (length is { } n && Encoding.UTF8.GetByteCount(text[(end + 4)..]) >= n) break;
                }
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (read == 0) { closed = true; break; }
                received.Write(buffer, 0, read);
            }
        }
        catch (OperationCanceledException) { timedOut = true; }
        catch (SocketException) { closed = true; }

        var all = Encoding.UTF8.GetString(received.ToArray());
        var split = all.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var headText = split >= 0 ? all[..split] : all;
        int? status = null;
        if (headText.StartsWith("HTTP/1.", StringComparison.Ordinal) && headText.Length >= 12 && int.TryParse(headText.AsSpan(9, 3), out var code))
            status = code;
        return new RawResponse(status, headText, split >= 0 ? all[(split + 4)..] : "", closed, timedOut);
    }

    public static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
