using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using OnionDrop.Files;
using OnionDrop.Storage;
using static OnionDrop.Pull.PullProtocol;

namespace OnionDrop.Pull;

public sealed record FetchProgress(int Done, int Total, long Bytes, long TotalBytes);

/// <summary>What one fetch did. <see cref="Problems"/> lists blobs left on the server, one line each.</summary>
public sealed record FetchResult(int Received, int AlreadyHeld, long BytesReceived, int Acknowledged, int Waiting, IReadOnlyList<string> Problems)
{
    /// <summary>Submissions the server listed beyond <see cref="FetchOptions.MaxListed"/>: for the next run.</summary>
    public int NotListed { get; init; }

    /// <summary>Listed, then gone from the server before their GET: completed by a colleague's fetch, or past their keeping time.</summary>
    public int GoneMeanwhile { get; init; }

    /// <summary>
    /// Left on the server because the disk had no room for them (<see cref="FetchOptions.KeepFreeBytes"/> kept free):
    /// one cause for all, said once, not a line per blob. Not in <see cref="Problems"/>.
    /// </summary>
    public int NoRoom { get; init; }
    public long NoRoomBytes { get; init; }
}

public sealed class FetchOptions
{
    public required string OutputDirectory { get; init; }

    /// <summary>Requests kept in flight so the connection never idles between blobs.</summary>
    public int Window { get; init; } = 32;

    /// <summary>Acknowledge (after one directory fsync) once this many blobs or bytes are durable, or nothing else is coming.</summary>
    public int AckBatchCount { get; init; } = 64;
    public long AckBatchBytes { get; init; } = 64L << 20;

    public Action<FetchProgress>? Progress { get; init; }

    /// <summary>At most this many listed submissions are taken in one run (about 30 MB of list): a server's count cannot exhaust memory.</summary>
    public int MaxListed { get; init; } = 100_000;

    /// <summary>A blob is fetched only if this much stays free on DIR's disk once it is here (and the blobs before it).</summary>
    public long KeepFreeBytes { get; init; } = 1L << 30;

    /// <summary>
    /// Called with each <c>ID.sealed</c> path before it is acknowledged (fetch --open): each newly stored, and each
    /// found already here (an earlier run stored it but was cut off before its acknowledgement, perhaps before
    /// this call too).
    /// </summary>
    public Func<string, CancellationToken, Task>? Stored { get; init; }

    /// <summary>
    /// From the server's greeting on, how long fetch waits for the server's next bytes before it gives up with
    /// <see cref="PullIdleException"/> (null: for ever). Not before the greeting: ssh may be waiting there for the
    /// journalist to type a passphrase or accept a host key.
    /// </summary>
    public TimeSpan? IdleTimeout { get; init; } = PullClient.DefaultIdleTimeout;
}

/// <summary>Another fetch is writing into the same folder.</summary>
public sealed class FetchDirectoryBusyException(string dir)
    : IOException($"another oniondrop fetch is writing into {dir}: wait for it to end, or fetch into another folder");

/// <summary>
/// The journalist's side of the pull protocol. Each blob goes to DIR/ID.partial, is checked against the
/// framed length and SHA-256, fsynced, renamed to DIR/ID.sealed, the directory fsynced, and only then
/// acknowledged. A cut connection loses nothing: whatever was not acknowledged is still on the server, and
/// a blob already in DIR (verified again) is acknowledged without being sent twice.
/// </summary>
public static class PullClient
{
    /// <summary>
    /// A server that keeps the connection open and sends nothing (a hung relay, ProxyCommand or Tor circuit) would
    /// otherwise hold fetch for ever. The server sends while fetch waits (a list, blobs, acknowledgements), so
    /// minutes of silence mean a stall; long enough for a Tor circuit to be rebuilt. The server's own limit on the
    /// journalist's silence is <see cref="PullServer.DefaultIdleTimeout"/>.
    /// </summary>
    public static readonly TimeSpan DefaultIdleTimeout = TimeSpan.FromMinutes(5);

    private enum Kind { Get, Ack }

    public static async Task<FetchResult> FetchAsync(Stream fromServer, Stream toServer, FetchOptions options, CancellationToken cancellationToken = default)
    {
        var dir = options.OutputDirectory;
        Directory.CreateDirectory(dir);
        // Held for the whole fetch: another fetch's ID.partial is not a leftover, and its rename would publish
        // whatever file holds that name.
        using var dirLock = Posix.TryLockDirectory(dir) ?? throw new FetchDirectoryBusyException(dir);
        RemoveLeftovers(dir);
        var reader = new ProtocolReader(fromServer);
        var problems = new List<string>();
        var pending = new List<Task<string?>>();

        var greeting = await reader.ReadLineAsync(cancellationToken) ?? throw new PullNeverStartedException("the server closed the connection before greeting (is the forced command `oniondrop pull --stdio`?)");
        if (greeting.StartsWith(Error + " ", StringComparison.Ordinal))
            throw new PullProtocolException($"the server refused: {Printable(greeting[(Error.Length + 1)..])}");
        if (greeting != Greeting)
            throw new PullProtocolException(greeting.StartsWith("ONIONDROP-PULL ") ? $"server speaks {Printable(greeting)}, this fetch speaks {Greeting}" : $"not an OnionDrop pull server (it said: {Printable(greeting)})");
        // Logged in, and a pull server answers: from now on every wait for it is bounded.
        reader.IdleLimit = options.IdleTimeout;

        // Everything written to the server goes through one channel, so requests stay in the order they were queued.
        var outgoing = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var writerStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var writer = WriteLinesAsync(outgoing.Reader, toServer, writerStop.Token);
        try
        {
            outgoing.Writer.TryWrite(List);
            var (waiting, notListed) = await ReadListAsync(reader, options.MaxListed, cancellationToken);
            // Saturating: sizes are the server's word, and a checked sum of lies overflowed.
            long totalBytes = waiting.Aggregate(0L, (sum, i) => sum > long.MaxValue - i.Size ? long.MaxValue : sum + i.Size), received = 0;
            int receivedCount = 0, held = 0, acknowledged = 0, done = 0, goneMeanwhile = 0;
            options.Progress?.Invoke(new FetchProgress(0, waiting.Count, 0, totalBytes)); // a fetch cut before its first blob still knows the count

            var inFlight = new Queue<(Kind Kind, string Id)>();
            var toGet = new Queue<Listed>();
            // Received or held blobs not yet acknowledged; Durable completes (with the .sealed path, or null if
            // refused) once the file is fsynced and renamed. Files are fsynced in the background, in parallel,
            // while the next blobs arrive; the batch is acknowledged after one directory fsync.
            var batch = new List<(string Id, Task<string?> Durable, bool New)>();
            long batchBytes = 0;

            void Request(Kind kind, string id)
            {
                inFlight.Enqueue((kind, id));
                outgoing.Writer.TryWrite($"{(kind == Kind.Get ? Get : Ack)} {id}");
            }
            // Bytes of blobs asked for and not yet here: the disk must keep room for them too.
            long comingBytes = 0, noRoomBytes = 0;
            var noRoom = 0;
            var maxFile = FileSync.MaxFileBytes(dir);
            // The next blob that leaves the disk its reserve once it is here; those that would not stay on the
            // server (a server, or a flood of submissions, must not fill the journalist's disk), as do those larger
            // than a file there can be (FAT32's 4 GiB), which no rerun would change.
            void RequestNextGet()
            {
                while (toGet.TryDequeue(out var next))
                {
                    if (next.Size > maxFile) lock (problems) problems.Add(TooLarge(next.Id, next.Size, dir));
                    else if (next.Size <= new DriveInfo(dir).AvailableFreeSpace - comingBytes - options.KeepFreeBytes)   // this way round, a huge size cannot wrap
                    {
                        comingBytes += next.Size;
                        Request(Kind.Get, next.Id);
                        return;
                    }
                    else
                    {
                        noRoom++;
                        noRoomBytes = noRoomBytes > long.MaxValue - next.Size ? long.MaxValue : noRoomBytes + next.Size;
                    }
                    done++;
                }
            }
            async Task FlushBatchAsync()
            {
                if (batch.Count == 0) return;
                var ready = new List<string>();
                foreach (var (id, durable, isNew) in batch)
                {
                    if (await durable is not { } path) continue;
                    if (isNew) receivedCount++;
                    // Also one an earlier run stored and was cut off before it acknowledged: it may have been cut
                    // before Stored (fetch --open) ran, and once acknowledged it is never listed again.
                    if (options.Stored is { } stored) await stored(path, cancellationToken);
                    ready.Add(id);
                }
                batch.Clear();
                batchBytes = 0;
                if (ready.Count == 0) return;
                FileSync.Fsync(dir); // the renames are durable: now the server may forget these blobs
                foreach (var id in ready) Request(Kind.Ack, id);
            }

            foreach (var item in waiting)
            {
                var existing = Path.Combine(dir, item.Id + ".sealed");
                // A folder of that name (fetch --open names folders from a reference the server chose) is not
                // overwritten, and must not stop every later run either: reported, left on the server.
                if (Directory.Exists(existing) || Directory.Exists(Path.Combine(dir, item.Id + ".partial")))
                {
                    lock (problems) problems.Add($"{item.Id}: a folder is in the way of {item.Id}.sealed or .partial in {dir}; left on the server");
                    done++;
                    continue;
                }
                if (!File.Exists(existing)) { toGet.Enqueue(item); continue; }
                // Received by an earlier fetch whose acknowledgement never arrived: check it, acknowledge, don't fetch twice.
                if (await MatchesAsync(existing, item, cancellationToken))
                {
                    FileSync.Fsync(existing); // not necessarily a fetch's (a copy put back by hand may not be on the disk yet)
                    batch.Add((item.Id, Task.FromResult<string?>(existing), false));
                    held++;
                    done++;
                }
                else lock (problems) problems.Add($"{item.Id}: {existing} exists with other content; left on the server, not overwritten");
            }
            await FlushBatchAsync();
            while (inFlight.Count(r => r.Kind == Kind.Get) < options.Window && toGet.Count > 0) RequestNextGet();

            var byId = waiting.ToDictionary(i => i.Id);
            while (inFlight.TryDequeue(out var request))
            {
                var line = await reader.ReadLineAsync(cancellationToken) ?? throw new PullConnectionLostException("connection closed");
                var words = line.Split(' ');
                if (words[0] == Error)
                {
                    var message = line.Length > Error.Length + 1 ? line[(Error.Length + 1)..] : "(no reason given)";
                    // Gone on the server since the LIST (a colleague's fetch completed it under DeleteAfter=First, or
                    // retention deleted it): the server's choice, not a failure of this fetch. Anything else stays there.
                    var gone = words.ElementAtOrDefault(1) == Errors.NotFound;
                    if (gone && request.Kind == Kind.Get) goneMeanwhile++;
                    else if (!gone)
                        lock (problems) problems.Add($"{request.Id}: server refused {request.Kind.ToString().ToUpperInvariant()}: {Printable(message)}");
                    if (request.Kind == Kind.Get)
                    {
                        done++;
                        comingBytes -= byId[request.Id].Size;
                        RequestNextGet();
                    }
                }
                else if (request.Kind == Kind.Ack)
                {
                    if (line != $"{Acked} {request.Id}") throw new PullProtocolException($"expected ACKED {request.Id}, got: {Printable(line)}");
                    acknowledged++;
                }
                else
                {
                    var item = byId[request.Id];
                    if (words is not [Blob, var id, var sizeText, var sha] || id != request.Id || !long.TryParse(sizeText, out var size) || size < 0)
                        throw new PullProtocolException($"expected BLOB {request.Id} ..., got: {Printable(line)}");
                    // Checked before a byte is written: the listed size is what the disk was checked for.
                    if (size != item.Size) throw new PullProtocolException($"the server sends {size} bytes for {id}, listed with {item.Size}");
                    var durable = await ReceiveAsync(reader, dir, id, size, sha, item, problems, cancellationToken);
                    comingBytes -= size;
                    pending.Add(durable);
                    done++;
                    received += size;
                    batch.Add((id, durable, true));
                    batchBytes += size;
                    options.Progress?.Invoke(new FetchProgress(done, waiting.Count, received, totalBytes));
                    RequestNextGet();
                }
                // Acknowledge in batches (one directory fsync each), and whatever is left once no blob is on its way.
                var blobsComing = inFlight.Any(r => r.Kind == Kind.Get);
                if (batch.Count >= options.AckBatchCount || batchBytes >= options.AckBatchBytes || (!blobsComing && batch.Count > 0)) await FlushBatchAsync();
            }

            outgoing.Writer.TryWrite(Quit);
            var bye = await reader.ReadLineAsync(cancellationToken);
            // Gone before its BYE (killed after the last ACKED, say): a cut like any other; a run again finds nothing lost.
            if (bye is null) throw new PullConnectionLostException("connection closed before the server's BYE");
            if (bye != Bye) throw new PullProtocolException($"expected BYE, got: {Printable(bye)}");
            return new FetchResult(receivedCount, held, received, acknowledged, waiting.Count, problems)
                { NotListed = notListed, GoneMeanwhile = goneMeanwhile, NoRoom = noRoom, NoRoomBytes = noRoomBytes };
        }
        finally
        {
            // Let background fsyncs finish, so nothing renames behind our back after we return.
            try { await Task.WhenAll(pending); } catch (Exception) { }
            outgoing.Writer.TryComplete();
            writerStop.Cancel(); // done, or failing: either way nothing more needs to reach the server
            try { await writer; } catch (OperationCanceledException) { } catch (IOException) { }
            RemoveLeftovers(dir);
        }
    }

    private sealed record Listed(string Id, long Size, string Sha256Hex);

    /// <summary>
    /// The list, as far as one run takes it: the first <paramref name="maxListed"/> distinct ids (memory stays
    /// bounded whatever count a server claims; what is left is fetched by the next run). Every line is read, so
    /// the replies that follow stay in step.
    /// </summary>
    private static async Task<(List<Listed> Items, int NotTaken)> ReadListAsync(ProtocolReader reader, int maxListed, CancellationToken cancellationToken)
    {
        var header = await reader.ReadLineAsync(cancellationToken) ?? throw new PullConnectionLostException("connection closed before the list");
        if (header.StartsWith(Error + " ")) throw new PullProtocolException("server: " + Printable(header[(Error.Length + 1)..]));
        if (header.Split(' ') is not [Waiting, var countText, _] || !int.TryParse(countText, out var count) || count < 0)
            throw new PullProtocolException($"expected WAITING, got: {Printable(header)}");
        var items = new List<Listed>(Math.Min(count, maxListed));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var notTaken = 0;
        for (var i = 0; i < count; i++)
        {
            var line = await reader.ReadLineAsync(cancellationToken) ?? throw new PullConnectionLostException("connection closed in the list");
            if (line.Split(' ') is not [Item, var id, var sizeText, var sha] || !SubmissionId.IsValid(id) || !long.TryParse(sizeText, out var size) || size < 0 || !IsSha256Hex(sha))
                throw new PullProtocolException($"bad ITEM line: {Printable(line)}");
            if (items.Count == maxListed) { notTaken++; continue; }
            if (!seen.Add(id)) throw new PullProtocolException($"the list names {id} twice");
            items.Add(new Listed(id, size, sha));
        }
        return (items, notTaken);
    }

    private static bool IsSha256Hex(string text) => text.Length == 64 && text.All(char.IsAsciiHexDigit);

    /// <summary>
    /// Receives one framed blob to ID.partial and checks its length and SHA-256. Returns a task that fsyncs
    /// it and renames it to ID.sealed (its path), or null when the blob was refused (and removed).
    /// </summary>
    private static async Task<Task<string?>> ReceiveAsync(ProtocolReader reader, string dir, string id, long size, string sha, Listed listed,
        List<string> problems, CancellationToken cancellationToken)
    {
        var partial = Path.Combine(dir, id + ".partial");
        var final = Path.Combine(dir, id + ".sealed");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var file = new FileStream(partial, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 0,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        var tooLarge = false;
        try
        {
            // Its space reserved first: a full disk stops here, with errno; a file too large is left on the server.
            try { FileSync.Reserve(file.SafeFileHandle, partial, size); }
            catch (IOException e) when (WriteFailure.IsFileTooLarge(e)) { tooLarge = true; }
            await reader.ReadPayloadAsync(size, async chunk =>
            {
                if (tooLarge) return;   // the rest is read and dropped, so that the next reply is read in step
                hash.AppendData(chunk.Span);
                try { await file.WriteAsync(chunk, cancellationToken); }
                catch (ArgumentOutOfRangeException) { tooLarge = true; }   // EFBIG, as .NET reports it
                catch (IOException e) when (WriteFailure.IsFileTooLarge(e)) { tooLarge = true; }
            }, cancellationToken);
        }
        catch
        {
            await file.DisposeAsync();
            TryDelete(partial);
            throw;
        }
        if (tooLarge)
        {
            await file.DisposeAsync();
            TryDelete(partial);
            lock (problems) problems.Add(TooLarge(id, size, dir));
            return Task.FromResult<string?>(null);
        }
        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!actual.Equals(sha, StringComparison.OrdinalIgnoreCase) || !sha.Equals(listed.Sha256Hex, StringComparison.OrdinalIgnoreCase))
        {
            await file.DisposeAsync();
            TryDelete(partial);
            lock (problems) problems.Add($"{id}: received {size} bytes with SHA-256 {actual}, expected {listed.Size} bytes with {listed.Sha256Hex}; not acknowledged");
            return Task.FromResult<string?>(null);
        }
        return Task.Run<string?>(() =>
        {
            var renamed = false;
            try
            {
                using (file) file.Flush(flushToDisk: true);
                if (Path.Exists(final))
                {
                    lock (problems) problems.Add($"{id}: {final} appeared meanwhile; not overwritten, not acknowledged");
                    return null;
                }
                File.Move(partial, final, overwrite: false);
                renamed = true;
                return final;
            }
            finally
            {
                if (!renamed) TryDelete(partial);
            }
        }, CancellationToken.None);
    }

    /// <summary>A blob no file in <paramref name="dir"/> can hold: no rerun changes that, another folder does.</summary>
    private static string TooLarge(string id, long size, string dir) =>
        $"{id}: {ByteSize.Format(size)} is more than a file in {dir} can be (File too large); left on the server: fetch it into a folder on another " +
        $"file system (FAT32, as many USB sticks are, takes at most 4 GiB - 1 byte a file)";

    private static async Task<bool> MatchesAsync(string path, Listed item, CancellationToken cancellationToken)
    {
        await using var file = File.OpenRead(path);
        if (file.Length != item.Size) return false;
        var hash = await SHA256.HashDataAsync(file, cancellationToken);
        return Convert.ToHexStringLower(hash).Equals(item.Sha256Hex, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>ID.partial files are ours, from a fetch that was cut: never complete, never acknowledged.</summary>
    private static void RemoveLeftovers(string dir)
    {
        foreach (var path in Directory.EnumerateFiles(dir, "*.partial"))
            if (SubmissionId.IsValid(Path.GetFileNameWithoutExtension(path))) TryDelete(path);
    }

    private static async Task WriteLinesAsync(ChannelReader<string> lines, Stream toServer, CancellationToken cancellationToken)
    {
        var pending = new StringBuilder();
        while (await lines.WaitToReadAsync(cancellationToken))
        {
            while (lines.TryRead(out var line)) pending.Append(line).Append('\n');
            await toServer.WriteAsync(Encoding.ASCII.GetBytes(pending.ToString()), cancellationToken);
            await toServer.FlushAsync(cancellationToken);
            pending.Clear();
        }
    }

    private static string Printable(string text) => PullProtocol.Printable(text, 120);

    /// <summary>Removes an ID.partial of ours; one that cannot be removed now is left to <see cref="RemoveLeftovers"/>.</summary>
    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
