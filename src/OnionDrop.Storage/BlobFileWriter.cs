using System.Security.Cryptography;
using OnionDrop.Files;

namespace OnionDrop.Storage;

/// <summary>
/// Write-only, forward-only sink for one blob's ciphertext: counts and hashes it (SHA-256) and writes it
/// with <see cref="DirectFileWriter"/>, past the page cache. The writer hashes it on a lane of its own, a block at
/// a time, while the caller prepares its next chunks; the writes wait for the disk without holding a thread.
/// </summary>
internal sealed class BlobFileWriter : Stream
{
    private readonly DirectFileWriter _file;
    private readonly IncrementalHash _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _length;
    private string? _sha256Hex;

    /// <summary>
    /// Every byte of a blob goes direct: blobs are written by many uploads at once and read back only when a
    /// journalist pulls. With a blob's first 8 MiB through the page cache, copying into it took 30% of the
    /// machine's time during 64 concurrent 16 MiB uploads; without it they committed 1.07-1.2x faster (medians
    /// of interleaved hand-timed runs: 3.0 s against 3.6; 3.8 against 4.1), and single uploads, large or small,
    /// took as long as before.
    /// </summary>
    internal const long DirectFrom = 0;

    public BlobFileWriter(FileStream file)
    {
        _file = new DirectFileWriter(file, DirectFrom, _sha256);
    }

    /// <summary>
    /// Copies the bytes into the file's current block at once; a full block queues to be hashed and written
    /// while the caller goes on. The caller keeps <paramref name="buffer"/> unchanged until the
    /// returned task completes.
    /// </summary>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ThrowIfFinished();
        cancellationToken.ThrowIfCancellationRequested();
        _length += buffer.Length;
        return _file.WriteAsync(buffer);
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ThrowIfFinished();
        _length += buffer.Length;
        _file.Write(buffer);
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Writes what is left and waits for every write; the file then holds exactly the ciphertext.</summary>
    public override void Flush() => _file.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => _file.FlushAsync().AsTask();

    /// <summary>Closes the sink to further writes and returns what passed through it; call after the flush, which hashes the last block.</summary>
    public (long Size, string Sha256Hex) Finish()
    {
        _sha256Hex ??= Convert.ToHexStringLower(_sha256.GetHashAndReset());
        return (_length, _sha256Hex);
    }

    private void ThrowIfFinished()
    {
        if (_sha256Hex is not null) throw new InvalidOperationException("the submission is already committed");
    }

    /// <summary>Waits, without holding a thread, for a block write still in flight and gives its memory back: call before the file closes.</summary>
    public ValueTask ReleaseBlocksAsync() => _file.DisposeAsync();

    // The writer owns the file: a sealer disposing its output must not close it before the commit.
    protected override void Dispose(bool disposing) { }
    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => _sha256Hex is null;
    public override long Length => _length;
    public override long Position { get => _length; set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
