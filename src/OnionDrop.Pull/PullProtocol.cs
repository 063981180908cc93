using System.Text;

namespace OnionDrop.Pull;

/// <summary>The pull protocol's words (docs/pull-protocol.md). Lines are ASCII, end in LF, at most <see cref="MaxLine"/> bytes.</summary>
public static class PullProtocol
{
    public const string Greeting = "ONIONDROP-PULL 1";
    public const int MaxLine = 1024;

    /// <summary>The command `oniondrop fetch` asks ssh to run; the forced command accepts it (and only it).</summary>
    public const string RemoteCommand = "oniondrop pull --stdio";

    /// <summary>pull.sock only: the relay's first line, naming the journalist its forced command serves.</summary>
    public const string As = "AS";

    /// <summary>pull.sock only, in place of AS: `oniondrop compact` asks the running daemon to compact its catalog.</summary>
    public const string Compact = "COMPACT", Compacted = "COMPACTED";

    public const string List = "LIST", Get = "GET", Ack = "ACK", Quit = "QUIT";
    public const string Waiting = "WAITING", Item = "ITEM", Blob = "BLOB", Acked = "ACKED", Bye = "BYE", Error = "ERROR";

    public static class Errors
    {
        public const string UnknownCommand = "unknown-command", BadId = "bad-id", NotFound = "not-found",
            Damaged = "damaged", LineTooLong = "line-too-long", ServerError = "server-error", Refused = "refused", Idle = "idle", Busy = "busy";
    }

    public static byte[] Line(string text) => Encoding.ASCII.GetBytes(text + "\n");

    /// <summary>
    /// The other side's text as quoted in a line or a message: printable ASCII only (anything else becomes '?', so
    /// it can neither break the line nor reach a terminal as a control sequence), cut at <paramref name="maxChars"/>.
    /// </summary>
    internal static string Printable(string text, int maxChars)
    {
        var clean = new string(text.Select(c => c is >= ' ' and < (char)127 ? c : '?').ToArray());
        return clean.Length > maxChars ? clean[..maxChars] + "..." : clean;
    }
}

/// <summary>The other side broke the protocol, or said ERROR where that cannot be recovered from.</summary>
public class PullProtocolException(string message) : Exception(message);

/// <summary>The byte stream ended before the exchange was over (ssh killed, network cut).</summary>
public class PullConnectionLostException(string message) : PullProtocolException(message);

/// <summary>The connection ended before the server's greeting: no pull server ever ran at the other end.</summary>
public sealed class PullNeverStartedException(string message) : PullConnectionLostException(message);

/// <summary>
/// The peer sent nothing for <see cref="Limit"/> while it was waited for (<see cref="ProtocolReader.IdleLimit"/>): the
/// connection is open but stalled, and is given up like a cut one.
/// </summary>
public sealed class PullIdleException(TimeSpan limit) : PullConnectionLostException($"nothing received for {limit.TotalSeconds:0.#} s")
{
    public TimeSpan Limit { get; } = limit;
}

/// <summary>
/// Reads the protocol's two kinds of data from one stream: LF-terminated lines and exactly-sized binary
/// payloads that follow them. Buffers reads itself, so nothing after a line is lost to a line reader.
/// </summary>
public sealed class ProtocolReader(Stream stream, int bufferSize = 256 * 1024)
{
    private readonly byte[] _buffer = new byte[bufferSize];
    private int _start, _end;
    private bool _stalled;   // a read outlived IdleLimit and was left behind

    /// <summary>
    /// How long one wait for the peer's next bytes may last before <see cref="PullIdleException"/>; null waits for ever.
    /// Time spent by the caller between reads (writing a blob to disk, opening it) does not count. The read that
    /// outlived the limit is left behind (a pipe's read cannot always be cancelled), so the reader is finished with
    /// after that: the caller ends the connection, which ends that read too.
    /// </summary>
    public TimeSpan? IdleLimit { get; set; }

    /// <summary>True when bytes already received wait to be read (the peer has pipelined more).</summary>
    public bool HasBuffered => _end > _start;

    /// <summary>True when a whole line is already received: reading it will not wait for the peer.</summary>
    public bool HasBufferedLine => _end > _start && Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start) >= 0;

    /// <summary>The next line without its LF; null at a clean end of stream (between lines).</summary>
    public async ValueTask<string?> ReadLineAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (newline >= 0)
            {
                var line = Encoding.ASCII.GetString(_buffer, _start, newline - _start);
                _start = newline + 1;
                return line;
            }
            if (_end - _start >= PullProtocol.MaxLine) throw new PullProtocolException($"line longer than {PullProtocol.MaxLine} bytes");
            if (await FillAsync(cancellationToken) == 0)
            {
                if (_end == _start) return null;
                throw new PullConnectionLostException("connection closed in the middle of a line");
            }
        }
    }

    /// <summary>Hands exactly <paramref name="count"/> payload bytes to <paramref name="sink"/>, in pieces.</summary>
    public async ValueTask ReadPayloadAsync(long count, Func<ReadOnlyMemory<byte>, ValueTask> sink, CancellationToken cancellationToken = default)
    {
        while (count > 0)
        {
            if (_end == _start && await FillAsync(cancellationToken) == 0)
                throw new PullConnectionLostException($"connection closed with {count} bytes of a blob still to come");
            var take = (int)Math.Min(count, _end - _start);
            await sink(_buffer.AsMemory(_start, take));
            _start += take;
            count -= take;
        }
    }

    private async ValueTask<int> FillAsync(CancellationToken cancellationToken)
    {
        if (_start == _end) _start = _end = 0;
        else if (_start > 0 && _end == _buffer.Length)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            (_end, _start) = (_end - _start, 0);
        }
        if (_stalled) throw new PullIdleException(IdleLimit!.Value); // an earlier read still owns the stream
        var pending = stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
        // Bytes already there need no timer: the limit costs something only when the peer keeps us waiting.
        var read = pending.IsCompleted || IdleLimit is not { } limit ? await pending : await WithinAsync(pending.AsTask(), limit, cancellationToken);
        _end += read;
        return read;
    }

    private async Task<int> WithinAsync(Task<int> read, TimeSpan limit, CancellationToken cancellationToken)
    {
        if (await PeerWait.EndsWithin(read, limit, cancellationToken)) return await read;
        _stalled = true;
        throw new PullIdleException(limit);
    }
}

/// <summary>Bounded waits on the peer's stream, for the server and for fetch alike.</summary>
internal static class PeerWait
{
    /// <summary>
    /// Whether <paramref name="work"/> (a read or write on the peer's stream) ends within <paramref name="limit"/>. If
    /// not, it is left behind with its failure observed: a read from stdin or a write to a pipe cannot always be
    /// cancelled, and the caller, returning, ends the process or closes the connection under it.
    /// </summary>
    public static async Task<bool> EndsWithin(Task work, TimeSpan limit, CancellationToken cancellationToken)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (await Task.WhenAny(work, Task.Delay(limit, timer.Token)) == work)
        {
            timer.Cancel();
            return true;
        }
        _ = work.ContinueWith(static t => _ = t.Exception, TaskContinuationOptions.OnlyOnFaulted);
        cancellationToken.ThrowIfCancellationRequested();
        return false;
    }
}
