using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using OnionDrop.Tor.Control;

namespace OnionDrop.Tor.Tests.Control;

/// <summary>
/// Tor's end of an in-memory control connection: reads the client's command lines and writes whatever
/// reply bytes a test scripts, so the protocol is exercised exactly as the bytes arrive from tor.
/// </summary>
public sealed class FakeTor : IAsyncDisposable
{
    private readonly Pipe _toClient = new();
    private readonly Pipe _fromClient = new();

    public FakeTor() => Client = new TorControlClient(_toClient.Reader, _fromClient.Writer);

    public TorControlClient Client { get; }

    /// <summary>Writes raw bytes as tor would; "\n" in <paramref name="text"/> becomes CRLF.</summary>
    public async Task SendAsync(string text)
    {
        await _toClient.Writer.WriteAsync(Encoding.UTF8.GetBytes(text.Replace("\r\n", "\n").Replace("\n", "\r\n")));
    }

    public Task CloseAsync() => _toClient.Writer.CompleteAsync().AsTask();

    /// <summary>The next command line the client sent.</summary>
    public async Task<string> ReadCommandAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var result = await _fromClient.Reader.ReadAsync(timeout.Token);
            var buffer = result.Buffer;
            if (buffer.PositionOf((byte)'\n') is { } end)
            {
                var line = Encoding.UTF8.GetString(buffer.Slice(0, end)).TrimEnd('\r');
                _fromClient.Reader.AdvanceTo(buffer.GetPosition(1, end));
                return line;
            }
            if (result.IsCompleted) throw new EndOfStreamException("client closed");
            _fromClient.Reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _toClient.Writer.CompleteAsync();
        await Client.DisposeAsync();
    }
}
