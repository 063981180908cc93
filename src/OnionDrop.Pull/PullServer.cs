using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using OnionDrop.Storage;
using static OnionDrop.Pull.PullProtocol;

namespace OnionDrop.Pull;

/// <summary>
/// The server side of the pull protocol (docs/pull-protocol.md) for one journalist over one connection:
/// answers LIST, GET, ACK and QUIT in the order they arrive. Sends ciphertext only, exactly as stored,
/// framed with the catalog's size and SHA-256; deletes nothing itself (the store applies the deletion
/// policy when an ACK arrives).
/// </summary>
/// <param name="idleTimeout">how long the peer may send nothing at all before the server hangs up (default
/// <see cref="DefaultIdleTimeout"/>)</param>
public sealed class PullServer(ISealedBlobStore store, string journalist, ILogger? log = null, TimeSpan? idleTimeout = null)
{
    /// <summary>
    /// A session left hanging (a journalist's frozen ssh) would hold a place on pull.sock for ever or, served while
    /// the daemon is stopped, the store, which another journalist's pull waits for (a daemon starting takes it over at
    /// once). Long enough for a slow link to drain a large blob and for `fetch --open` to open it before acknowledging.
    /// </summary>
    public static readonly TimeSpan DefaultIdleTimeout = TimeSpan.FromMinutes(10);

    private readonly ILogger _log = log ?? NullLogger.Instance;
    private readonly TimeSpan _idleTimeout = idleTimeout ?? DefaultIdleTimeout;

    public Task RunAsync(Stream input, Stream output, CancellationToken cancellationToken = default) =>
        RunAsync(new ProtocolReader(input), output, cancellationToken);

    /// <param name="reader">a reader that may already have taken the first lines (pull.sock's AS line)</param>
    public async Task RunAsync(ProtocolReader reader, Stream output, CancellationToken cancellationToken = default)
    {
        if (!SealedBlobStoreOptions.IsValidJournalistName(journalist)) throw new ArgumentException($"bad journalist name '{journalist}'");
        var sent = 0;
        var acked = 0;
        var copyBuffer = new byte[256 * 1024];
        // A peer that stops reading (its disk hung, say) would block a write for ever, just as one that stops
        // sending blocks a read: the same limit applies to both.
        output = new StallLimitStream(output, _idleTimeout, () =>
            _log.LogInformation("pull: {Journalist} read nothing for {Minutes:0} min; hanging up", journalist, _idleTimeout.TotalMinutes));
        try
        {
            await WriteAsync(output, Greeting);
            string? next = null;
            while ((next ?? await NextLineAsync(reader, output, cancellationToken)) is { } line)
            {
                next = null;
                var words = line.Split(' ');
                switch (words[0])
                {
                    case List when words.Length == 1:
                        IReadOnlyList<SubmissionRecord> waiting;
                        try { waiting = store.ListWaiting(journalist); }
                        catch (IOException e)
                        {
                            _log.LogError("pull: cannot list for {Journalist}: {Error}", journalist, e.Message);
                            await ErrorAsync(output, Errors.ServerError, $"the server cannot read its catalog: {e.Message}");
                            return;
                        }
                        var list = new StringBuilder($"{Waiting} {waiting.Count} {waiting.Sum(r => r.Size)}\n");
                        foreach (var r in waiting) list.Append($"{Item} {r.Id} {r.Size} {r.Sha256Hex}\n");
                        await output.WriteAsync(Encoding.ASCII.GetBytes(list.ToString()), cancellationToken);
                        break;
                    case Get when words.Length == 2:
                        if (await SendAsync(words[1], output, copyBuffer, cancellationToken)) sent++;
                        break;
                    case Ack when words.Length == 2:
                        // Acknowledgements come in bursts: take all that already arrived in one catalog transaction.
                        var ids = new List<string> { words[1] };
                        while (reader.HasBufferedLine && await reader.ReadLineAsync(cancellationToken) is { } more)
                        {
                            if (more.Split(' ') is [Ack, var id]) ids.Add(id);
                            else { next = more; break; }
                        }
                        var valid = ids.Where(SubmissionId.IsValid).ToList();
                        IReadOnlyList<SubmissionRecord?> records;
                        string? failed = null;
                        // The store's failure (a full disk) is the server's to report, not a peer gone away: each
                        // acknowledgement is refused, the blobs stay, and a later fetch acknowledges them again.
                        try { records = await store.AcknowledgeAsync(valid, journalist); }
                        catch (IOException e)
                        {
                            _log.LogError("pull: could not record {Count} acknowledgement(s) by {Journalist}: {Error}", valid.Count, journalist, e.Message);
                            (records, failed) = (new SubmissionRecord?[valid.Count], e.Message);
                        }
                        var text = new StringBuilder();
                        foreach (var id in ids)
                        {
                            var index = valid.IndexOf(id);
                            if (index < 0) text.Append($"{Error} {Errors.BadId} {Printable(id)}\n");
                            else if (failed is not null) text.Append($"{Error} {Errors.ServerError} {id} not recorded: {Printable(failed)}\n");
                            else if (records[index] is null) text.Append($"{Error} {Errors.NotFound} {id}\n");
                            else { acked++; text.Append($"{Acked} {id}\n"); }
                        }
                        await output.WriteAsync(Encoding.ASCII.GetBytes(text.ToString()), cancellationToken);
                        break;
                    case Quit when words.Length == 1:
                        await WriteAsync(output, Bye);
                        return;
                    default:
                        await ErrorAsync(output, Errors.UnknownCommand, Printable(line));
                        return; // a peer that speaks something else gets one answer, then the door
                }
                if (next is null && !reader.HasBuffered) await output.FlushAsync(cancellationToken);
            }
        }
        catch (PullConnectionLostException) { }
        catch (PullProtocolException e)
        {
            await ErrorAsync(output, Errors.LineTooLong, e.Message);
        }
        catch (IOException) { } // the peer went away mid-answer: nothing to tell it
        finally
        {
            if (sent > 0 || acked > 0) _log.LogInformation("pull: {Journalist} was sent {Sent} blob(s) and acknowledged {Acked}", journalist, sent, acked);
        }
    }

    /// <summary>The peer's next line; null at its end, or after <see cref="_idleTimeout"/> of silence (said to the peer).</summary>
    private async Task<string?> NextLineAsync(ProtocolReader reader, Stream output, CancellationToken cancellationToken)
    {
        var pending = reader.ReadLineAsync(cancellationToken);
        if (pending.IsCompleted) return await pending; // a line already buffered: no timer
        var read = pending.AsTask();
        if (await PeerWait.EndsWithin(read, _idleTimeout, cancellationToken)) return await read;
        _log.LogInformation("pull: {Journalist} sent nothing for {Minutes:0} min; hanging up", journalist, _idleTimeout.TotalMinutes);
        await ErrorAsync(output, Errors.Idle, $"nothing received for {_idleTimeout.TotalSeconds:0} s");
        return null;
    }

    private async Task<bool> SendAsync(string id, Stream output, byte[] buffer, CancellationToken cancellationToken)
    {
        if (!SubmissionId.IsValid(id)) { await ErrorAsync(output, Errors.BadId, Printable(id)); return false; }
        var record = store.Find(id);
        if (record is null || record.State is not (SubmissionState.Committed or SubmissionState.Acknowledged))
        {
            await ErrorAsync(output, Errors.NotFound, id);
            return false;
        }
        Stream file;
        try { file = store.OpenSealed(id); }
        catch (FileNotFoundException) { await ErrorAsync(output, Errors.NotFound, id); return false; }
        await using (file)
        {
            // The frame promises exactly Size bytes: check before promising, so a damaged file cannot desync the stream.
            if (file.Length != record.Size)
            {
                _log.LogError("pull: submission {Id} is {Actual} bytes on disk, catalog says {Size}", id, file.Length, record.Size);
                await ErrorAsync(output, Errors.Damaged, id);
                return false;
            }
            await WriteAsync(output, $"{Blob} {id} {record.Size} {record.Sha256Hex}");
            var left = record.Size;
            while (left > 0)
            {
                var read = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), cancellationToken);
                if (read == 0) throw new IOException($"submission {id} shrank while being sent"); // ends the connection: the frame cannot be kept
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                left -= read;
            }
        }
        return true;
    }

    private static ValueTask WriteAsync(Stream output, string line) => output.WriteAsync(Line(line));

    private static async Task ErrorAsync(Stream output, string code, string detail)
    {
        await WriteAsync(output, $"{Error} {code} {detail}");
        await output.FlushAsync();
    }

    /// <summary>Writes that must complete within a limit: past it, an IOException (the peer is gone, as far as we care).</summary>
    private sealed class StallLimitStream(Stream inner, TimeSpan limit, Action stalled) : Stream
    {
        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            await WithinLimit(inner.WriteAsync(buffer, cancellationToken).AsTask(), cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override Task FlushAsync(CancellationToken cancellationToken) => WithinLimit(inner.FlushAsync(cancellationToken), cancellationToken);

        private async Task WithinLimit(Task write, CancellationToken cancellationToken)
        {
            if (write.IsCompleted || await PeerWait.EndsWithin(write, limit, cancellationToken))
            {
                await write;
                return;
            }
            stalled();
            throw new IOException($"the peer read nothing for {limit.TotalSeconds:0} s");
        }

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("writes here are asynchronous");
        public override void Flush() => throw new NotSupportedException("writes here are asynchronous");
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private static string Printable(string text) => PullProtocol.Printable(text, 80);
}
