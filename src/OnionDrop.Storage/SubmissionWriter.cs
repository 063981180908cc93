using System.Security.Cryptography;

namespace OnionDrop.Storage;

/// <summary>
/// One submission on its way in: blobs/ID.partial (created O_EXCL, 0600) until <see cref="CommitAsync"/>
/// makes it blobs/ID.sealed and a catalog entry. Dispose without commit removes every piece.
/// </summary>
internal sealed class SubmissionWriter : ISubmissionWriter
{
    private readonly SealedBlobStore _store;
    private readonly FileStream _file;
    private readonly HashingWriteStream _ciphertext;
    private bool _renamed, _committed, _disposed;

    public string Id { get; }
    public Stream Ciphertext => _ciphertext;

    public SubmissionWriter(SealedBlobStore store, string id)
    {
        _store = store;
        Id = id;
        _file = new FileStream(store.PartialPath(id), new FileStreamOptions
        {
            Mode = FileMode.CreateNew, // O_CREAT | O_EXCL
            Access = FileAccess.Write,
            Share = FileShare.None,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            BufferSize = 64 * 1024, // writes of a whole sealed chunk bypass it
        });
        _ciphertext = new HashingWriteStream(_file);
    }

    public async Task<SubmissionRecord> CommitAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed) throw new InvalidOperationException("already committed");
        var (size, sha256) = _ciphertext.Finish();

        await _file.FlushAsync(cancellationToken);
        await Task.Run(() => _file.Flush(flushToDisk: true), cancellationToken); // fsync: the bytes are on disk
        await _file.DisposeAsync();

        File.Move(_store.PartialPath(Id), _store.SealedPath(Id), overwrite: false);
        _renamed = true;
        Posix.FsyncDirectory(_store.BlobsDir); // the name is on disk

        var record = await _store.CommitEntryAsync(Id, size, sha256); // only now is it visible
        _committed = true;
        return record;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        if (_committed) return;
        try { await _file.DisposeAsync(); }
        catch (IOException) { } // its buffered tail could not be written (disk full): the file goes anyway
        finally { SealedBlobStore.TryDelete(_renamed ? _store.SealedPath(Id) : _store.PartialPath(Id)); }
    }
}

/// <summary>Write-only, forward-only sink that hashes (SHA-256) and counts the ciphertext on its way to the file.</summary>
internal sealed class HashingWriteStream(Stream inner) : Stream
{
    private readonly IncrementalHash _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _length;
    private string? _sha256Hex;
    private bool _finished => _sha256Hex is not null;

    /// <summary>Closes the sink to further writes and returns what passed through it.</summary>
    public (long Size, string Sha256Hex) Finish()
    {
        _sha256Hex ??= Convert.ToHexStringLower(_sha256.GetHashAndReset());
        return (_length, _sha256Hex);
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (_finished) throw new InvalidOperationException("the submission is already committed");
        _sha256.AppendData(buffer);
        inner.Write(buffer);
        _length += buffer.Length;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <summary>
    /// Hashes and writes on a pool thread, so that on a second core this overlaps with whatever the caller
    /// does before awaiting (the sealer encrypts its next chunk meanwhile, keeping one write in flight).
    /// </summary>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_finished) throw new InvalidOperationException("the submission is already committed");
        _length += buffer.Length;
        return new ValueTask(Task.Run(() =>
        {
            _sha256.AppendData(buffer.Span);
            inner.Write(buffer.Span);
        }, cancellationToken));
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    // The writer owns the file: a sealer disposing its output must not close it before the commit.
    protected override void Dispose(bool disposing) { }
    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !_finished;
    public override long Length => _length;
    public override long Position { get => _length; set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
