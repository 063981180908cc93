using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OnionDrop.Storage;

namespace OnionDrop.Pull;

/// <summary>
/// The daemon's DATA/pull.sock: `oniondrop pull --stdio` relays each journalist's SSH session here while the
/// daemon runs, so the daemon stays the catalog's only writer. Each connection starts with one line
/// "AS NAME" from the relay, then speaks the pull protocol. The socket is 0660: its group decides who may pull.
/// </summary>
public sealed class PullSocketListener(ISealedBlobStore store, string dataDir, ILogger<PullSocketListener> log) : BackgroundService
{
    public const string FileName = "pull.sock";

    public string SocketPath { get; } = Path.Combine(dataDir, FileName);

    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once the socket accepts connections.</summary>
    public Task Listening => _listening.Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A stale socket from a killed daemon would make bind fail; this process holds daemon.lock, so it is ours.
        File.Delete(SocketPath);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        File.SetUnixFileMode(SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        listener.Listen(16);
        _listening.TrySetResult();
        var sessions = new List<Task>();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var connection = await listener.AcceptAsync(stoppingToken);
                sessions.RemoveAll(t => t.IsCompleted);
                sessions.Add(ServeAsync(connection, stoppingToken));
            }
        }
        catch (OperationCanceledException) { }
        finally
        {
            await Task.WhenAll(sessions).WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ContinueWith(_ => { }, CancellationToken.None);
            File.Delete(SocketPath);
        }
    }

    private async Task ServeAsync(Socket connection, CancellationToken stoppingToken)
    {
        await Task.Yield();
        using (connection)
        await using (var stream = new NetworkStream(connection, ownsSocket: false))
        {
            try
            {
                var reader = new ProtocolReader(stream, 1024);
                var first = await reader.ReadLineAsync(stoppingToken);
                if (first?.Split(' ') is not [PullProtocol.As, var name] || !SealedBlobStoreOptions.IsValidJournalistName(name))
                {
                    await stream.WriteAsync(PullProtocol.Line($"{PullProtocol.Error} {PullProtocol.Errors.Refused} expected AS NAME first"), stoppingToken);
                    return;
                }
                // The AS line was read through a small buffer: replay whatever came after it.
                var rest = new ReplayStream(reader, stream);
                await new PullServer(store, name, log).RunAsync(rest, stream, stoppingToken);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or PullProtocolException)
            {
                log.LogDebug("pull.sock: session ended: {Error}", e.Message);
            }
        }
    }

    /// <summary>Reads first what <see cref="ProtocolReader"/> already buffered, then the socket.</summary>
    private sealed class ReplayStream(ProtocolReader buffered, Stream inner) : Stream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default) =>
            buffered.HasBuffered ? buffered.TakeBuffered(destination.Span) : await inner.ReadAsync(destination, cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
