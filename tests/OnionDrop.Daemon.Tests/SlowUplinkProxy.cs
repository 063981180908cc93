using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// A loopback TCP relay whose client-to-server direction runs at a set rate, as a source's uplink through Tor
/// does; answers come back at once. Each end's close is passed on to the other.
/// </summary>
public sealed class SlowUplinkProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly int _bytesPerSecond;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _relays = [];
    private readonly Task _accepting;

    public SlowUplinkProxy(IPEndPoint target, int bytesPerSecond)
    {
        (_target, _bytesPerSecond) = (target, bytesPerSecond);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptSocketAsync(_stop.Token);
                lock (_relays) _relays.Add(RelayAsync(client));
            }
        }
        catch (OperationCanceledException) { }
    }

    private async Task RelayAsync(Socket client)
    {
        using (client)
        using (var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            try
            {
                await server.ConnectAsync(_target, _stop.Token);
                await Task.WhenAll(CopyAsync(client, server, _bytesPerSecond), CopyAsync(server, client, 0));
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException) { }
        }
    }

    /// <summary>Copies until the source ends, at most <paramref name="rate"/> bytes a second (0: no limit).</summary>
    private async Task CopyAsync(Socket from, Socket to, int rate)
    {
        var buffer = new byte[rate > 0 ? Math.Max(1024, rate / 20) : 64 * 1024];
        var clock = Stopwatch.StartNew();
        long sent = 0;
        try
        {
            int read;
            while ((read = await from.ReceiveAsync(buffer, _stop.Token)) > 0)
            {
                if (rate > 0 && TimeSpan.FromSeconds((double)(sent + read) / rate) - clock.Elapsed is { Ticks: > 0 } ahead)
                    await Task.Delay(ahead, _stop.Token);
                await to.SendAsync(buffer.AsMemory(0, read), _stop.Token);
                sent += read;
            }
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // One side broke off: so does the relay, as a reset, on both.
            from.Close(0);
            to.Close(0);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
        Task[] relays;
        lock (_relays) relays = [.. _relays];
        await Task.WhenAll(relays);
        _stop.Dispose();
    }
}
