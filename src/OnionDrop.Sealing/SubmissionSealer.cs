using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Threading.Channels;
using OnionDrop.Sealing.Interop;
using Sodium;

namespace OnionDrop.Sealing;

/// <summary>
/// Seals one submission as it streams in (docs/sealed-format.md): header with one stanza per recipient,
/// then the framed files and manifest through crypto_secretstream. Memory stays at a few chunks; nothing
/// but ciphertext is written to <c>output</c>.
/// Call order: (BeginFileAsync, WriteAsync*, EndFileAsync)*, CompleteAsync. Disposing before
/// CompleteAsync leaves an unfinished stream that no opener accepts.
/// The per-chunk path allocates nothing: its async methods reuse their state machines (the pooling builder),
/// so a long upload leaves no garbage behind.
/// The file's SHA-256 (for its end record and the manifest) is taken on a lane of its own from the plaintext
/// chunks already filled, which wait in a small ring until it has: the writer never waits for the hash but at
/// the end of a file. (Hashing each write on a pool thread beside its encryption, and waiting for it before the
/// next, left part of a core idle on every write: a third of the sealer's time on a disk-bound run.)
/// </summary>
public sealed class SubmissionSealer : IAsyncDisposable
{
    private enum State { Idle, InFile, Completed, Broken }

    /// <summary>The longest content type <see cref="BeginFileAsync"/> takes, in UTF-8 bytes.</summary>
    public const int MaxContentTypeBytes = SealedFormat.MaxContentTypeBytes;

    /// <summary>The longest message <see cref="CompleteAsync"/> takes, in characters.</summary>
    public const int MaxMessageChars = SealedFormat.MaxMessageChars;

    /// <summary>The most files one submission holds (<see cref="BeginFileAsync"/> refuses another).</summary>
    public const int MaxFiles = SealedFormat.MaxFiles;

    /// <summary>Plaintext chunks per submission: the one filling, and the rest waiting for the file hash.</summary>
    private const int PlainChunks = 4;

    private readonly Stream _output;
    private readonly byte[] _header;          // written before the first chunk, and that chunk's additional data
    private readonly SecretStream _stream;
    private readonly byte[][] _plains;        // the ring of plaintext chunks
    private readonly List<(int Start, int Length)>[] _fileBytes;   // where in each chunk the open file's bytes are
    private int _current;                     // the chunk being filled; held back when full until more data comes
    private byte[] _plain;                    // _plains[_current]
    private readonly Channel<int> _toHash, _hashed;   // chunk numbers, to the hash lane and back
    private readonly Task _hashLane;
    private readonly int[] _back = new int[PlainChunks - 1];   // the ring's chunks, gathered to know the lane is done
    private readonly byte[][] _cipher;       // two: one being written out while the next chunk is encrypted
    private int _nextCipher;
    private ValueTask _pendingWrite;           // awaited exactly once, then reset
    private readonly byte[] _scratch = new byte[1 + 8 + 32];
    private readonly List<ManifestFile> _files = [];
    private readonly IncrementalHash _fileHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private int _filled;
    private bool _headerWritten;
    private State _state;
    private bool _disposed;
    private string _fileName = "", _fileType = "";
    private long _fileSize;

    // Test-vector knobs (tests/vectors/generate): produce streams a correct sealer never writes.
    internal byte FinalTag { get; init; } = SecretStream.TagFinal;

    /// <summary>Test-vector knob: plaintext appended as given, records or not, manifest or not.</summary>
    internal ValueTask AppendRawAsync(ReadOnlyMemory<byte> plaintext, CancellationToken cancellationToken = default) =>
        AppendAsync(plaintext, cancellationToken);

    /// <summary>Test-vector knob: ends the stream after <see cref="AppendRawAsync"/>, with no manifest of the sealer's own.</summary>
    internal async ValueTask CompleteRawAsync(CancellationToken cancellationToken = default)
    {
        await FlushChunkAsync(FinalTag, cancellationToken);
        await AwaitPendingWriteAsync();
        await _output.FlushAsync(cancellationToken);
        _state = State.Completed;
    }

    public SubmissionSealer(Stream output, IReadOnlyList<RecipientPublicKey> recipients)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(recipients);
        if (recipients.Count == 0) throw new ArgumentException("at least one recipient public key is needed", nameof(recipients));
        if (recipients.Count > SealedFormat.MaxRecipients) throw new ArgumentException($"at most {SealedFormat.MaxRecipients} recipients", nameof(recipients));
        _output = output;

        // Header: preamble, recipient count, stanzas (key id + crypto_box_seal(stream key)), secretstream header.
        _header = new byte[SealedFormat.HeaderLength(recipients.Count)];
        var h = _header.AsSpan();
        SealedFormat.Magic.CopyTo(h);
        h[6] = SealedFormat.Version;
        h[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(h[8..], (ushort)recipients.Count);
        var offset = SealedFormat.PreambleLength + SealedFormat.RecipientCountLength;
        var streamKey = SodiumCore.GetRandomBytes(SecretStream.KeyBytes);
        try
        {
            foreach (var r in recipients)
            {
                r.KeyId.Span.CopyTo(h[offset..]);
                SealedPublicKeyBox.Create(streamKey, r.Bytes.ToArray()).CopyTo(h[(offset + SealedFormat.KeyIdLength)..]);
                offset += SealedFormat.StanzaLength;
            }
            _stream = SecretStream.InitPush(streamKey, h[offset..]);
        }
        finally { CryptographicOperations.ZeroMemory(streamKey); }

        _plains = new byte[PlainChunks][];
        _fileBytes = new List<(int, int)>[PlainChunks];
        var options = new UnboundedChannelOptions { SingleReader = true, SingleWriter = true };
        _toHash = Channel.CreateUnbounded<int>(options);
        _hashed = Channel.CreateUnbounded<int>(options);
        for (var i = 0; i < PlainChunks; i++)
        {
            _plains[i] = ArrayPool<byte>.Shared.Rent(SealedFormat.ChunkSize);
            _fileBytes[i] = [];
            if (i > 0) _hashed.Writer.TryWrite(i);
        }
        _plain = _plains[0];
        _hashLane = Task.Run(HashLaneAsync);
        _cipher = [ArrayPool<byte>.Shared.Rent(SealedFormat.CipherChunkSize), ArrayPool<byte>.Shared.Rent(SealedFormat.CipherChunkSize)];
    }

    /// <summary>Bytes of ciphertext written to the output so far.</summary>
    public long CiphertextLength { get; private set; }

    public ValueTask BeginFileAsync(string name, string contentType, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(contentType);
        Expect(State.Idle, "BeginFileAsync");
        name = ValidUnicode(name);
        contentType = ValidUnicode(contentType);
        var nameBytes = SealedFormat.Utf8.GetBytes(name);
        var typeBytes = SealedFormat.Utf8.GetBytes(contentType);
        if (nameBytes.Length > SealedFormat.MaxNameBytes) throw new ArgumentException($"file name longer than {SealedFormat.MaxNameBytes} bytes", nameof(name));
        if (typeBytes.Length > SealedFormat.MaxContentTypeBytes) throw new ArgumentException($"content type longer than {SealedFormat.MaxContentTypeBytes} bytes", nameof(contentType));
        if (_files.Count == SealedFormat.MaxFiles) throw new ArgumentException($"more than {SealedFormat.MaxFiles} files: no opener accepts them", nameof(name));

        var record = new byte[1 + 4 + nameBytes.Length + 4 + typeBytes.Length];
        record[0] = SealedFormat.RecordFileStart;
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(1), (uint)nameBytes.Length);
        nameBytes.CopyTo(record, 5);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(5 + nameBytes.Length), (uint)typeBytes.Length);
        typeBytes.CopyTo(record, 9 + nameBytes.Length);

        _state = State.InFile;
        _fileName = name;
        _fileType = contentType;
        _fileSize = 0;
        return AppendAsync(record, cancellationToken);
    }

    /// <summary>The bytes are copied before the returned task completes; the caller may reuse them then.</summary>
    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        Expect(State.InFile, "WriteAsync");
        if (data.IsEmpty) return ValueTask.CompletedTask;
        _fileSize += data.Length;
        _scratch[0] = SealedFormat.RecordFileData;
        BinaryPrimitives.WriteUInt32LittleEndian(_scratch.AsSpan(1), (uint)data.Length);
        return AppendRecordAsync(5, data, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask EndFileAsync(CancellationToken cancellationToken = default)
    {
        Expect(State.InFile, "EndFileAsync");
        try
        {
            // The end record carries the hash: the lane finishes the chunks it holds, this thread the one filling.
            await HashQueuedChunksAsync();
            HashFileBytes(_current);
        }
        catch { _state = State.Broken; throw; }
        _scratch[0] = SealedFormat.RecordFileEnd;
        BinaryPrimitives.WriteUInt64LittleEndian(_scratch.AsSpan(1), (ulong)_fileSize);
        _fileHash.GetHashAndReset(_scratch.AsSpan(9, 32));
        _files.Add(new ManifestFile(_fileName, _fileType, _fileSize, Convert.ToHexStringLower(_scratch.AsSpan(9, 32))));
        _state = State.Idle;
        await AppendAsync(_scratch.AsMemory(0, 1 + 8 + 32), cancellationToken);
    }

    /// <summary>Writes the manifest (files, message, reference, time received to the minute) and the FINAL chunk, then flushes.</summary>
    public async ValueTask CompleteAsync(string reference, string message, DateTimeOffset receivedAt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(message);
        Expect(State.Idle, "CompleteAsync");
        if (message.Length > SealedFormat.MaxMessageChars) throw new ArgumentException($"message longer than {SealedFormat.MaxMessageChars} characters", nameof(message));
        var json = new Manifest(Manifest.FormatName, ValidUnicode(reference), Manifest.FormatTime(receivedAt), ValidUnicode(message), _files).ToUtf8();
        if (json.Length > SealedFormat.MaxManifestBytes) throw new ArgumentException("manifest too large", nameof(message));
        try
        {
            var record = new byte[5];
            record[0] = SealedFormat.RecordManifest;
            BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(1), (uint)json.Length);
            await AppendAsync(record, cancellationToken);
            await AppendAsync(json, cancellationToken);
            // The manifest is never empty, so the final chunk never is either.
            await FlushChunkAsync(FinalTag, cancellationToken);
            await AwaitPendingWriteAsync();
            await _output.FlushAsync(cancellationToken);
            _state = State.Completed;
        }
        catch { _state = State.Broken; throw; }
        finally { CryptographicOperations.ZeroMemory(json); }
    }

    /// <summary>Appends a file data record: its header, then the file's bytes, which the file hash takes.</summary>
    private ValueTask AppendRecordAsync(int headerLength, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        // Fast path: record header and payload both fit in the current chunk, nothing to flush.
        if (_filled + headerLength + payload.Length <= SealedFormat.ChunkSize && _filled < SealedFormat.ChunkSize)
        {
            _scratch.AsSpan(0, headerLength).CopyTo(_plain.AsSpan(_filled));
            payload.Span.CopyTo(_plain.AsSpan(_filled + headerLength));
            _fileBytes[_current].Add((_filled + headerLength, payload.Length));
            _filled += headerLength + payload.Length;
            return ValueTask.CompletedTask;
        }
        return Slow(headerLength, payload, ct);

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        async ValueTask Slow(int headerLength, ReadOnlyMemory<byte> payload, CancellationToken ct)
        {
            await AppendAsync(_scratch.AsMemory(0, headerLength), ct);
            await AppendAsync(payload, ct, fileBytes: true);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AppendAsync(ReadOnlyMemory<byte> data, CancellationToken ct, bool fileBytes = false)
    {
        try
        {
            while (!data.IsEmpty)
            {
                // A full chunk is sealed only once more data follows: whatever comes last goes out as FINAL.
                if (_filled == SealedFormat.ChunkSize) await FlushChunkAsync(SecretStream.TagMessage, ct);
                var n = Math.Min(SealedFormat.ChunkSize - _filled, data.Length);
                data.Span[..n].CopyTo(_plain.AsSpan(_filled));
                if (fileBytes) _fileBytes[_current].Add((_filled, n));
                _filled += n;
                data = data[n..];
            }
        }
        catch { _state = State.Broken; throw; }
    }

    /// <summary>
    /// Encrypts the buffered plaintext as one chunk and starts writing it; the write runs while the caller
    /// fills and encrypts the next chunk (the previous write is awaited first, so writes stay in order).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FlushChunkAsync(byte tag, CancellationToken ct)
    {
        var cipher = _cipher[_nextCipher];
        _nextCipher ^= 1;
        // A chunk holding file bytes goes to the hash lane (which reads it while it is encrypted here) and
        // stays out of the ring until hashed; a chunk without any is simply filled again.
        var hashing = _fileBytes[_current].Count > 0;
        if (hashing && !_toHash.Writer.TryWrite(_current)) throw new InvalidOperationException("the hash lane has stopped");
        // The whole header is the first chunk's additional data: a change to any stanza fails that chunk.
        var length = _stream.Push(_plain.AsSpan(0, _filled), cipher, _headerWritten ? default : _header, tag);
        _filled = 0;
        if (hashing)
        {
            _current = _hashed.Reader.TryRead(out var free) ? free : await _hashed.Reader.ReadAsync(ct);
            _plain = _plains[_current];
        }
        await AwaitPendingWriteAsync();
        if (!_headerWritten)
        {
            await _output.WriteAsync(_header, ct);
            CiphertextLength += _header.Length;
            _headerWritten = true;
        }
        _pendingWrite = _output.WriteAsync(cipher.AsMemory(0, length), ct);
        CiphertextLength += length;
    }

    /// <summary>Adds the open file's bytes in chunk <paramref name="chunk"/> to its hash, in order.</summary>
    private void HashFileBytes(int chunk)
    {
        foreach (var (start, length) in _fileBytes[chunk]) _fileHash.AppendData(_plains[chunk].AsSpan(start, length));
        _fileBytes[chunk].Clear();
    }

    /// <summary>Hashes each queued chunk in order, then hands it back to the ring.</summary>
    private async Task HashLaneAsync()
    {
        await foreach (var chunk in _toHash.Reader.ReadAllAsync())
        {
            HashFileBytes(chunk);
            _hashed.Writer.TryWrite(chunk);
        }
    }

    /// <summary>Waits until the lane has hashed every chunk queued to it: all but the one filling are back in the ring.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask HashQueuedChunksAsync()
    {
        for (var i = 0; i < PlainChunks - 1; i++) _back[i] = await _hashed.Reader.ReadAsync();
        foreach (var chunk in _back) _hashed.Writer.TryWrite(chunk);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AwaitPendingWriteAsync()
    {
        var pending = _pendingWrite;
        _pendingWrite = default;
        await pending;
    }

    private void Expect(State state, string call)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_state == state) return;
        throw new InvalidOperationException(_state switch
        {
            State.Broken => "the sealer failed earlier; this submission cannot be completed",
            State.Completed => "the submission is already complete",
            State.InFile => $"{call} while a file is open: call EndFileAsync first",
            _ => $"{call} without an open file: call BeginFileAsync first",
        });
    }

    /// <summary>Lone surrogates cannot be encoded; no HTTP form can carry them, so U+FFFD replaces them.</summary>
    private static string ValidUnicode(string s) =>
        s.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0 ? s : SealedFormat.Utf8.GetString(SealedFormat.Utf8.GetBytes(s));

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        // A write still running reads a pooled buffer: let it finish before the buffer goes back.
        try { await AwaitPendingWriteAsync(); }
        catch (Exception) { }   // unfinished anyway: no opener accepts a stream without its FINAL chunk
        // The lane may still be reading a chunk: let it finish before the chunks go back.
        _toHash.Writer.TryComplete();
        await _hashLane;
        _stream.Dispose();
        _fileHash.Dispose();
        foreach (var p in _plains) ArrayPool<byte>.Shared.Return(p, clearArray: true);
        foreach (var c in _cipher) ArrayPool<byte>.Shared.Return(c, clearArray: true);
    }
}
