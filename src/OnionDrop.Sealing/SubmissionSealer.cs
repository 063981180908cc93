using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using OnionDrop.Files;
using OnionDrop.Sealing.Interop;
using Sodium;

namespace OnionDrop.Sealing;

/// <summary>
/// Seals one submission as it streams in (docs/sealed-format.md): header with one stanza per recipient,
/// then the framed files and manifest through crypto_secretstream. Memory stays at a few chunks; nothing
/// but ciphertext is written to <c>output</c>.
/// Call order: (BeginFileAsync, WriteAsync*, EndFileAsync)*, CompleteAsync. Disposing before
/// CompleteAsync leaves an unfinished stream that no opener accepts.
/// The per-chunk path allocates nothing: its async methods reuse their state machines (the pooling builder)
/// and the file hash runs on a reused <see cref="BackgroundStep"/>, so a long upload leaves no garbage behind.
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

    private const int ParallelHashBytes = 16 * 1024;

    private readonly Stream _output;
    private readonly byte[] _header;          // written before the first chunk, and that chunk's additional data
    private readonly SecretStream _stream;
    private readonly byte[] _plain;           // the chunk being filled; held back when full until more data comes
    private readonly byte[][] _cipher;       // two: one being written out while the next chunk is encrypted
    private int _nextCipher;
    private ValueTask _pendingWrite;           // awaited exactly once, then reset
    private readonly byte[] _scratch = new byte[1 + 8 + 32];
    private readonly List<ManifestFile> _files = [];
    private readonly IncrementalHash _fileHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly BackgroundStep _hashing;
    private ReadOnlyMemory<byte> _hashInput;   // what _hashing adds to the file's hash
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

        _hashing = new BackgroundStep(() => _fileHash.AppendData(_hashInput.Span));
        _plain = ArrayPool<byte>.Shared.Rent(SealedFormat.ChunkSize);
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

    /// <summary>The caller keeps <paramref name="data"/> unchanged until the returned task completes.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        Expect(State.InFile, "WriteAsync");
        if (data.IsEmpty) return;
        _fileSize += data.Length;
        // The file's SHA-256 (for the manifest) runs on a second core beside the copy and encryption of
        // the same bytes; for small writes handing it over would cost more than it saves.
        var parallel = data.Length >= ParallelHashBytes;
        if (parallel)
        {
            _hashInput = data;
            _hashing.Start();
        }
        else _fileHash.AppendData(data.Span);
        try
        {
            _scratch[0] = SealedFormat.RecordFileData;
            BinaryPrimitives.WriteUInt32LittleEndian(_scratch.AsSpan(1), (uint)data.Length);
            await AppendRecordAsync(5, data, cancellationToken);
        }
        finally
        {
            if (parallel) await _hashing.WaitAsync();
        }
    }

    public ValueTask EndFileAsync(CancellationToken cancellationToken = default)
    {
        Expect(State.InFile, "EndFileAsync");
        _scratch[0] = SealedFormat.RecordFileEnd;
        BinaryPrimitives.WriteUInt64LittleEndian(_scratch.AsSpan(1), (ulong)_fileSize);
        _fileHash.GetHashAndReset(_scratch.AsSpan(9, 32));
        _files.Add(new ManifestFile(_fileName, _fileType, _fileSize, Convert.ToHexStringLower(_scratch.AsSpan(9, 32))));
        _state = State.Idle;
        return AppendAsync(_scratch.AsMemory(0, 1 + 8 + 32), cancellationToken);
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

    private ValueTask AppendRecordAsync(int headerLength, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        // Fast path: record header and payload both fit in the current chunk, nothing to flush.
        if (_filled + headerLength + payload.Length <= SealedFormat.ChunkSize && _filled < SealedFormat.ChunkSize)
        {
            _scratch.AsSpan(0, headerLength).CopyTo(_plain.AsSpan(_filled));
            payload.Span.CopyTo(_plain.AsSpan(_filled + headerLength));
            _filled += headerLength + payload.Length;
            return ValueTask.CompletedTask;
        }
        return Slow(headerLength, payload, ct);

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        async ValueTask Slow(int headerLength, ReadOnlyMemory<byte> payload, CancellationToken ct)
        {
            await AppendAsync(_scratch.AsMemory(0, headerLength), ct);
            await AppendAsync(payload, ct);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AppendAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        try
        {
            while (!data.IsEmpty)
            {
                // A full chunk is sealed only once more data follows: whatever comes last goes out as FINAL.
                if (_filled == SealedFormat.ChunkSize) await FlushChunkAsync(SecretStream.TagMessage, ct);
                var n = Math.Min(SealedFormat.ChunkSize - _filled, data.Length);
                data.Span[..n].CopyTo(_plain.AsSpan(_filled));
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
        // The whole header is the first chunk's additional data: a change to any stanza fails that chunk.
        var length = _stream.Push(_plain.AsSpan(0, _filled), cipher, _headerWritten ? default : _header, tag);
        _filled = 0;
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
        _stream.Dispose();
        _fileHash.Dispose();
        ArrayPool<byte>.Shared.Return(_plain, clearArray: true);
        foreach (var c in _cipher) ArrayPool<byte>.Shared.Return(c, clearArray: true);
    }
}
